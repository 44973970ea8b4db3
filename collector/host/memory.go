package host

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// hostMemory returns MemTotal and MemAvailable in bytes. Kernels before 3.14
// have no MemAvailable; free plus buffers plus page cache stands in for it.
func hostMemory(m procfs.Meminfo) (total, available uint64, err error) {
	if m.MemTotalBytes == nil || *m.MemTotalBytes == 0 {
		return 0, 0, errors.New("no MemTotal")
	}
	total = *m.MemTotalBytes
	switch {
	case m.MemAvailableBytes != nil:
		available = *m.MemAvailableBytes
	case m.MemFreeBytes != nil:
		available = *m.MemFreeBytes
		if m.BuffersBytes != nil {
			available += *m.BuffersBytes
		}
		if m.CachedBytes != nil {
			available += *m.CachedBytes
		}
	default:
		return 0, 0, errors.New("neither MemAvailable nor MemFree")
	}
	return total, min(available, total), nil
}

// updateMemory sends the memory bytes and memory_usage: of the container's
// limit when one applies, else of the host.
func (c *Collector) updateMemory(ch chan<- prometheus.Metric, total, available uint64) {
	ch <- prometheus.MustNewConstMetric(memTotalDesc, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(memAvailableDesc, prometheus.GaugeValue, float64(available))
	if limit, workingSet, ok := c.cgroupMemory(total); ok {
		ch <- prometheus.MustNewConstMetric(containerMemLimitDesc, prometheus.GaugeValue, float64(limit))
		ch <- prometheus.MustNewConstMetric(containerMemWorkingSetDesc, prometheus.GaugeValue, float64(workingSet))
		ch <- prometheus.MustNewConstMetric(memoryUsageDesc, prometheus.GaugeValue, percent(float64(workingSet), float64(limit)))
		return
	}
	ch <- prometheus.MustNewConstMetric(memoryUsageDesc, prometheus.GaugeValue, percent(float64(total-available), float64(total)))
}
