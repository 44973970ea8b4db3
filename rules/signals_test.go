package rules

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
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
	require.Len(t, rs, 3)

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

	errRate := eval(byRecord["error_rate"])
	require.InDelta(t, 5.0, errRate["app"], 1e-9)
	require.InDelta(t, 50.0, errRate["spring"], 1e-9)
	require.Contains(t, errRate, "quiet", "no 5xx at all is 0%, not absent")
	require.Equal(t, 0.0, errRate["quiet"])
	for job, v := range errRate {
		require.False(t, math.IsNaN(v), "error_rate of %s is NaN", job)
	}

	// Overrides replace a default and are scoped too.
	cfg.Collectors.App.Signals.CPUUsage = "rate(process_cpu_seconds_total[1m]) * 100"
	rs, err = SignalRules(cfg)
	require.NoError(t, err)
	require.Equal(t, `rate(process_cpu_seconds_total{app="app"}[1m]) * 100`, rs[0].Expr)

	cfg.Collectors.App.Signals.ErrorRate = "rate(("
	_, err = SignalRules(cfg)
	require.ErrorContains(t, err, "collectors.app.signals.error_rate")

	rs, err = SignalRules(&config.Config{})
	require.NoError(t, err)
	require.Nil(t, rs, "no app collector, no signals")
}

func TestMemoryLimitSources(t *testing.T) {
	require.Equal(t, int64(123), memoryLimit(123))
	require.Positive(t, memoryLimit(0))
	require.Positive(t, memTotal("/proc/meminfo"))
	require.Zero(t, memTotal("/nonexistent"))
	require.Zero(t, cgroupMemoryMax("/nonexistent", "/sys/fs/cgroup"))
}
