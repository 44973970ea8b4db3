// Package host is vigil's infrastructure collector: CPU, memory, disk and
// network of the machine (or of the container, when a cgroup limit applies)
// as the seed's percent signals, plus the node_exporter-style counters they
// are computed from.
package host

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/vigil-sh/vigil/config"
)

// Options says where the collector reads the system from. The zero value
// reads the running machine.
type Options struct {
	ProcRoot   string // default /proc
	SysRoot    string // default /sys
	CgroupRoot string // default /sys/fs/cgroup
	// Statfs reads a mounted filesystem; tests replace it. Default: syscall.Statfs.
	Statfs func(path string) (Fs, error)
	Now    func() time.Time // tests replace it
}

// Fs is what statfs reports about one filesystem, in bytes.
type Fs struct {
	// Size is the filesystem's total size.
	Size uint64
	// Free is what is free, including the blocks reserved for root.
	Free uint64
	// Avail is what an unprivileged user can still write.
	Avail uint64
}

// Collector reads the host's CPU, memory, filesystems and network links.
// It keeps the previous reading, so that cpu_usage and network_usage are
// rates over the interval between two Updates. It is safe for concurrent
// use; concurrent scrapes share the one previous reading.
type Collector struct {
	logger      *slog.Logger
	proc        procfs.FS
	procRoot    string
	sysRoot     string
	statfs      func(string) (Fs, error)
	now         func() time.Time
	mountpoints []string
	devices     []string
	linkSpeed   float64 // Mb/s, from config; 0 when unset
	// deviceSpeeds are configured speeds (Mb/s) by device; they win over sysfs.
	deviceSpeeds map[string]float64
	cgroup       cgroupPaths

	mtx     sync.Mutex
	prevCPU *cpuSample
	prevNet *netSample
}

// New returns a Collector for cfg (nil means the defaults: mountpoint "/",
// every device but lo, no configured link speed). opts may be nil.
func New(cfg *config.InfraCollectorConfig, opts *Options, logger *slog.Logger) (*Collector, error) {
	if cfg == nil {
		cfg = &config.InfraCollectorConfig{}
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	if o.Statfs == nil {
		o.Statfs = statfs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LinkSpeedMbps < 0 {
		return nil, fmt.Errorf("host collector: link_speed_mbps %d is negative", cfg.LinkSpeedMbps)
	}
	fs, err := procfs.NewFS(o.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("host collector: %w", err)
	}
	mountpoints := slices.Clone(cfg.Mountpoints)
	if len(mountpoints) == 0 {
		mountpoints = []string{"/"}
	}
	slices.Sort(mountpoints)
	mountpoints = slices.Compact(mountpoints)

	c := &Collector{
		logger:      logger,
		proc:        fs,
		procRoot:    o.ProcRoot,
		sysRoot:     o.SysRoot,
		statfs:      o.Statfs,
		now:         o.Now,
		mountpoints: mountpoints,
		devices:     slices.Clone(cfg.Devices),
		linkSpeed:   float64(cfg.LinkSpeedMbps),
	}
	if len(cfg.LinkSpeedMbpsPerDevice) > 0 {
		c.deviceSpeeds = make(map[string]float64, len(cfg.LinkSpeedMbpsPerDevice))
		for dev, v := range cfg.LinkSpeedMbpsPerDevice {
			if v <= 0 {
				return nil, fmt.Errorf("host collector: link_speed_mbps_per_device %s: %d is not more than 0", dev, v)
			}
			c.deviceSpeeds[dev] = float64(v)
		}
	}
	// Membership of a cgroup does not change while the process runs; its
	// limits may (in-place resize), so those are read on every Update.
	c.cgroup, err = findCgroup(o.ProcRoot, o.CgroupRoot)
	if err != nil {
		logger.Debug("no cgroup found, using host figures", "err", err)
	}
	c.reportLinkSpeeds()
	return c, nil
}

var (
	cpuUsageDesc = prometheus.NewDesc("cpu_usage",
		"Percent of CPU capacity in use: of all the host's CPUs, or of the container's CPU limit when one applies.", nil, nil)
	memoryUsageDesc = prometheus.NewDesc("memory_usage",
		"Percent of memory in use: (MemTotal-MemAvailable)/MemTotal, or the container's working set over its memory limit when one applies.", nil, nil)
	diskUsageDesc = prometheus.NewDesc("disk_usage",
		"Percent of the filesystem in use, as df computes it: used/(used+available to users).", []string{"mountpoint"}, nil)
	networkUsageDesc = prometheus.NewDesc("network_usage",
		"Percent of the link speed in use over the last interval: max(receive, transmit).", []string{"device"}, nil)

	cpuSecondsDesc = prometheus.NewDesc("node_cpu_seconds_total",
		"Seconds the CPUs spent in each mode, summed over all CPUs.", []string{"mode"}, nil)
	memTotalDesc = prometheus.NewDesc("node_memory_MemTotal_bytes",
		"Memory information field MemTotal_bytes.", nil, nil)
	memAvailableDesc = prometheus.NewDesc("node_memory_MemAvailable_bytes",
		"Memory information field MemAvailable_bytes.", nil, nil)
	fsSizeDesc = prometheus.NewDesc("node_filesystem_size_bytes",
		"Filesystem size in bytes.", []string{"mountpoint", "fstype"}, nil)
	fsAvailDesc = prometheus.NewDesc("node_filesystem_avail_bytes",
		"Filesystem space available to non-root users in bytes.", []string{"mountpoint", "fstype"}, nil)
	fsFreeDesc = prometheus.NewDesc("node_filesystem_free_bytes",
		"Filesystem free space in bytes.", []string{"mountpoint", "fstype"}, nil)
	netRxBytesDesc = prometheus.NewDesc("node_network_receive_bytes_total",
		"Network device statistic receive_bytes.", []string{"device"}, nil)
	netTxBytesDesc = prometheus.NewDesc("node_network_transmit_bytes_total",
		"Network device statistic transmit_bytes.", []string{"device"}, nil)
	netRxErrsDesc = prometheus.NewDesc("node_network_receive_errs_total",
		"Network device statistic receive_errs.", []string{"device"}, nil)
	netTxErrsDesc = prometheus.NewDesc("node_network_transmit_errs_total",
		"Network device statistic transmit_errs.", []string{"device"}, nil)
	load1Desc = prometheus.NewDesc("node_load1", "1m load average.", nil, nil)

	containerCPULimitDesc = prometheus.NewDesc("container_cpu_limit_cores",
		"The container's CPU limit in cores (cgroup quota over period).", nil, nil)
	containerCPUUsageDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"CPU seconds used by the container's cgroup; present when a CPU limit applies.", nil, nil)
	containerMemLimitDesc = prometheus.NewDesc("container_memory_limit_bytes",
		"The container's memory limit in bytes.", nil, nil)
	containerMemWorkingSetDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"The container's memory usage minus inactive file cache; present when a memory limit applies.", nil, nil)
)

// Update reads the system once and sends the percent signals and the raw
// counters. /proc/stat and /proc/meminfo are essential: when either cannot
// be read, Update returns an error. A mountpoint, the network statistics or
// the load average that cannot be read is left out and logged at debug level.
//
// cpu_usage on the first Update is the average since boot (for a container,
// the cgroup's CPU time over the time since boot); later Updates give the
// average since the previous Update. network_usage needs two readings, so
// the first Update sends none.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("host collector: %w", err)
	}
	stat, err := c.proc.Stat()
	if err != nil {
		return fmt.Errorf("host collector: read %s/stat: %w", c.procRoot, err)
	}
	mem, err := c.proc.Meminfo()
	if err != nil {
		return fmt.Errorf("host collector: read %s/meminfo: %w", c.procRoot, err)
	}
	memTotal, memAvailable, err := hostMemory(mem)
	if err != nil {
		return fmt.Errorf("host collector: %s/meminfo: %w", c.procRoot, err)
	}
	now := c.now()

	c.mtx.Lock()
	defer c.mtx.Unlock()

	c.updateCPU(ch, now, stat)
	c.updateMemory(ch, memTotal, memAvailable)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("host collector: %w", err)
	}
	c.updateDisks(ch)
	c.updateNetwork(ch, now)
	if load, err := c.proc.LoadAvg(); err != nil {
		c.logger.Debug("cannot read load average", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(load1Desc, prometheus.GaugeValue, load.Load1)
	}
	return nil
}

// percent returns part/whole in percent, kept within 0..100: counters read
// a few microseconds apart can overshoot a little.
func percent(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return min(max(part/whole*100, 0), 100)
}
