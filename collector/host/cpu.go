package host

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// cpuSample is one reading of the CPU counters, kept for the next Update.
type cpuSample struct {
	at          time.Time
	busy, total float64 // host CPU seconds, summed over CPUs
	// cgroupUsage is the container's CPU seconds; valid only when limited.
	cgroupUsage float64
	limited     bool
}

// cpuMode is the time all CPUs spent in one mode.
type cpuMode struct {
	mode    string
	seconds float64
}

// cpuModes are the modes of node_cpu_seconds_total. Guest time is already
// counted in user and nice, so it is neither a mode here nor part of the total.
func cpuModes(s procfs.CPUStat) [8]cpuMode {
	return [8]cpuMode{
		{"user", s.User}, {"nice", s.Nice}, {"system", s.System}, {"idle", s.Idle},
		{"iowait", s.Iowait}, {"irq", s.IRQ}, {"softirq", s.SoftIRQ}, {"steal", s.Steal},
	}
}

// updateCPU sends node_cpu_seconds_total and cpu_usage, and the container's
// CPU figures when a CPU limit applies. Callers hold c.mtx.
func (c *Collector) updateCPU(ch chan<- prometheus.Metric, now time.Time, stat procfs.Stat) {
	cur := &cpuSample{at: now}
	for _, m := range cpuModes(stat.CPUTotal) {
		ch <- prometheus.MustNewConstMetric(cpuSecondsDesc, prometheus.CounterValue, m.seconds, m.mode)
		cur.total += m.seconds
		if m.mode != "idle" && m.mode != "iowait" {
			cur.busy += m.seconds
		}
	}

	limit, usage, ok := c.cgroupCPU()
	if !ok {
		prev := c.prevCPU
		c.prevCPU = cur
		if prev != nil && cur.total > prev.total && cur.busy >= prev.busy {
			ch <- prometheus.MustNewConstMetric(cpuUsageDesc, prometheus.GaugeValue,
				percent(cur.busy-prev.busy, cur.total-prev.total))
			return
		}
		// First Update, or counters that went back (not a Linux kernel
		// habit, but a restored VM can): the average since boot.
		ch <- prometheus.MustNewConstMetric(cpuUsageDesc, prometheus.GaugeValue, percent(cur.busy, cur.total))
		return
	}

	cur.limited, cur.cgroupUsage = true, usage
	prev := c.prevCPU
	c.prevCPU = cur
	ch <- prometheus.MustNewConstMetric(containerCPULimitDesc, prometheus.GaugeValue, limit)
	ch <- prometheus.MustNewConstMetric(containerCPUUsageDesc, prometheus.CounterValue, usage)
	if prev != nil && prev.limited && usage >= prev.cgroupUsage && now.After(prev.at) {
		elapsed := now.Sub(prev.at).Seconds()
		ch <- prometheus.MustNewConstMetric(cpuUsageDesc, prometheus.GaugeValue,
			percent(usage-prev.cgroupUsage, elapsed*limit))
		return
	}
	// The cgroup has no start time of its own; the time since boot is the
	// one bound that is always known, so the first figure is a lower bound
	// for a container started after boot.
	sinceBoot := now.Sub(time.Unix(int64(stat.BootTime), 0)).Seconds()
	ch <- prometheus.MustNewConstMetric(cpuUsageDesc, prometheus.GaugeValue, percent(usage, sinceBoot*limit))
}
