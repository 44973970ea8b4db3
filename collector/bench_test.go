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

