package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	vstorage "github.com/vigil-sh/vigil/storage"
)

const (
	testInterval = 200 * time.Millisecond
	// waitFor bounds every poll; it is far above what the tests need, so
	// that a slow machine only makes them slower, never failing.
	waitFor = 20 * time.Second
	tick    = 20 * time.Millisecond
)

// exposition is a small text-format body, as an instrumented app serves it.
const exposition = `# HELP test_requests_total Requests handled.
# TYPE test_requests_total counter
test_requests_total{code="200"} 42
test_requests_total{code="500"} 1
# HELP test_in_flight Requests in flight.
# TYPE test_in_flight gauge
test_in_flight 3
`

// app is an httptest server on 127.0.0.1 serving exposition.
func app(t *testing.T, contentType string) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if contentType == "" {
			w.Header()["Content-Type"] = nil // no header at all, no sniffing
		} else {
			w.Header().Set("Content-Type", contentType)
		}
		fmt.Fprint(w, exposition)
	}))
	t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().String()
}

// deadAddress is a 127.0.0.1 port that nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func testConfig(app *config.AppCollectorConfig) *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: "test",
		Metrics:     config.MetricsConfig{Interval: config.Duration(testInterval)},
		Collectors:  config.CollectorsConfig{App: app},
	}
}

func openDB(t *testing.T) *tsdb.DB {
	t.Helper()
	db, err := vstorage.Open(&vstorage.Options{Dir: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	return db
}

// countingAppendable counts the samples appended through it.
type countingAppendable struct {
	storage.AppendableV2
	n atomic.Int64
}

func (c *countingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &countingAppender{AppenderV2: c.AppendableV2.AppenderV2(ctx), n: &c.n}
}

type countingAppender struct {
	storage.AppenderV2
	n *atomic.Int64
}

func (a *countingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	a.n.Add(1)
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

type harness struct {
	db      *tsdb.DB
	m       *Manager
	reg     *prometheus.Registry
	counter *countingAppendable
	cancel  context.CancelFunc
	done    chan error
}

// start runs a Manager with cfg applied, writing to a fresh TSDB. Cleanup
// stops it and then closes the TSDB, in the order main must use.
func start(t *testing.T, cfg *config.Config, opts Options) *harness {
	t.Helper()
	h := &harness{db: openDB(t), reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	h.counter = &countingAppendable{AppendableV2: h.db}
	opts.Appendable = h.counter
	if opts.ReloadInterval == 0 {
		opts.ReloadInterval = 50 * time.Millisecond
	}
	m, err := New(&opts, slog.New(slog.DiscardHandler), h.reg)
	require.NoError(t, err)
	h.m = m
	require.NoError(t, m.ApplyConfig(cfg))

	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		h.stop(t)
		require.NoError(t, h.db.Close())
	})
	return h
}

// stop cancels Run and waits for it to return; calling it twice is harmless.
func (h *harness) stop(t *testing.T) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// last returns the newest sample of every series matching ms, keyed by the
// series' labels.
func (h *harness) last(t *testing.T, ms ...*labels.Matcher) map[string]float64 {
	t.Helper()
	q, err := h.db.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	out := map[string]float64{}
	ss := q.Select(context.Background(), false, nil, ms...)
	for ss.Next() {
		it := ss.At().Iterator(nil)
		var v float64
		for it.Next() != 0 {
			_, v = it.At()
		}
		require.NoError(t, it.Err())
		out[ss.At().Labels().String()] = v
	}
	require.NoError(t, ss.Err())
	return out
}

// waitValue polls until the newest sample of the one series with labels
// want equals v (NaN means a staleness marker).
func (h *harness) waitValue(t *testing.T, want labels.Labels, v float64) {
	t.Helper()
	var ms []*labels.Matcher
	want.Range(func(l labels.Label) {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	var seen map[string]float64
	ok := func() bool {
		seen = h.last(t, ms...)
		got, found := seen[want.String()]
		if !found {
			return false
		}
		if math.IsNaN(v) {
			return value.IsStaleNaN(got)
		}
		return got == v
	}
	require.Eventually(t, ok, waitFor, tick, "series %s never had value %v; saw %v", want, v, seen)
}

func appSeries(name, instance string, extra ...string) labels.Labels {
	base := []string{"__name__", name, "app", "app", "environment", "test", "service", "checkout", "job", "app", "instance", instance}
	return labels.FromStrings(append(base, extra...)...)
}

func TestManagerScrapesAppAndSeesItGoDown(t *testing.T) {
	srv, addr := app(t, "text/plain; version=0.0.4; charset=utf-8")
	cfg := testConfig(&config.AppCollectorConfig{
		Targets:          []string{addr},
		CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"team": "payments"}},
	})
	h := start(t, cfg, Options{})

	h.waitValue(t, appSeries("test_requests_total", addr, "code", "200", "team", "payments"), 42)
	h.waitValue(t, appSeries("test_in_flight", addr, "team", "payments"), 3)
	h.waitValue(t, appSeries("up", addr, "team", "payments"), 1)
	require.NotEmpty(t, h.last(t, labels.MustNewMatcher(labels.MatchEqual, "__name__", "scrape_duration_seconds"),
		labels.MustNewMatcher(labels.MatchEqual, "app", "app")))

	srv.Close()
	h.waitValue(t, appSeries("up", addr, "team", "payments"), 0)

	// The scrape manager's own metrics are on the registerer it was given.
	mfs, err := h.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	require.True(t, names["prometheus_target_scrape_pools_total"], "scrape manager metrics registered")
	require.True(t, names["prometheus_sd_discovered_targets"], "discovery manager metrics registered")

	active := h.m.ScrapeManager().TargetsActive()
	require.Len(t, active[JobApp], 1)
}

func TestManagerBadTargetDoesNotStopOthers(t *testing.T) {
	_, good := app(t, "text/plain; version=0.0.4")
	bad := deadAddress(t)
	h := start(t, testConfig(&config.AppCollectorConfig{Targets: []string{bad, good}}), Options{})

	h.waitValue(t, appSeries("up", bad), 0)
	h.waitValue(t, appSeries("up", good), 1)
	h.waitValue(t, appSeries("test_requests_total", good, "code", "500"), 1)
}

func TestManagerSloppyContentTypes(t *testing.T) {
	tests := []struct{ name, contentType string }{
		{name: "none", contentType: ""},
		{name: "html", contentType: "text/html; charset=utf-8"},
		{name: "bogus", contentType: "application/x-bogus"},
		{name: "json", contentType: "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := app(t, tt.contentType)
			h := start(t, testConfig(&config.AppCollectorConfig{Targets: []string{addr}}), Options{})
			h.waitValue(t, appSeries("test_in_flight", addr), 3)
			h.waitValue(t, appSeries("up", addr), 1)
		})
	}
}

// writeFileSD writes a file_sd JSON file atomically, so that the watcher
// never reads half of it.
func writeFileSD(t *testing.T, path string, groups []map[string]any) {
	t.Helper()
	b, err := json.Marshal(groups)
	require.NoError(t, err)
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func TestManagerFileSD(t *testing.T) {
	_, first := app(t, "text/plain; version=0.0.4")
	_, second := app(t, "text/plain; version=0.0.4")
	dir := t.TempDir()
	path := filepath.Join(dir, "targets.json")
	writeFileSD(t, path, []map[string]any{{"targets": []string{first}}})

	cfg := testConfig(&config.AppCollectorConfig{FileSD: []string{filepath.Join(dir, "*.json")}})
	h := start(t, cfg, Options{})
	h.waitValue(t, appSeries("up", first), 1)
	h.waitValue(t, appSeries("test_in_flight", first), 3)

	// A change of the file is picked up; its labels win over the defaults.
	writeFileSD(t, path, []map[string]any{{
		"targets": []string{second},
		"labels":  map[string]string{"app": "worker"},
	}})
	want := labels.FromStrings("__name__", "test_in_flight", "app", "worker", "environment", "test",
		"service", "checkout", "job", "app", "instance", second)
	h.waitValue(t, want, 3)
	// The target that left the file gets staleness markers.
	h.waitValue(t, appSeries("up", first), math.NaN())
}

func TestManagerApplyConfig(t *testing.T) {
	_, first := app(t, "text/plain; version=0.0.4")
	_, second := app(t, "text/plain; version=0.0.4")
	h := start(t, testConfig(&config.AppCollectorConfig{Targets: []string{first}}), Options{})
	h.waitValue(t, appSeries("up", first), 1)

	// A bad config is refused and the running one keeps scraping.
	err := h.m.ApplyConfig(testConfig(&config.AppCollectorConfig{Targets: []string{"http://" + second}}))
	require.ErrorContains(t, err, "is not host:port")
	before := h.counter.n.Load()
	require.Eventually(t, func() bool { return h.counter.n.Load() > before }, waitFor, tick)

	require.NoError(t, h.m.ApplyConfig(testConfig(&config.AppCollectorConfig{Targets: []string{second}})))
	h.waitValue(t, appSeries("up", second), 1)
	h.waitValue(t, appSeries("up", first), math.NaN())
}

func TestManagerSelfScrape(t *testing.T) {
	self := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/internal/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		// A label of vigil's own target wins over the metric's (issue 9:
		// vigil's series are never labelled as the app's).
		fmt.Fprint(w, "vigil_build_info{version=\"dev\",environment=\"from-metrics\"} 1\n")
	}))
	t.Cleanup(self.Close)
	addr := self.Listener.Addr().String()

	h := start(t, testConfig(nil), Options{SelfTarget: addr, SelfMetricsPath: "/internal/metrics"})
	h.waitValue(t, labels.FromStrings("__name__", "up", "app", "vigil", "environment", "test",
		"service", "checkout", "job", JobSelf, "instance", addr), 1)
	h.waitValue(t, labels.FromStrings("__name__", "vigil_build_info", "app", "vigil", "environment", "test",
		"exported_environment", "from-metrics", "service", "checkout", "job", JobSelf, "instance", addr, "version", "dev"), 1)
}

func TestManagerRunStopsAppending(t *testing.T) {
	_, addr := app(t, "text/plain; version=0.0.4")
	h := start(t, testConfig(&config.AppCollectorConfig{Targets: []string{addr}}), Options{})
	h.waitValue(t, appSeries("up", addr), 1)

	begin := time.Now()
	h.stop(t)
	t.Logf("Run returned %s after cancel", time.Since(begin))

	after := h.counter.n.Load()
	// Three scrape intervals: long enough for a loop that survived to
	// append, short enough for a unit test.
	time.Sleep(3 * testInterval)
	require.Equal(t, after, h.counter.n.Load(), "samples appended after Run returned")
}

func TestManagerRunTwice(t *testing.T) {
	db := openDB(t)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	m, err := New(&Options{Appendable: db}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(testConfig(nil)))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, m.Run(ctx), "Run with a finished context returns at once")
	require.ErrorContains(t, m.Run(ctx), "Run called twice")
}

func TestNew(t *testing.T) {
	_, err := New(nil, nil, nil)
	require.ErrorContains(t, err, "no appendable")
	_, err = New(&Options{}, nil, nil)
	require.ErrorContains(t, err, "no appendable")

	db := openDB(t)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	reg := prometheus.NewRegistry()
	_, err = New(&Options{Appendable: db}, nil, reg)
	require.NoError(t, err)
	_, err = New(&Options{Appendable: db}, nil, reg)
	require.Error(t, err, "a second Manager on the same registerer clashes")
}
