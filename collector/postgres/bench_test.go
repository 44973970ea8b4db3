package postgres

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkUpdate measures one collection against the real server: the
// process CPU it costs (the target is under 5 ms per interval) and the
// connections the pool opened over the whole run.
func BenchmarkUpdate(b *testing.B) {
	c := newTestCollector(b, testDSN(b), DefaultMaxConns, nil)
	ctx := context.Background()
	ch := make(chan prometheus.Metric, 1024)
	drain := func() int {
		n := 0
		for {
			select {
			case <-ch:
				n++
			default:
				return n
			}
		}
	}
	if err := c.Update(ctx, ch); err != nil { // connect outside the measurement
		b.Fatal(err)
	}
	series := drain()

	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Update(ctx, ch); err != nil {
			b.Fatal(err)
		}
		drain()
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	st := c.pool.Stat()
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(st.NewConnsCount()), "conns")
	b.ReportMetric(float64(series), "series")
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
