//go:build linux

package host

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestLive reads this machine with the default options.
func TestLive(t *testing.T) {
	c, err := New(nil, nil, nil)
	require.NoError(t, err)
	gather(t, c)
	time.Sleep(200 * time.Millisecond)
	got := series(gather(t, c), "cpu_usage", "memory_usage", "disk_usage")
	for _, k := range []string{"cpu_usage", "memory_usage", "disk_usage{mountpoint=/}"} {
		require.Contains(t, got, k)
		require.GreaterOrEqual(t, got[k], 0.0, k)
		require.LessOrEqual(t, got[k], 100.0, k)
	}
}

// BenchmarkUpdate is the cost of one collection of this machine; cpu-ns/op
// counts user and system CPU of the whole process, the figure the 5 ms per
// interval target is about.
func BenchmarkUpdate(b *testing.B) {
	c, err := New(nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 1024)
	drain := func() {
		for len(ch) > 0 {
			<-ch
		}
	}
	ctx := context.Background()
	start := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Update(ctx, ch); err != nil {
			b.Fatal(err)
		}
		drain()
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
