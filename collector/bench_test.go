package collector

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
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

// TestScrapeE2EThroughput runs the real Manager against one target of 10k
// and 100k series at a 1s interval and logs samples appended per CPU-second
// of this process (scraper, TSDB and the test's HTTP server together). It is
// a measurement, not a check: set VIGIL_BENCH_E2E=1 to run it, and
// VIGIL_BENCH_E2E_SECONDS to change its 10s length.
func TestScrapeE2EThroughput(t *testing.T) {
	if os.Getenv("VIGIL_BENCH_E2E") == "" {
		t.Skip("set VIGIL_BENCH_E2E=1 to measure end-to-end scrape throughput")
	}
	length := 10 * time.Second
	if s := os.Getenv("VIGIL_BENCH_E2E_SECONDS"); s != "" {
		secs, err := strconv.Atoi(s)
		require.NoError(t, err)
		length = time.Duration(secs) * time.Second
	}
	for _, n := range []int{10_000, 100_000} {
		t.Run("series="+strconv.Itoa(n), func(t *testing.T) {
			body := benchBody(n)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; version=0.0.4")
				_, _ = w.Write(body)
			}))
			defer srv.Close()

			cfg := testConfig(&config.AppCollectorConfig{Targets: []string{srv.Listener.Addr().String()}})
			cfg.Metrics.Interval = config.Duration(time.Second)
			h := start(t, cfg, Options{})

			// Measure from the first complete scrape, so that series
			// creation is not in the figure.
			require.Eventually(t, func() bool { return h.counter.n.Load() >= int64(n) }, time.Minute, tick)
			samples0, cpu0, wall0 := h.counter.n.Load(), cpuTime(t), time.Now()
			time.Sleep(length)
			samples, cpu, wall := h.counter.n.Load()-samples0, cpuTime(t)-cpu0, time.Since(wall0)

			t.Logf("series=%d: %d samples in %s wall, %s CPU: %.0f samples per CPU-second (%.2f cores busy)",
				n, samples, wall.Round(time.Millisecond), cpu.Round(time.Millisecond),
				float64(samples)/cpu.Seconds(), cpu.Seconds()/wall.Seconds())
		})
	}
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
