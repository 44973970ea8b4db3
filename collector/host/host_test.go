package host

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const gib = 1 << 30

// fakeStatfs answers for the fixtures' filesystems; /gone is a mount that
// cannot be read (a stale NFS mount, say).
func fakeStatfs(path string) (Fs, error) {
	switch path {
	case "/":
		return Fs{Size: 100 * gib, Free: 40 * gib, Avail: 35 * gib}, nil
	case "/data":
		return Fs{Size: 1024 * gib, Free: 768 * gib, Avail: 768 * gib}, nil
	}
	return Fs{}, &fs.PathError{Op: "statfs", Path: path, Err: errors.New("stale file handle")}
}

// clock is a fake clock the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// bootTime is the fixtures' btime; the first Update runs 1000 s later.
var bootTime = time.Unix(1700000000, 0)

// adapter runs one Update as a prometheus.Collector, so that a registry
// sorts and renders its output.
type adapter struct {
	c   *Collector
	err error
}

func (*adapter) Describe(chan<- *prometheus.Desc) {}

func (a *adapter) Collect(ch chan<- prometheus.Metric) {
	a.err = a.c.Update(context.Background(), ch)
}

func gather(t *testing.T, c *Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	a := &adapter{c: c}
	reg.MustRegister(a)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.NoError(t, a.err)
	return mfs
}

func render(t *testing.T, mfs []*dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, mf := range mfs {
		_, err := expfmt.MetricFamilyToText(&buf, mf)
		require.NoError(t, err)
	}
	return buf.Bytes()
}

// series returns name{labels} -> value for the families named.
func series(mfs []*dto.MetricFamily, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		if len(names) > 0 && !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, lp := range m.GetLabel() {
				pairs = append(pairs, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(pairs)
			key := mf.GetName()
			if len(pairs) > 0 {
				key += "{" + strings.Join(pairs, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// overlay copies the files of src over dst.
func overlay(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	require.NoError(t, err)
}

// newFixture copies testdata/<name>/base to a temporary root and returns a
// collector over it with a fake clock.
func newFixture(t *testing.T, name string, cfg *config.InfraCollectorConfig) (*Collector, *clock, string) {
	t.Helper()
	root := t.TempDir()
	overlay(t, filepath.Join("testdata", name, "base"), root)
	clk := &clock{t: bootTime.Add(1000 * time.Second)}
	c, err := New(cfg, &Options{
		ProcRoot:   filepath.Join(root, "proc"),
		SysRoot:    filepath.Join(root, "sys"),
		CgroupRoot: filepath.Join(root, "cgroup"),
		Statfs:     fakeStatfs,
		Now:        clk.now,
	}, nil)
	require.NoError(t, err)
	return c, clk, root
}

// signals are the families whose values the table below pins exactly.
var signals = []string{
	"cpu_usage", "memory_usage", "disk_usage", "network_usage",
	"container_cpu_limit_cores", "container_memory_limit_bytes",
}

func TestUpdateFixtures(t *testing.T) {
	tests := []struct {
		name string
		cfg  *config.InfraCollectorConfig
		// want are the signals after the first Update and after the second,
		// 10 s later, over the fixture's step2 files.
		want [2]map[string]float64
	}{
		{
			name: "host",
			cfg:  &config.InfraCollectorConfig{Mountpoints: []string{"/", "/data", "/gone"}, LinkSpeedMbps: 100},
			want: [2]map[string]float64{{
				"cpu_usage":                    15,             // 1500 busy of 10000 ticks since boot
				"memory_usage":                 25,             // 2000000 kB of 8000000 kB
				"disk_usage{mountpoint=/}":     100 * 60 / 95., // used 60 GiB, 35 GiB available
				"disk_usage{mountpoint=/data}": 25,
			}, {
				"cpu_usage":                    37.5,           // 1500 busy of 4000 ticks
				"memory_usage":                 50,             // MemAvailable fell to 4000000 kB
				"disk_usage{mountpoint=/}":     100 * 60 / 95., // unchanged
				"disk_usage{mountpoint=/data}": 25,
				"network_usage{device=eth0}":   10, // 125 MB in 10 s = 100 Mb/s of 1000
				"network_usage{device=eth1}":   2,  // tx 2.5 MB in 10 s = 2 Mb/s of the configured 100
				"network_usage{device=veth0}":  10, // virtual: its 10000 is ignored for the configured 100
			}},
		},
		{
			name: "cgroupv2",
			cfg:  &config.InfraCollectorConfig{},
			want: [2]map[string]float64{{
				"cpu_usage":                    0.25, // 5 s of 2 cores over 1000 s since boot
				"memory_usage":                 50,   // 256 MiB working set of 512 MiB
				"disk_usage{mountpoint=/}":     100 * 60 / 95.,
				"container_cpu_limit_cores":    2,
				"container_memory_limit_bytes": 512 << 20,
			}, {
				"cpu_usage":                    75, // 15 s of 2 cores over 10 s
				"memory_usage":                 75, // 384 MiB of 512 MiB
				"disk_usage{mountpoint=/}":     100 * 60 / 95.,
				"container_cpu_limit_cores":    2,
				"container_memory_limit_bytes": 512 << 20,
				// eth0 is virtual and no link speed is configured: no network_usage.
			}},
		},
		{
			name: "cgroupv1",
			cfg:  &config.InfraCollectorConfig{Devices: []string{"eth0", "lo"}},
			want: [2]map[string]float64{{
				"cpu_usage":                    20, // 100 s of 0.5 core over 1000 s since boot
				"memory_usage":                 25, // 256 MiB of 1 GiB
				"disk_usage{mountpoint=/}":     100 * 60 / 95.,
				"container_cpu_limit_cores":    0.5,
				"container_memory_limit_bytes": 1 << 30,
			}, {
				"cpu_usage":                    80, // 4 s of 0.5 core over 10 s
				"memory_usage":                 25,
				"disk_usage{mountpoint=/}":     100 * 60 / 95.,
				"container_cpu_limit_cores":    0.5,
				"container_memory_limit_bytes": 1 << 30,
				"network_usage{device=eth0}":   1, // 12.5 MB in 10 s = 10 Mb/s of 1000; lo has no speed
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clk, root := newFixture(t, tt.name, tt.cfg)
			for step := range 2 {
				if step == 1 {
					overlay(t, filepath.Join("testdata", tt.name, "step2"), root)
					clk.t = clk.t.Add(10 * time.Second)
				}
				mfs := gather(t, c)

				got := series(mfs, signals...)
				require.Len(t, got, len(tt.want[step]), "step %d: %v", step+1, got)
				for k, v := range tt.want[step] {
					require.Contains(t, got, k, "step %d", step+1)
					require.InDelta(t, v, got[k], 1e-9, "step %d: %s", step+1, k)
				}

				golden := filepath.Join("testdata", tt.name, "step"+string(rune('1'+step))+".prom")
				out := render(t, mfs)
				if *update {
					require.NoError(t, os.WriteFile(golden, out, 0o644))
				}
				want, err := os.ReadFile(golden)
				require.NoError(t, err)
				require.Equal(t, string(want), string(out), "step %d differs from %s (go test -update rewrites it)", step+1, golden)
			}
		})
	}
}

func TestUpdateEssentialSources(t *testing.T) {
	for _, file := range []string{"stat", "meminfo"} {
		t.Run(file, func(t *testing.T) {
			c, _, root := newFixture(t, "host", nil)
			require.NoError(t, os.Remove(filepath.Join(root, "proc", file)))
			ch := make(chan prometheus.Metric, 1000)
			err := c.Update(context.Background(), ch)
			require.ErrorIs(t, err, fs.ErrNotExist)
			require.ErrorContains(t, err, file)
		})
	}
}

func TestUpdateOptionalSources(t *testing.T) {
	// Without network statistics, load average and mountinfo the collection
	// still succeeds with what it has.
	c, _, root := newFixture(t, "host", nil)
	for _, file := range []string{"net/dev", "loadavg", "self/mountinfo"} {
		require.NoError(t, os.Remove(filepath.Join(root, "proc", file)))
	}
	got := series(gather(t, c))
	require.Contains(t, got, "cpu_usage")
	require.Contains(t, got, "memory_usage")
	require.Contains(t, got, "disk_usage{mountpoint=/}")
	require.Contains(t, got, "node_filesystem_size_bytes{fstype=,mountpoint=/}", "fstype is empty without mountinfo")
	require.NotContains(t, got, "node_load1")
	for k := range got {
		require.False(t, strings.HasPrefix(k, "node_network_"), k)
	}
}

func TestUpdateCanceled(t *testing.T) {
	c, _, _ := newFixture(t, "host", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Update(ctx, make(chan prometheus.Metric, 100)), context.Canceled)
}

func TestNewRejectsNegativeLinkSpeed(t *testing.T) {
	_, err := New(&config.InfraCollectorConfig{LinkSpeedMbps: -1}, nil, nil)
	require.Error(t, err)
}

func TestNetworkCounterReset(t *testing.T) {
	// A device whose counters go back (driver reload) gives no rate for that
	// interval rather than a huge one; the next interval has one again.
	c, clk, root := newFixture(t, "host", &config.InfraCollectorConfig{LinkSpeedMbps: 100})
	gather(t, c)
	dev := filepath.Join(root, "proc", "net", "dev")
	data, err := os.ReadFile(dev)
	require.NoError(t, err)
	reset := strings.Replace(string(data), "eth0: 1000000 ", "eth0: 10 ", 1)
	require.NotEqual(t, string(data), reset)
	require.NoError(t, os.WriteFile(dev, []byte(reset), 0o644))
	clk.t = clk.t.Add(10 * time.Second)
	got := series(gather(t, c), "network_usage")
	require.NotContains(t, got, "network_usage{device=eth0}")
	require.Contains(t, got, "network_usage{device=eth1}")

	clk.t = clk.t.Add(10 * time.Second)
	got = series(gather(t, c), "network_usage")
	require.Contains(t, got, "network_usage{device=eth0}")
}

func TestUpdateConcurrent(t *testing.T) {
	// vigil's own scrape and an external Prometheus may collect at once.
	c, _, _ := newFixture(t, "host", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				ch := make(chan prometheus.Metric, 1000)
				if err := c.Update(context.Background(), ch); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// The fixture's eth0 says 1000 Mb/s, eth1 says -1 (no carrier or a driver
// that does not tell) and veth0 is virtual: vigil says at start which have
// no speed, and a configured speed (for all, or per device) gives them
// network_usage.
func TestLinkSpeeds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         *config.InfraCollectorConfig
		wantWarning string // devices listed at start; "" for no warning
		wantUsage   []string
	}{
		{name: "none configured", cfg: &config.InfraCollectorConfig{},
			wantWarning: "devices=eth1,veth0", wantUsage: []string{"network_usage{device=eth0}"}},
		{name: "one per device", cfg: &config.InfraCollectorConfig{LinkSpeedMbpsPerDevice: map[string]int{"veth0": 10}},
			wantWarning: "devices=eth1", wantUsage: []string{"network_usage{device=eth0}", "network_usage{device=veth0}"}},
		{name: "global and per device", cfg: &config.InfraCollectorConfig{LinkSpeedMbps: 100, LinkSpeedMbpsPerDevice: map[string]int{"veth0": 10}},
			wantUsage: []string{"network_usage{device=eth0}", "network_usage{device=eth1}", "network_usage{device=veth0}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			overlay(t, filepath.Join("testdata", "host", "base"), root)
			clk := &clock{t: bootTime.Add(1000 * time.Second)}
			var logs bytes.Buffer
			c, err := New(tc.cfg, &Options{
				ProcRoot: filepath.Join(root, "proc"), SysRoot: filepath.Join(root, "sys"), CgroupRoot: filepath.Join(root, "cgroup"),
				Statfs: fakeStatfs, Now: clk.now,
			}, slog.New(slog.NewTextHandler(&logs, nil)))
			require.NoError(t, err)
			if tc.wantWarning == "" {
				require.NotContains(t, logs.String(), "no link speed")
			} else {
				require.Contains(t, logs.String(), "no link speed")
				require.Contains(t, logs.String(), tc.wantWarning)
			}
			gather(t, c)
			clk.t = clk.t.Add(10 * time.Second)
			var got []string
			for k := range series(gather(t, c), "network_usage") {
				got = append(got, k)
			}
			require.ElementsMatch(t, tc.wantUsage, got)
		})
	}
}
