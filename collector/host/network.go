package host

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
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

	for _, name := range c.watchedDevices(stats) {
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

// watchedDevices returns the devices of stats the collector reports, sorted:
// those named in devices, else all but lo.
func (c *Collector) watchedDevices(stats procfs.NetDev) []string {
	names := make([]string, 0, len(stats))
	for name := range stats {
		if len(c.devices) > 0 && !slices.Contains(c.devices, name) || len(c.devices) == 0 && name == "lo" {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// reportLinkSpeeds says at start which devices have no link speed: they
// get no network_usage, so a rule on it (the seed's high_network_usage)
// can never fire there.
func (c *Collector) reportLinkSpeeds() {
	stats, err := c.proc.NetDev()
	if err != nil {
		return // updateNetwork says so
	}
	var none []string
	for _, name := range c.watchedDevices(stats) {
		if c.linkSpeedMbps(name) <= 0 {
			none = append(none, name)
		}
	}
	if len(none) > 0 {
		c.logger.Warn("no link speed for these network devices: no network_usage for them; set collectors.infrastructure.link_speed_mbps (all) or link_speed_mbps_per_device",
			"devices", strings.Join(none, ","))
	}
}

// linkSpeedMbps returns the device's speed in Mb/s: the configured one for
// the device (link_speed_mbps_per_device), else from sysfs, else the
// configured speed when the system gives none: -1 or unreadable (no
// carrier, or a driver that does not say) and virtual devices, whose speed
// is made up (veth says 10000).
func (c *Collector) linkSpeedMbps(device string) float64 {
	if v, ok := c.deviceSpeeds[device]; ok {
		return v // the user knows better than a made-up or absent speed
	}
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
