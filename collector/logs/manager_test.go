package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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

// testOptions are fast timings for tests.
func testOptions(dataDir string) *Options {
	return &Options{
		DataDir:        dataDir,
		PollInterval:   10 * time.Millisecond,
		GlobInterval:   20 * time.Millisecond,
		SaveInterval:   20 * time.Millisecond,
		DrainTimeout:   200 * time.Millisecond,
		StopTimeout:    10 * time.Second,
		LokiMinBackoff: 10 * time.Millisecond,
		LokiMaxBackoff: 50 * time.Millisecond,
		LokiMaxRetries: 50,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testConfig(src, out, lokiURL string) *config.Config {
	cfg := &config.Config{Service: "checkout", Environment: "production"}
	cfg.Collectors.Logs = []config.LogConfig{{
		Name:     "app",
		Paths:    []string{filepath.Join(src, "*.log")},
		File:     out,
		MaxSize:  config.Size(100 << 20),
		MaxFiles: 3,
		Labels:   map[string]string{"app": "shop"},
	}}
	if lokiURL != "" {
		cfg.Collectors.Loki = &config.LokiConfig{
			URL: lokiURL, TenantID: "team-a",
			BatchSize: config.Size(16 << 10), BatchWait: config.Duration(20 * time.Millisecond),
		}
	}
	return cfg
}

// running is a Manager whose Run runs in the background.
type running struct {
	m      *Manager
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, opts *Options, cfg *config.Config) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(opts, testLogger(t), reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}

// appendLines appends lines id from..to-1 to path through f (opened here
// when nil) and returns the file, open for more writes.
func appendLines(t testing.TB, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer f.Close()
	writeLines(t, f, from, to)
}

func writeLines(t testing.TB, f *os.File, from, to int) {
	t.Helper()
	var sb strings.Builder
	for i := from; i < to; i++ {
		sb.WriteString(lineText(i))
		sb.WriteByte('\n')
	}
	_, err := f.WriteString(sb.String())
	require.NoError(t, err)
}

func lineText(i int) string {
	lvl := []string{"info", "warn", "error", "debug"}[i%4]
	return fmt.Sprintf(`{"level":"%s","msg":"line-%06d"}`, lvl, i)
}

// eventually polls cond every 10ms for up to 15s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitReceived(t *testing.T, rcv *lokiReceiver, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d distinct lines at Loki", n), func() bool {
		_, lines := rcv.received()
		return len(lines) >= n
	})
}

// outputLines reads the output file and its lumberjack backups.
func outputLines(t *testing.T, out string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	matches, err := filepath.Glob(strings.TrimSuffix(out, ".log") + "*")
	require.NoError(t, err)
	for _, p := range matches {
		f, err := os.Open(p)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			counts[sc.Text()]++
		}
		require.NoError(t, sc.Err())
		require.NoError(t, f.Close())
	}
	return counts
}

func requireExactlyOnce(t *testing.T, where string, counts map[string]int, n int) {
	t.Helper()
	var missing, repeated []int
	for i := 0; i < n; i++ {
		switch c := counts[lineText(i)]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			repeated = append(repeated, i)
		}
	}
	require.Empty(t, missing, "%s: lines missing", where)
	require.Empty(t, repeated, "%s: lines repeated", where)
	require.Len(t, counts, n, "%s: unexpected lines", where)
}

// TestTailRotateTruncateRestart writes, renames (logrotate create mode),
// truncates (copytruncate) and adds files while vigil tails them, and
// restarts vigil mid-stream: every line arrives exactly once in the output
// file and at Loki.
func TestTailRotateTruncateRestart(t *testing.T) {
	dir := t.TempDir()
	src, dataDir := filepath.Join(dir, "src"), filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	rcv := newLokiReceiver(t)
	cfg := testConfig(src, out, rcv.url())
	a, b, c := filepath.Join(src, "a.log"), filepath.Join(src, "b.log"), filepath.Join(src, "c.log")

	appendLines(t, a, 0, 100)
	appendLines(t, b, 100, 200)
	r1 := start(t, testOptions(dataDir), cfg)
	waitReceived(t, rcv, 200)

	// logrotate, create mode: the app still holds a.log open while it is
	// renamed, writes a few more lines to it, then reopens the path.
	old, err := os.OpenFile(a, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	require.NoError(t, os.Rename(a, a+".1"))
	writeLines(t, old, 200, 250)
	require.NoError(t, old.Close())
	appendLines(t, a, 250, 350)

	// copytruncate: b.log is copied away (everything was read) and cut to 0.
	waitReceived(t, rcv, 350)
	require.NoError(t, os.Truncate(b, 0))
	appendLines(t, b, 350, 400)

	// A new file matching the glob.
	appendLines(t, c, 400, 450)
	waitReceived(t, rcv, 450)

	// Stop mid-stream: a writer keeps appending while vigil stops.
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 450; i < 650; i += 10 {
			appendLines(t, c, i, i+10)
			time.Sleep(time.Millisecond)
		}
	}()
	eventually(t, "some of the writer's lines", func() bool {
		_, lines := rcv.received()
		return len(lines) >= 480
	})
	r1.stop(t)
	<-writerDone
	appendLines(t, a, 650, 700)

	// A new Manager on the same data directory resumes where the first left.
	r2 := start(t, testOptions(dataDir), cfg)
	waitReceived(t, rcv, 700)
	eventually(t, "the output file to hold every line", func() bool {
		return len(outputLines(t, out)) >= 700
	})
	r2.stop(t)

	_, lines := rcv.received()
	requireExactlyOnce(t, "Loki", lines, 700)
	requireExactlyOnce(t, "output file", outputLines(t, out), 700)

	rcv.mtx.Lock()
	require.Empty(t, rcv.errs)
	require.Equal(t, map[string]bool{"team-a": true}, rcv.tenants)
	require.Equal(t, map[string]bool{`{app="shop", environment="production", log="app", service="checkout"}`: true}, rcv.streams)
	rcv.mtx.Unlock()

	// The second Manager counted only what it read itself.
	var pf positionsFile
	data, err := os.ReadFile(filepath.Join(dataDir, "logs", "positions.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &pf))
	require.NotEmpty(t, pf.Files)
	for _, f := range pf.Files {
		fi, err := os.Stat(f.Path)
		require.NoError(t, err)
		require.Equal(t, fi.Size(), f.Offset, f.Path)
	}
}

// TestLokiOutage: Loki answers 500 for a while; the client retries and
// nothing is lost or repeated.
func TestLokiOutage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	rcv := newLokiReceiver(t)
	rcv.failures.Store(8)
	cfg := testConfig(src, "", rcv.url())
	r := start(t, testOptions(filepath.Join(dir, "data")), cfg)

	for i := 0; i < 2000; i += 100 {
		appendLines(t, filepath.Join(src, "app.log"), i, i+100)
	}
	waitReceived(t, rcv, 2000)
	r.stop(t)
	require.EqualValues(t, 8, rcv.failed.Load(), "the receiver failed the first pushes")
	_, lines := rcv.received()
	requireExactlyOnce(t, "Loki", lines, 2000)
}

// TestOutputRotation: lumberjack keeps at most maxFiles backups.
func TestOutputRotation(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	cfg := testConfig(src, out, "")
	cfg.Collectors.Logs[0].MaxSize = config.Size(1 << 20)
	cfg.Collectors.Logs[0].MaxFiles = 2
	r := start(t, testOptions(filepath.Join(dir, "data")), cfg)

	// 4 MiB of 200-byte lines.
	line := strings.Repeat("x", 199) + "\n"
	f, err := os.Create(filepath.Join(src, "app.log"))
	require.NoError(t, err)
	const n = 4 << 20 / 200
	for i := 0; i < n; i += 1000 {
		_, err := f.WriteString(strings.Repeat(line, 1000))
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	total := (n + 999) / 1000 * 1000

	eventually(t, "every line read", func() bool {
		return testutil.ToFloat64(r.m.metrics.lines.WithLabelValues("app", LevelUnknown)) == float64(total)
	})
	r.stop(t)
	backups := func() []string {
		m, err := filepath.Glob(filepath.Join(dir, "out", "app-*.log"))
		require.NoError(t, err)
		return m
	}
	// lumberjack removes old backups in the background.
	eventually(t, "at most maxFiles backups", func() bool { return len(backups()) <= 2 })
	require.NotEmpty(t, backups())
	for _, p := range append(backups(), out) {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.LessOrEqual(t, fi.Size(), int64(1<<20), p)
	}
}

// TestLinesAndMetrics: Lines returns the newest lines in order, levels are
// counted, unknown logs are an error.
func TestLinesAndMetrics(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	opts := testOptions(filepath.Join(dir, "data"))
	opts.RecentLines = 10
	r := start(t, opts, testConfig(src, "", ""))
	require.Equal(t, []string{"app"}, r.m.Names())

	p := filepath.Join(src, "app.log")
	appendLines(t, p, 0, 25)
	// A partial line waits for its newline.
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"level":"fatal","msg":"partial`)
	require.NoError(t, err)

	eventually(t, "25 lines", func() bool {
		return testutil.ToFloat64(r.m.metrics.bytes.WithLabelValues("app")) > 0 &&
			sumLines(r) == 25
	})
	got, err := r.m.Lines("app", 5)
	require.NoError(t, err)
	require.Len(t, got, 5)
	for i, l := range got {
		require.Equal(t, lineText(20+i), l.Line)
		require.Equal(t, "app", l.Log)
		require.Equal(t, p, l.File)
		require.Equal(t, ParseLevel([]byte(lineText(20+i))), l.Level)
	}
	all, err := r.m.Lines("app", 0)
	require.NoError(t, err)
	require.Len(t, all, 10)
	require.Equal(t, lineText(15), all[0].Line)

	_, err = f.WriteString("\"}\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	eventually(t, "the completed line", func() bool { return sumLines(r) == 26 })
	last, err := r.m.Lines("app", 1)
	require.NoError(t, err)
	require.Equal(t, LevelFatal, last[0].Level)
	require.Equal(t, `{"level":"fatal","msg":"partial"}`, last[0].Line)

	// 26 lines: ids 0..24 cycle info, warn, error, debug; plus one fatal.
	for lvl, want := range map[string]float64{LevelInfo: 7, LevelWarn: 6, LevelError: 6, LevelDebug: 6, LevelFatal: 1, LevelUnknown: 0} {
		require.Equal(t, want, testutil.ToFloat64(r.m.metrics.lines.WithLabelValues("app", lvl)), lvl)
	}
	require.Equal(t, 1.0, testutil.ToFloat64(r.m.metrics.files.WithLabelValues("app")))

	_, err = r.m.Lines("nope", 1)
	require.ErrorContains(t, err, `no log "nope"`)

	// Removing the log by reload stops it and forgets its lines.
	require.NoError(t, r.m.ApplyConfig(&config.Config{}))
	require.Empty(t, r.m.Names())
	_, err = r.m.Lines("app", 1)
	require.Error(t, err)
}

func sumLines(r *running) int {
	total := 0.0
	for _, l := range levels {
		total += testutil.ToFloat64(r.m.metrics.lines.WithLabelValues("app", l))
	}
	return int(total)
}
