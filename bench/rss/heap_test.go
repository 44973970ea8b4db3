package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	vstorage "github.com/vigil-sh/vigil/storage"
)

// TestHeapPerSeries measures the live heap of the scrape-to-TSDB path at
// 2k, 20k and 100k series: vigil's TSDB (storage.Open) and a scrape cache
// holding each series' labels, as Prometheus's scrape loop keeps them, after
// three scrapes of the same body as the rss harness serves. Run it with and
// without -tags slicelabels to compare the two label layouts; it writes a
// heap profile per size to VIGIL_HEAP_PROFILE_DIR when set.
//
//	VIGIL_BENCH_HEAP=1 go test -count=1 -run TestHeapPerSeries -v ./bench/rss/
func TestHeapPerSeries(t *testing.T) {
	if os.Getenv("VIGIL_BENCH_HEAP") == "" {
		t.Skip("VIGIL_BENCH_HEAP=1 runs it")
	}
	for _, n := range []int{2_000, 20_000, 100_000} {
		t.Run("series="+strconv.Itoa(n), func(t *testing.T) {
			base := liveHeap()
			db, err := vstorage.Open(&vstorage.Options{Dir: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(t, err)
			defer db.Close()
			body := benchBody(n)
			cache := map[string]cached{}
			symbols := labels.NewSymbolTable()
			ts := time.Now().UnixMilli()
			for i := 0; i < 3; i++ {
				got, err := scrapeOnce(db, cache, symbols, body, ts+int64(i)*5000)
				require.NoError(t, err)
				require.Equal(t, n, got)
			}
			heap := liveHeap() - base
			t.Logf("series=%d live heap %.1f MB, %d bytes per series", n, float64(heap)/(1<<20), heap/uint64(n))
			if dir := os.Getenv("VIGIL_HEAP_PROFILE_DIR"); dir != "" {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%d.pb.gz", n)))
				require.NoError(t, err)
				require.NoError(t, pprof.Lookup("heap").WriteTo(f, 0))
				require.NoError(t, f.Close())
			}
			runtime.KeepAlive(cache)
		})
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// benchBody is the rss harness's exposition with fixed values.
func benchBody(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintln(&b, "# TYPE bench_requests_total counter")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "bench_requests_total{handler=\"/api/h%d\",code=\"200\"} %d\n", i, 1000+i)
	}
	return b.Bytes()
}

type cached struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

// scrapeOnce parses body, resolves each series through the cache (adding
// the target's labels on first sight, as the scrape loop does) and appends.
func scrapeOnce(db *tsdb.DB, cache map[string]cached, symbols *labels.SymbolTable, body []byte, ts int64) (int, error) {
	p, err := textparse.New(body, "text/plain; version=0.0.4", symbols, textparse.ParserOptions{
		IgnoreNativeHistograms: true,
		FallbackContentType:    string(promconfig.PrometheusText0_0_4),
	})
	if err != nil {
		return 0, err
	}
	target := labels.FromStrings("job", "app", "instance", "127.0.0.1:8080", "app", "app", "environment", "development", "service", "bench")
	b := labels.NewBuilder(labels.EmptyLabels())
	app := db.AppenderV2(context.Background())
	var (
		n    int
		lset labels.Labels
	)
	for {
		et, err := p.Next()
		if err != nil {
			break
		}
		if et != textparse.EntrySeries {
			continue
		}
		met, _, v := p.Series()
		ce, ok := cache[string(met)]
		if !ok {
			p.Labels(&lset)
			b.Reset(lset)
			target.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
			ce.lset = b.Labels()
		}
		ref, err := app.Append(ce.ref, ce.lset, 0, ts, v, nil, nil, storage.AOptions{})
		if err != nil {
			_ = app.Rollback()
			return n, err
		}
		if !ok {
			ce.ref = ref
			cache[string(met)] = ce
		}
		n++
	}
	return n, app.Commit()
}
