package host

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// netSample is one reading of the byte counters, kept for the next Update.
type netSample struct {
	at    time.Time
	bytes map[string][2]uint64 // device -> receive, transmit
}

// updateNetwork sends each device's counters and, from the second Update
// on, network_usage where a link speed is known. lo is skipped unless
// devices names it.
func (c *Collector) updateNetwork(ch chan<- prometheus.Metric, now time.Time) {
	stats, err := c.proc.NetDev()
	if err != nil {
		c.logger.Debug("cannot read network statistics", "err", err)
		return
	}
	prev := c.prevNet
	cur := &netSample{at: now, bytes: make(map[string][2]uint64, len(stats))}
	c.prevNet = cur

	names := make([]string, 0, len(stats))
	for name := range stats {
		if len(c.devices) > 0 && !slices.Contains(c.devices, name) || len(c.devices) == 0 && name == "lo" {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := stats[name]
		ch <- prometheus.MustNewConstMetric(netRxBytesDesc, prometheus.CounterValue, float64(s.RxBytes), name)
		ch <- prometheus.MustNewConstMetric(netTxBytesDesc, prometheus.CounterValue, float64(s.TxBytes), name)
		ch <- prometheus.MustNewConstMetric(netRxErrsDesc, prometheus.CounterValue, float64(s.RxErrors), name)
		ch <- prometheus.MustNewConstMetric(netTxErrsDesc, prometheus.CounterValue, float64(s.TxErrors), name)
		cur.bytes[name] = [2]uint64{s.RxBytes, s.TxBytes}

		if prev == nil || !now.After(prev.at) {
			continue
		}
		last, ok := prev.bytes[name]
		if !ok || s.RxBytes < last[0] || s.TxBytes < last[1] {
			continue // new device, or its counters were reset
		}
		speed := c.linkSpeedMbps(name)
		if speed <= 0 {
			continue
		}
		elapsed := now.Sub(prev.at).Seconds()
		peak := float64(max(s.RxBytes-last[0], s.TxBytes-last[1]))
		bitsPerSecond := peak * 8 / elapsed
		ch <- prometheus.MustNewConstMetric(networkUsageDesc, prometheus.GaugeValue,
			percent(bitsPerSecond, speed*1e6), name)
	}
}

// linkSpeedMbps returns the device's speed in Mb/s from sysfs, or the
// configured speed when the system gives none: -1 or unreadable (no
// carrier, or a driver that does not say) and virtual devices, whose speed
// is made up (veth says 10000).
func (c *Collector) linkSpeedMbps(device string) float64 {
	if isDir(filepath.Join(c.sysRoot, "devices", "virtual", "net", device)) {
		return c.linkSpeed
	}
	v, err := readInt(filepath.Join(c.sysRoot, "class", "net", device, "speed"))
	if err != nil || v <= 0 {
		if err != nil && !os.IsNotExist(err) {
			c.logger.Debug("no link speed from the system", "device", device, "err", err)
		}
		return c.linkSpeed
	}
	return float64(v)
}
