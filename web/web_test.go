package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// ruleFile has one alert that fires at its first evaluation, one that stays
// pending for an hour, and one that never matches.
const ruleFile = `groups:
  - name: vigil-test
    interval: 100ms
    rules:
      - alert: HighCPU
        expr: cpu_usage > 80
        labels:
          severity: critical
        annotations:
          summary: "CPU at {{ $value }}%"
      - alert: CPUWarming
        expr: cpu_usage > 50
        for: 1h
        labels:
          severity: warning
      - alert: Never
        expr: cpu_usage > 1000
      - record: cpu_usage:doubled
        expr: cpu_usage * 2
`

// testEnv is a handler on real components: a TSDB in a temp dir with samples,
// a PromQL engine, a Prometheus rules manager and a registry.
type testEnv struct {
	h     *Handler
	srv   *httptest.Server
	db    *tsdb.DB
	reg   *prometheus.Registry
	rules *rules.Manager
	cfg   *config.Config
	// sampleTime is when the test samples were written.
	sampleTime time.Time

	mu        sync.Mutex // guards the fields below, which the server goroutine reads
	reloadErr error
	reloads   int
}

func (env *testEnv) setReloadErr(err error) {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.reloadErr = err
}

func (env *testEnv) reloadCount() int {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.reloads
}

func testConfig() *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: config.EnvProduction,
		Metrics: config.MetricsConfig{
			Path:     "/metrics",
			Interval: config.Duration(15 * time.Second),
			Labels:   map[string]string{"environment": "production"},
		},
		Storage:   config.StorageConfig{Retention: config.Duration(15 * 24 * time.Hour)},
		RuleFiles: []string{"rules/*.yml"},
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openDB(t testing.TB) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), discardLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// appendSamples writes the test series at ts.
func appendSamples(t testing.TB, db *tsdb.DB, ts time.Time) {
	t.Helper()
	app := db.Appender(context.Background())
	for _, s := range []struct {
		lset labels.Labels
		v    float64
	}{
		{labels.FromStrings("__name__", "cpu_usage", "app", "app", "instance", "a"), 95},
		{labels.FromStrings("__name__", "cpu_usage", "app", "database", "instance", "b"), 60},
		{labels.FromStrings("__name__", "up", "app", "app", "instance", "a"), 1},
	} {
		_, err := app.Append(0, s.lset, ts.UnixMilli(), s.v)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:        discardLogger(),
		MaxSamples:    1_000_000,
		Timeout:       10 * time.Second,
		LookbackDelta: 5 * time.Minute,
	})
}

func startRules(t testing.TB, db *tsdb.DB, engine *promql.Engine) *rules.Manager {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rules.yml")
	require.NoError(t, os.WriteFile(file, []byte(ruleFile), 0o600))
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(engine, db),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		AppendableV2: db,
		Queryable:    db,
		Context:      context.Background(),
		Logger:       discardLogger(),
		Registerer:   prometheus.NewRegistry(),
	})
	require.NoError(t, m.Update(100*time.Millisecond, []string{file}, labels.EmptyLabels(), "", nil))
	go m.Run()
	t.Cleanup(m.Stop)
	return m
}

// fakeTargets is one active target with metadata and one dropped target.
type fakeTargets struct {
	active, dropped map[string][]*scrape.Target
}

func (f fakeTargets) TargetsActive() map[string][]*scrape.Target  { return f.active }
func (f fakeTargets) TargetsDropped() map[string][]*scrape.Target { return f.dropped }
func (f fakeTargets) TargetsDroppedCounts() map[string]int {
	out := map[string]int{}
	for p, ts := range f.dropped {
		out[p] = len(ts)
	}
	return out
}

type fakeMetadata []scrape.MetricMetadata

func (m fakeMetadata) ListMetadata() []scrape.MetricMetadata { return m }
func (m fakeMetadata) GetMetadata(name string) (scrape.MetricMetadata, bool) {
	for _, md := range m {
		if md.MetricFamily == name {
			return md, true
		}
	}
	return scrape.MetricMetadata{}, false
}
func (m fakeMetadata) SizeMetadata() int   { return len(m) }
func (m fakeMetadata) LengthMetadata() int { return len(m) }

func newFakeTargets() fakeTargets {
	sc := &promconfig.ScrapeConfig{
		JobName:        "app",
		ScrapeInterval: model.Duration(15 * time.Second),
		ScrapeTimeout:  model.Duration(10 * time.Second),
		MetricsPath:    "/metrics",
		Scheme:         "http",
	}
	active := scrape.NewTarget(labels.FromStrings(
		model.AddressLabel, "127.0.0.1:8080",
		model.SchemeLabel, "http",
		model.MetricsPathLabel, "/metrics",
		model.JobLabel, "app",
		"app", "app",
		"instance", "127.0.0.1:8080",
	), sc, model.LabelSet{model.AddressLabel: "127.0.0.1:8080"}, nil)
	active.SetMetadataStore(fakeMetadata{
		{MetricFamily: "cpu_usage", Type: model.MetricTypeGauge, Help: "CPU usage in percent.", Unit: ""},
	})
	dropped := scrape.NewTarget(labels.EmptyLabels(), sc, model.LabelSet{model.AddressLabel: "127.0.0.1:9999"}, nil)
	return fakeTargets{
		active:  map[string][]*scrape.Target{"app": {active}},
		dropped: map[string][]*scrape.Target{"app": {dropped}},
	}
}

// newTestEnv builds the handler on real components and serves it on 127.0.0.1.
func newTestEnv(t testing.TB, modify ...func(*Options)) *testEnv {
	t.Helper()
	env := &testEnv{db: openDB(t), reg: prometheus.NewRegistry(), cfg: testConfig()}
	env.sampleTime = time.Now().Add(-time.Second).Truncate(time.Millisecond)
	appendSamples(t, env.db, env.sampleTime)
	engine := newEngine()
	env.rules = startRules(t, env.db, engine)

	opts := &Options{
		DB:          env.db,
		QueryEngine: engine,
		Rules:       env.rules,
		Targets:     newFakeTargets(),
		Gatherer:    env.reg,
		Reload: func() error {
			env.mu.Lock()
			defer env.mu.Unlock()
			env.reloads++
			return env.reloadErr
		},
		Version: "0.1.0",
	}
	for _, m := range modify {
		m(opts)
	}
	env.h = New(opts, discardLogger(), env.reg)
	require.NoError(t, env.h.ApplyConfig(env.cfg))
	env.srv = httptest.NewServer(env.h.Router())
	t.Cleanup(env.srv.Close)
	return env
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestHealthAndReady(t *testing.T) {
	env := newTestEnv(t)
	tests := []struct {
		name       string
		ready      bool
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"health before ready", false, http.MethodGet, "/health", 200, `{"status":"ok"}`},
		{"health head", false, http.MethodHead, "/health", 200, ``},
		{"ready before ready", false, http.MethodGet, "/ready", 503, `{"status":"not ready"}`},
		{"ready head before ready", false, http.MethodHead, "/ready", 503, ``},
		{"api before ready", false, http.MethodGet, "/api/v1/query?query=up", 503, `{"status":"error","errorType":"unavailable","error":"vigil is not ready"}`},
		{"ready after ready", true, http.MethodGet, "/ready", 200, `{"status":"ready"}`},
		{"ready head after ready", true, http.MethodHead, "/ready", 200, ``},
		{"health after ready", true, http.MethodGet, "/health", 200, `{"status":"ok"}`},
		{"not ready again", false, http.MethodGet, "/ready", 503, `{"status":"not ready"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.h.SetReady(tc.ready)
			status, body := do(t, tc.method, env.srv.URL+tc.path, nil)
			require.Equal(t, tc.wantStatus, status)
			if tc.wantBody == "" {
				require.Empty(t, body)
				return
			}
			require.JSONEq(t, tc.wantBody, body)
		})
	}
}

func TestReload(t *testing.T) {
	env := newTestEnv(t)
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"success", nil, 200, `{"status":"success"}`},
		{"failure", errors.New(`vigil.yaml:3: metrics.interval "5x" is not a duration`), 500,
			`{"status":"error","error":"vigil.yaml:3: metrics.interval \"5x\" is not a duration"}`},
		{"success after failure", nil, 200, `{"status":"success"}`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.setReloadErr(tc.err)
			status, body := do(t, http.MethodPost, env.srv.URL+"/-/reload", nil)
			require.Equal(t, tc.wantStatus, status)
			require.JSONEq(t, tc.wantBody, body)
			require.Equal(t, i+1, env.reloadCount())

			info, err := env.h.runtimeInfo()
			require.NoError(t, err)
			require.Equal(t, tc.err == nil, info.ReloadConfigSuccess)
		})
	}

	t.Run("without a reload function", func(t *testing.T) {
		h := New(&Options{}, discardLogger(), prometheus.NewRegistry())
		rec := httptest.NewRecorder()
		h.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/reload", nil))
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.JSONEq(t, `{"status":"error","error":"reload is not available"}`, rec.Body.String())
	})
}

func TestNotFound(t *testing.T) {
	env := newTestEnv(t)
	env.h.SetReady(true)
	tests := []struct {
		method, path string
	}{
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/api/v1/nope"},
		{http.MethodGet, "/-/reload"},
		{http.MethodDelete, "/api/v1/series"},
		{http.MethodPost, "/api/v1/admin/tsdb/snapshot"},
		{http.MethodPost, "/api/v1/write"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body := do(t, tc.method, env.srv.URL+tc.path, nil)
			require.Equal(t, http.StatusNotFound, status)
			require.JSONEq(t, `{"status":"error","error":"not found"}`, body)
		})
	}
}

func TestRouteTable(t *testing.T) {
	env := newTestEnv(t)
	env.h.SetReady(true)

	type key struct{ method, path string }
	table := map[key]string{}
	for _, r := range env.h.routes {
		k := key{r.method, r.path}
		_, dup := table[k]
		require.False(t, dup, "route %s %s is listed twice", r.method, r.path)
		table[k] = r.permission
	}
	registered := map[key]bool{}
	for _, r := range env.h.engine.Routes() {
		k := key{r.Method, r.Path}
		registered[k] = true
		require.Contains(t, table, k, "gin serves %s %s, which is not in the route table", r.Method, r.Path)
	}
	for k := range table {
		require.True(t, registered[k], "route table lists %s %s, which gin does not serve", k.method, k.path)
	}

	// vigil's own routes, with DESIGN.md's permissions; under /api/v1 every
	// other route is Prometheus's API.
	own := map[key]string{
		{http.MethodGet, apiPrefix + "/logs"}:                   permViewLogs,
		{http.MethodGet, apiPrefix + "/incidents"}:              permMonitor,
		{http.MethodGet, apiPrefix + "/incidents/:id"}:          permMonitor,
		{http.MethodPost, apiPrefix + "/incidents/:id/ack"}:     permAcknowledge,
		{http.MethodPost, apiPrefix + "/incidents/:id/resolve"}: permAcknowledge,
		{http.MethodGet, apiPrefix + "/deploys"}:                permMonitor,
		{http.MethodPost, apiPrefix + "/deploys"}:               permDeploy,
		{http.MethodGet, apiPrefix + "/deploys/:id/analysis"}:   permMonitor,
		{http.MethodGet, apiPrefix + "/backups"}:                permMonitor,
		{http.MethodPost, apiPrefix + "/backups"}:               permBackup,
		{http.MethodPost, apiPrefix + "/rollback"}:              permRollback,
		{http.MethodGet, apiPrefix + "/rollbacks"}:              permMonitor,
		{http.MethodGet, apiPrefix + "/silences"}:               permMonitor,
		{http.MethodPost, apiPrefix + "/silences"}:              permAcknowledge,
		{http.MethodDelete, apiPrefix + "/silences/:id"}:        permAcknowledge,
		{http.MethodPost, "/ui/silences"}:                       permAcknowledge,
		{http.MethodPost, "/ui/silences/:id/expire"}:            permAcknowledge,
		{http.MethodPost, "/slack/interactions"}:                permSlack,
		{http.MethodGet, apiPrefix + "/audit"}:                  permManageUsers,
		{http.MethodGet, "/"}:                                   permMonitor,
		{http.MethodPost, "/ui/incidents/:id/ack"}:              permAcknowledge,
		{http.MethodPost, "/ui/incidents/:id/resolve"}:          permAcknowledge,
		{http.MethodPost, "/ui/rollback"}:                       permRollback,
		{http.MethodGet, apiPrefix + "/users"}:                  permManageUsers,
		{http.MethodPost, apiPrefix + "/users"}:                 permManageUsers,
		{http.MethodGet, apiPrefix + "/users/:name"}:            permManageUsers,
		{http.MethodPut, apiPrefix + "/users/:name"}:            permManageUsers,
		{http.MethodDelete, apiPrefix + "/users/:name"}:         permManageUsers,
		{http.MethodGet, apiPrefix + "/roles"}:                  permManageRoles,
		{http.MethodPost, apiPrefix + "/roles"}:                 permManageRoles,
		{http.MethodGet, apiPrefix + "/roles/:name"}:            permManageRoles,
		{http.MethodPut, apiPrefix + "/roles/:name"}:            permManageRoles,
		{http.MethodDelete, apiPrefix + "/roles/:name"}:         permManageRoles,
		{http.MethodPost, amPrefix + "/alerts"}:                 permIngest,
		{http.MethodGet, amPrefix + "/alerts"}:                  permMonitor,
		{http.MethodGet, amPrefix + "/status"}:                  permMonitor,
		{http.MethodGet, amPrefix + "/receivers"}:               permMonitor,
		{http.MethodGet, amPrefix + "/silences"}:                permMonitor,
		{http.MethodPost, amPrefix + "/silences"}:               permAcknowledge,
		{http.MethodGet, amPrefix + "/silence/:id"}:             permMonitor,
		{http.MethodDelete, amPrefix + "/silence/:id"}:          permAcknowledge,
		{http.MethodGet, "/debug/pprof/:name"}:                  permManageRoles,
	}
	wantPermission := func(k key) string {
		path := k.path
		if p, ok := own[k]; ok {
			return p
		}
		switch {
		case strings.HasPrefix(path, apiPrefix+"/"):
			return permViewMetrics
		case path == "/alerts":
			return permMonitor
		case path == "/-/reload":
			return permManageRoles
		}
		return permOpen
	}
	for k, perm := range table {
		require.Equal(t, wantPermission(k), perm, "permission of %s %s", k.method, k.path)
	}

	// Every Prometheus route in the table reaches Prometheus's API, which
	// answers in its own envelope.
	for k := range table {
		if _, mine := own[k]; mine || !strings.HasPrefix(k.path, apiPrefix+"/") {
			continue
		}
		t.Run(k.method+" "+k.path, func(t *testing.T) {
			path := strings.Replace(k.path, ":name", "app", 1)
			var body io.Reader
			if k.method == http.MethodPost {
				body = strings.NewReader("query=up&match[]=up")
			}
			status, resp := do(t, k.method, env.srv.URL+path+"?query=up&match[]=up", body)
			require.NotEqual(t, http.StatusNotFound, status, resp)
			var envelope struct {
				Status string `json:"status"`
			}
			require.NoError(t, json.Unmarshal([]byte(resp), &envelope), resp)
			require.NotEmpty(t, envelope.Status, resp)
		})
	}
}
