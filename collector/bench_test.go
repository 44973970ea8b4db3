package collector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	vstorage "github.com/vigil-sh/vigil/storage"
)

// benchBody is a text exposition of n series: counters in families of ten,
// each with two labels, as a typical instrumented HTTP service exposes them.
func benchBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&b, "# HELP bench_requests_%d_total Requests handled by handler %d.\n", i/10, i/10)
			fmt.Fprintf(&b, "# TYPE bench_requests_%d_total counter\n", i/10)
		}
		fmt.Fprintf(&b, "bench_requests_%d_total{path=\"/api/v1/items/%d\",code=\"%d\"} %d\n", i/10, i%10, 200+i%5, 1000+i)
	}
	return b.Bytes()
}

type cachedSeries struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

// ingester does what a scrape loop does with a body once it is read: parse,
// resolve each series through a per-target cache (target labels are added
// once, on the first sight of a series), append, commit.
type ingester struct {
	db      *tsdb.DB
	target  labels.Labels
	symbols *labels.SymbolTable
	cache   map[string]cachedSeries
	builder *labels.Builder
}

func newIngester(db *tsdb.DB) *ingester {
	return &ingester{
		db: db,
		target: labels.FromStrings("job", "app", "instance", "127.0.0.1:8080",
			"app", "app", "environment", "production", "service", "checkout"),
		symbols: labels.NewSymbolTable(),
		cache:   map[string]cachedSeries{},
		builder: labels.NewBuilder(labels.EmptyLabels()),
	}
}

func (in *ingester) scrape(body []byte, ts int64) (int, error) {
	p, err := textparse.New(body, "text/plain; version=0.0.4", in.symbols, textparse.ParserOptions{
		IgnoreNativeHistograms: true,
		FallbackContentType:    string(promconfig.PrometheusText0_0_4),
	})
	if err != nil {
		return 0, err
	}
	app := in.db.AppenderV2(context.Background())
	var (
		n    int
		lset labels.Labels
	)
	for {
		et, err := p.Next()
		if err != nil {
			break // io.EOF, or a parse error the benchmark body cannot have
		}
		if et != textparse.EntrySeries {
			continue
		}
		met, _, v := p.Series()
		ce, ok := in.cache[string(met)]
		if !ok {
			p.Labels(&lset)
			in.builder.Reset(lset)
			in.target.Range(func(l labels.Label) { in.builder.Set(l.Name, l.Value) })
			ce.lset = in.builder.Labels()
		}
		ref, err := app.Append(ce.ref, ce.lset, 0, ts, v, nil, nil, storage.AOptions{})
		if err != nil {
			_ = app.Rollback()
			return n, err
		}
		if !ok {
			ce.ref = ref
			in.cache[string(met)] = ce
		}
		n++
	}
	return n, app.Commit()
}

func BenchmarkScrapeIngest(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run("series="+strconv.Itoa(n), func(b *testing.B) {
			db, err := vstorage.Open(&vstorage.Options{Dir: b.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			defer db.Close()
			body := benchBody(n)
			in := newIngester(db)

			ts := time.Now().UnixMilli()
			// The first scrape creates the series; the steady state is what
			// is measured.
			got, err := in.scrape(body, ts)
			require.NoError(b, err)
			require.Equal(b, n, got)

			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ts += 1000
				if _, err := in.scrape(body, ts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// The end-to-end measurement is opt-in and bounded; these environment
// variables drive it.
const (
	// envE2E turns TestScrapeE2EThroughput on.
	envE2E = "VIGIL_BENCH_E2E"
	// envE2ESeconds sets how long each measurement lasts (default 10s).
	envE2ESeconds = "VIGIL_BENCH_E2E_SECONDS"
	// envE2ETarget, a series count, makes the test binary the scrape target
	// (TestScrapeE2ETarget); only the helper process has it set.
	envE2ETarget = "VIGIL_BENCH_E2E_TARGET"
	// envE2ETargetLife bounds the helper process's life, so that it cannot
	// outlive a parent that was killed without closing its stdin.
	envE2ETargetLife = "VIGIL_BENCH_E2E_TARGET_LIFE"
	// targetReady starts the line on which the helper prints its address.
	targetReady = "vigil-bench-target listening on "
)

// TestScrapeE2EThroughput runs the real Manager, appending into a real TSDB
// in a temporary directory, against one target of 10k and then 100k series
// at a 1s interval, and logs samples appended per CPU-second of this
// process. The target runs in a process of its own (this test binary again,
// as TestScrapeE2ETarget), so the figure holds the scraping side only:
// scrape loop, HTTP client, parser, TSDB head and WAL, garbage collection.
// It is a measurement, not a check: set VIGIL_BENCH_E2E=1 to run it, and
// VIGIL_BENCH_E2E_SECONDS to change its 10s length.
func TestScrapeE2EThroughput(t *testing.T) {
	if os.Getenv(envE2E) == "" {
		t.Skip("set " + envE2E + "=1 to measure end-to-end scrape throughput")
	}
	length := 10 * time.Second
	if s := os.Getenv(envE2ESeconds); s != "" {
		secs, err := strconv.Atoi(s)
		require.NoError(t, err, envE2ESeconds)
		require.True(t, secs >= 1 && secs <= 600, "%s=%d: want 1 to 600", envE2ESeconds, secs)
		length = time.Duration(secs) * time.Second
	}
	for _, n := range []int{10_000, 100_000} {
		t.Run("series="+strconv.Itoa(n), func(t *testing.T) {
			// The helper lives long enough for the first scrape, the
			// measurement and the last scrape, and no longer.
			target := startBenchTarget(t, n, length+2*time.Minute)

			db := openDB(t)
			t.Cleanup(func() { require.NoError(t, db.Close()) })
			app := &commitCounter{AppendableV2: db, committed: make(chan struct{}, 1)}
			cfg := testConfig(&config.AppCollectorConfig{Targets: []string{target.addr}})
			cfg.Metrics.Interval = config.Duration(time.Second)
			runBenchManager(t, cfg, app)

			// The first scrape creates the series; measure from its
			// commit to the commit of the first scrape after length, so
			// that the window holds whole steady-state scrapes only.
			for app.samples.Load() < int64(n) {
				app.waitCommit(t)
			}
			// The first scrape commits every newSeriesPerCommit new series
			// (batch.go): its last commit may still be to come. Start on
			// the next commit, which ends a scrape either way.
			app.drain()
			app.waitCommit(t)
			scrapes0, samples0, cpu0, wall0 := app.commits.Load(), app.samples.Load(), cpuTime(t), time.Now()
			targetCPU0 := target.cpu(t)
			time.Sleep(length)
			app.drain()
			app.waitCommit(t)
			scrapes, samples := app.commits.Load()-scrapes0, app.samples.Load()-samples0
			cpu, wall := cpuTime(t)-cpu0, time.Since(wall0)
			targetCPU := target.cpu(t) - targetCPU0

			require.Positive(t, scrapes)
			require.GreaterOrEqual(t, samples, scrapes*int64(n), "a scrape in the window did not append every series")
			t.Logf("series=%d: %d scrapes, %d samples in %s wall, %s CPU (%.1f ms per scrape): %.0f samples per CPU-second (%.2f cores busy); target process: %s CPU",
				n, scrapes, samples, wall.Round(time.Millisecond), cpu.Round(time.Millisecond),
				float64(cpu.Microseconds())/1000/float64(scrapes),
				float64(samples)/cpu.Seconds(), cpu.Seconds()/wall.Seconds(), targetCPU.Round(time.Millisecond))
		})
	}
}

// TestScrapeE2ETarget is not a test of its own: it is the scrape target of
// TestScrapeE2EThroughput, run by it in a separate process with
// VIGIL_BENCH_E2E_TARGET set to a series count. It serves benchBody on
// 127.0.0.1 (GET /metrics) with its own CPU time in nanoseconds (GET /cpu),
// prints its address on stdout and serves until stdin is closed or
// VIGIL_BENCH_E2E_TARGET_LIFE has passed.
func TestScrapeE2ETarget(t *testing.T) {
	spec := os.Getenv(envE2ETarget)
	if spec == "" {
		t.Skip("helper process of TestScrapeE2EThroughput")
	}
	n, err := strconv.Atoi(spec)
	require.NoError(t, err, envE2ETarget)
	require.Positive(t, n, envE2ETarget)
	life, err := time.ParseDuration(os.Getenv(envE2ETargetLife))
	require.NoError(t, err, envE2ETargetLife)

	body := benchBody(n)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /cpu", func(w http.ResponseWriter, _ *http.Request) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, ru.Utime.Nano()+ru.Stime.Nano())
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	_, err = fmt.Fprintf(os.Stdout, "%s%s\n", targetReady, l.Addr())
	require.NoError(t, err)

	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-stdinClosed:
	case <-time.After(life):
		t.Logf("served for %s without being stopped; exiting", life)
	}
	require.NoError(t, srv.Close())
	require.ErrorIs(t, <-served, http.ErrServerClosed)
}

// benchTarget is a running TestScrapeE2ETarget process.
type benchTarget struct {
	addr string
}

// startBenchTarget starts this test binary again as a scrape target of n
// series that lives at most life, and stops it when t ends.
func startBenchTarget(t *testing.T, n int, life time.Duration) *benchTarget {
	t.Helper()
	cmd := exec.Command(os.Args[0],
		"-test.run=^TestScrapeE2ETarget$", "-test.count=1",
		"-test.timeout="+(life+time.Minute).String())
	cmd.Env = append(os.Environ(),
		envE2ETarget+"="+strconv.Itoa(n), envE2ETargetLife+"="+life.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// One goroutine reads stdout to its end (the address, then whatever
	// the test framework prints) and only then waits, as os/exec requires.
	addrs := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), targetReady); ok {
				addrs <- addr
			}
		}
		exited <- cmd.Wait()
	}()
	stop := func() error {
		_ = stdin.Close()
		select {
		case err := <-exited:
			return err
		case <-time.After(waitFor):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("target process %d did not exit after its stdin was closed; killed it", cmd.Process.Pid)
		}
	}

	select {
	case addr := <-addrs:
		t.Cleanup(func() {
			if err := stop(); err != nil {
				t.Errorf("stop target process: %v\n%s", err, stderr.String())
			}
		})
		return &benchTarget{addr: addr}
	case err := <-exited:
		t.Fatalf("target process exited before listening: %v\n%s", err, stderr.String())
	case <-time.After(waitFor):
		err := stop()
		t.Fatalf("target process did not print its address within %s: %v\n%s", waitFor, err, stderr.String())
	}
	return nil
}

// cpu is the CPU time the target process has used so far.
func (bt *benchTarget) cpu(t *testing.T) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: waitFor}
	resp, err := client.Get("http://" + bt.addr + "/cpu")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	ns, err := strconv.ParseInt(string(b), 10, 64)
	require.NoError(t, err)
	return time.Duration(ns)
}

// runBenchManager runs a Manager with cfg applied that appends to app, and
// stops it when t ends (before the TSDB's cleanup, which was registered
// first, closes it).
func runBenchManager(t *testing.T, cfg *config.Config, app storage.AppendableV2) {
	t.Helper()
	m, err := New(&Options{Appendable: app, ReloadInterval: 50 * time.Millisecond},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// commitCounter passes appends through to the TSDB and counts committed
// scrapes and their samples, signalling each commit, so that a measurement
// can start and end on scrape boundaries without polling.
type commitCounter struct {
	storage.AppendableV2
	commits   atomic.Int64
	samples   atomic.Int64
	committed chan struct{}
}

// AppenderV2 returns an appender that counts what it commits.
func (c *commitCounter) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &countingCommitAppender{AppenderV2: c.AppendableV2.AppenderV2(ctx), c: c}
}

// drain forgets a commit signalled before now.
func (c *commitCounter) drain() {
	select {
	case <-c.committed:
	default:
	}
}

// waitCommit waits for the next commit.
func (c *commitCounter) waitCommit(t *testing.T) {
	t.Helper()
	select {
	case <-c.committed:
	case <-time.After(waitFor):
		t.Fatalf("no scrape committed within %s", waitFor)
	}
}

type countingCommitAppender struct {
	storage.AppenderV2
	c       *commitCounter
	pending int64
}

func (a *countingCommitAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	a.pending++
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *countingCommitAppender) Commit() error {
	if err := a.AppenderV2.Commit(); err != nil {
		return err
	}
	a.c.samples.Add(a.pending)
	a.c.commits.Add(1)
	a.pending = 0
	select {
	case a.c.committed <- struct{}{}:
	default:
	}
	return nil
}

func (a *countingCommitAppender) Rollback() error {
	a.pending = 0
	return a.AppenderV2.Rollback()
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
