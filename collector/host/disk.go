package host

import (
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// updateDisks sends the filesystem bytes and disk_usage of each configured
// mountpoint. One that cannot be read is skipped: a stale NFS mount must
// not hide the others.
func (c *Collector) updateDisks(ch chan<- prometheus.Metric) {
	mounts, err := c.proc.GetMounts()
	if err != nil {
		c.logger.Debug("cannot read mountinfo, fstype left empty", "err", err)
	}
	for _, mp := range c.mountpoints {
		fs, err := c.statfs(mp)
		if err != nil {
			c.logger.Debug("cannot read filesystem, skipped", "mountpoint", mp, "err", err)
			continue
		}
		fstype := fsType(mounts, mp)
		ch <- prometheus.MustNewConstMetric(fsSizeDesc, prometheus.GaugeValue, float64(fs.Size), mp, fstype)
		ch <- prometheus.MustNewConstMetric(fsAvailDesc, prometheus.GaugeValue, float64(fs.Avail), mp, fstype)
		ch <- prometheus.MustNewConstMetric(fsFreeDesc, prometheus.GaugeValue, float64(fs.Free), mp, fstype)
		// As df: the blocks reserved for root count as neither used nor
		// available, so a full disk reads 100% when users can write no more.
		used := float64(fs.Size) - float64(fs.Free)
		ch <- prometheus.MustNewConstMetric(diskUsageDesc, prometheus.GaugeValue,
			percent(used, used+float64(fs.Avail)), mp)
	}
}

// fsType returns the type of the filesystem that holds path: the mount with
// the longest mountpoint that contains it; the last such mount wins, as the
// later mount hides the earlier one.
func fsType(mounts []*procfs.MountInfo, path string) string {
	path = filepath.Clean(path)
	best, bestLen := "", -1
	for _, m := range mounts {
		mp := filepath.Clean(m.MountPoint)
		if mp != path && mp != "/" && !strings.HasPrefix(path, mp+"/") {
			continue
		}
		if len(mp) >= bestLen {
			best, bestLen = m.FSType, len(mp)
		}
	}
	return best
}
