package rules

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

func TestSignalRules(t *testing.T) {
	// Over 5 minutes at 15 s: the app uses 0.5 CPU-seconds per second,
	// 256 MiB resident, and answers 100 requests/s of which 5/s are 5xx. A
	// second app (vigil itself) must not leak into the app's signals. A
	// third shape, Spring Boot's, carries status instead of code.
	storage := promqltest.LoadedStorage(t, `
load 15s
  process_cpu_seconds_total{app="app",job="app",instance="a:1"} 0+7.5x20
  process_resident_memory_bytes{app="app",job="app",instance="a:1"} 268435456x20
  http_requests_total{app="app",job="app",instance="a:1",code="200"} 0+1425x20
  http_requests_total{app="app",job="app",instance="a:1",code="500"} 0+75x20
  process_cpu_seconds_total{app="vigil",job="vigil",instance="v:1"} 0+15x20
  http_server_requests_seconds_count{app="app",job="spring",instance="s:1",status="200"} 0+150x20
  http_server_requests_seconds_count{app="app",job="spring",instance="s:1",status="503"} 0+150x20
  http_requests_total{app="app",job="quiet",instance="q:1",code="200"} 0+150x20
`)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 1e6)
	cfg := &config.Config{Collectors: config.CollectorsConfig{App: &config.AppCollectorConfig{
		CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"app": "app"}},
		MemoryLimit:      1 << 30,
	}}}
	rs, err := SignalRules(cfg)
	require.NoError(t, err)
	var records []string
	for _, r := range rs {
		records = append(records, r.Record)
	}
	// error_rate reads the requests rate recorded just before it.
	require.Equal(t, []string{"cpu_usage", "memory_usage", "vigil:http_requests:rate1m", "error_rate"}, records)

	eval := func(expr string) map[string]float64 {
		q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, time.Unix(0, 0).Add(5*time.Minute))
		require.NoError(t, err)
		res := q.Exec(context.Background())
		require.NoError(t, res.Err)
		vec, err := res.Vector()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, s := range vec {
			out[s.Metric.Get("job")] = s.F
		}
		return out
	}
	byRecord := map[string]string{}
	for _, r := range rs {
		byRecord[r.Record] = r.Expr
	}

	cpu := eval(byRecord["cpu_usage"])
	require.NotContains(t, cpu, "vigil", "another app's process metrics leaked in")
	require.InDelta(t, 100*0.5/cpuLimit(), cpu["app"], 1e-9)

	mem := eval(byRecord["memory_usage"])
	require.InDelta(t, 25.0, mem["app"], 1e-9)

	// As before, every input of error_rate is one of alternatives: an app
	// without HTTP metrics has no dead rule input (health.go).
	for _, rec := range []string{"vigil:http_requests:rate1m", "error_rate"} {
		expr, err := promqlparse.ParseExpr(byRecord[rec])
		require.NoError(t, err)
		require.Empty(t, inputSelectors(expr), rec)
	}

	// The group records the requests rate, then error_rate from it.
	at := time.Unix(0, 0).Add(5 * time.Minute)
	signalGroup(t, engine, storage, rs).Eval(context.Background(), at)
	errRate := map[string]float64{}
	for k, v := range recordedAt(t, storage, "error_rate", at) {
		ls, err := promqlparse.ParseMetric(k)
		require.NoError(t, err)
		errRate[ls.Get("job")] = v
	}
	require.Equal(t, errRate, eval("error_rate"), "what alerts read is what was recorded")
	require.InDelta(t, 5.0, errRate["app"], 1e-9)
	require.InDelta(t, 50.0, errRate["spring"], 1e-9)
	require.Contains(t, errRate, "quiet", "no 5xx at all is 0%, not absent")
	require.Equal(t, 0.0, errRate["quiet"])
	for job, v := range errRate {
		require.False(t, math.IsNaN(v), "error_rate of %s is NaN", job)
	}

	// Overrides replace a default and are scoped too. An error_rate of
	// the user's own needs no recorded requests rate.
	cfg.Collectors.App.Signals.CPUUsage = "rate(process_cpu_seconds_total[1m]) * 100"
	cfg.Collectors.App.Signals.ErrorRate = `100 * sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))`
	rs, err = SignalRules(cfg)
	require.NoError(t, err)
	require.Equal(t, `rate(process_cpu_seconds_total{app="app"}[1m]) * 100`, rs[0].Expr)
	require.Len(t, rs, 3)
	require.Equal(t, "error_rate", rs[2].Record)
	require.Equal(t, `100 * sum(rate(http_requests_total{app="app",code=~"5.."}[1m])) / sum(rate(http_requests_total{app="app"}[1m]))`, rs[2].Expr)

	cfg.Collectors.App.Signals.ErrorRate = "rate(("
	_, err = SignalRules(cfg)
	require.ErrorContains(t, err, "collectors.app.signals.error_rate")

	rs, err = SignalRules(&config.Config{})
	require.NoError(t, err)
	require.Nil(t, rs, "no app collector, no signals")
}

// TestMemoryLimitSources: memory_usage is a percentage of memory_limit when
// set, else of vigil's cgroup limit, v2 or v1 (host.MemoryLimit reads both;
// before, a v1 limit was missed and the machine's memory used), else of the
// machine's memory, else of 1 GiB. The trees are fake /proc and
// /sys/fs/cgroup.
func TestMemoryLimitSources(t *testing.T) {
	const meminfo = "MemTotal:        8192 kB\nMemFree:         1024 kB\n"
	v2 := map[string]string{
		"proc/self/cgroup":                        "0::/kubepods/pod1/ctr\n",
		"proc/meminfo":                            meminfo,
		"cgroup/cgroup.controllers":               "cpu memory",
		"cgroup/kubepods/pod1/ctr/memory.max":     "134217728\n",
		"cgroup/kubepods/pod1/ctr/memory.current": "50000000\n",
		"cgroup/kubepods/pod1/ctr/memory.stat":    "inactive_file 0\n",
	}
	v1 := map[string]string{
		"proc/self/cgroup":                    "4:memory:/docker/abc\n",
		"proc/meminfo":                        meminfo,
		"cgroup/memory/tasks":                 "",
		"cgroup/memory/memory.limit_in_bytes": "268435456\n",
		"cgroup/memory/memory.usage_in_bytes": "1000\n",
		"cgroup/memory/memory.stat":           "total_inactive_file 0\n",
	}
	v2max := map[string]string{
		"proc/self/cgroup":          "0::/\n",
		"proc/meminfo":              meminfo,
		"cgroup/cgroup.controllers": "cpu memory",
		"cgroup/memory.max":         "max\n",
	}
	v1unlimited := map[string]string{
		"proc/self/cgroup":                    "4:memory:/\n",
		"proc/meminfo":                        meminfo,
		"cgroup/memory/tasks":                 "",
		"cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		"cgroup/memory/memory.usage_in_bytes": "1000\n",
		"cgroup/memory/memory.stat":           "total_inactive_file 0\n",
	}
	for _, tc := range []struct {
		name       string
		configured int64
		files      map[string]string
		want       int64
	}{
		{"memory_limit wins over the cgroup", 123, v2, 123},
		{"cgroup v2 memory.max", 0, v2, 128 << 20},
		{"cgroup v1 memory.limit_in_bytes", 0, v1, 256 << 20},
		{"cgroup v2 without a limit: the machine's memory", 0, v2max, 8 << 20},
		{"cgroup v1 without a limit: the machine's memory", 0, v1unlimited, 8 << 20},
		{"no cgroup: the machine's memory", 0, map[string]string{"proc/meminfo": meminfo}, 8 << 20},
		{"nothing readable", 0, map[string]string{}, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				path := filepath.Join(root, name)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			}
			require.Equal(t, tc.want, memoryLimitIn(tc.configured, filepath.Join(root, "proc"), filepath.Join(root, "cgroup")))
		})
	}
	require.Equal(t, int64(123), memoryLimit(123))
	require.Positive(t, memoryLimit(0))
}
