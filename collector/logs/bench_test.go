package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// benchLine is a 200-byte JSON line (with its newline).
func benchLine(i int) string {
	s := fmt.Sprintf(`{"time":"2024-01-01T00:00:00.000Z","level":"info","msg":"request served","method":"GET","path":"/api/v1/items/%08d","status":200,"duration_ms":12,"user":"u-1234"`, i)
	return s + strings.Repeat(" ", 198-len(s)) + "}\n"
}

// writeBenchFile writes n benchmark lines to path.
func writeBenchFile(b *testing.B, path string, n int) int64 {
	b.Helper()
	f, err := os.Create(path)
	require.NoError(b, err)
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteString(benchLine(i))
		if sb.Len() > 1<<20 {
			_, err := f.WriteString(sb.String())
			require.NoError(b, err)
			sb.Reset()
		}
	}
	_, err = f.WriteString(sb.String())
	require.NoError(b, err)
	fi, err := f.Stat()
	require.NoError(b, err)
	require.NoError(b, f.Close())
	return fi.Size()
}

// benchPipeline writes b.N lines, then times a Manager tailing them until
// every line went through and Run returned (outputs flushed and closed).
func benchPipeline(b *testing.B, withFile, withLoki bool) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(b, os.MkdirAll(src, 0o755))
	size := writeBenchFile(b, filepath.Join(src, "app.log"), b.N)
	require.Equal(b, int64(b.N*200), size)

	cfg := &config.Config{Service: "checkout", Environment: "production"}
	lc := config.LogConfig{Name: "app", Paths: []string{filepath.Join(src, "*.log")}, MaxSize: config.Size(100 << 20), MaxFiles: 3}
	if withFile {
		lc.File = filepath.Join(dir, "out", "app.log")
	}
	cfg.Collectors.Logs = []config.LogConfig{lc}
	var rcv *lokiReceiver
	if withLoki {
		rcv = newLokiReceiver(b)
		rcv.discard = true
		cfg.Collectors.Loki = &config.LokiConfig{URL: rcv.url(), BatchWait: config.Duration(10 * time.Millisecond)}
	}
	opts := testOptions(filepath.Join(dir, "data"))
	opts.PollInterval = time.Millisecond

	b.ResetTimer()
	startTime := time.Now()
	reg := prometheus.NewRegistry()
	m, err := New(opts, testLogger(b), reg)
	require.NoError(b, err)
	require.NoError(b, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	for testutil.ToFloat64(m.metrics.bytes.WithLabelValues("app")) < float64(size) ||
		(withLoki && testutil.ToFloat64(m.metrics.shipped) < float64(b.N)) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	require.NoError(b, <-done)
	elapsed := time.Since(startTime)
	b.StopTimer()

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(size)/elapsed.Seconds()/(1<<20), "MiB/s")
	if withLoki {
		require.Zero(b, rcv.failed.Load())
	}
}

// BenchmarkTailToFile tails 200-byte JSON lines into the lumberjack output.
func BenchmarkTailToFile(b *testing.B) { benchPipeline(b, true, false) }

// BenchmarkTailToLoki tails 200-byte JSON lines to a local Loki receiver
// that accepts every push (no output file).
func BenchmarkTailToLoki(b *testing.B) { benchPipeline(b, false, true) }

// BenchmarkTailToFileAndLoki does both, as a configured sidecar would.
func BenchmarkTailToFileAndLoki(b *testing.B) { benchPipeline(b, true, true) }
