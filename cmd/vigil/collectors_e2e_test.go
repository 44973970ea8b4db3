package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/collector/postgres/pgtest"
)

// query runs an instant query against vigil and returns the vector.
func (p *vigilProc) query(q string) model.Vector {
	p.t.Helper()
	rt := api.DefaultRoundTripper
	if p.client != nil && p.client.Transport != nil {
		rt = bearer{p.client.Transport}
	}
	client, err := api.NewClient(api.Config{Address: p.url(""), RoundTripper: rt})
	require.NoError(p.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	val, _, _, err := promv1.NewAPI(client).Query(ctx, q, time.Now())
	require.NoError(p.t, err, q)
	return val.(model.Vector)
}

func (p *vigilProc) firing(name string) bool {
	a := p.alert(name)
	return a != nil && a.State == "firing"
}

// TestDatabaseRulesFire runs the seed's database rules against a throwaway
// PostgreSQL cluster: high_connections, slow_queries and database_down fire,
// and the database's up returns after a restart.
func TestDatabaseRulesFire(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	// Trust authentication accepts any password: this one must never show.
	const secret = "s3cr3t-vigil-pw"
	u, err := url.Parse(cluster.DSN())
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), secret)
	dsn := u.String()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  database: {dsn: "%s", labels: {app: database}, timeout: 1s}
alerts:
  rules:
    - {name: database_down, condition: up == 0, duration: 1s, severity: critical, labels: {app: database}}
    - {name: high_connections, condition: connections > 5, duration: 1s, severity: warning, labels: {app: database}}
    - {name: slow_queries, condition: query_duration > 1s, duration: 1s, severity: warning, labels: {app: database}}
`, filepath.Join(dir, "data"), addr, dsn))
	v := startVigil(t, cfg, addr)

	require.Eventually(t, func() bool {
		vec := v.query(`up{job="database"}`)
		return len(vec) == 1 && vec[0].Value == 1
	}, 20*time.Second, 200*time.Millisecond, "the database collector never came up")
	vec := v.query(`connections{app="database"}`)
	require.Len(t, vec, 1)
	require.Equal(t, model.LabelValue("production"), vec[0].Metric["environment"])
	require.Equal(t, model.LabelValue("checkout"), vec[0].Metric["service"])
	for _, path := range []string{"/metrics", "/api/v1/targets", "/api/v1/status/config", "/metrics/collectors/database"} {
		resp, err := http.Get(v.url(path))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NotContains(t, string(body), secret, "the DSN's password shows on %s", path)
	}

	// More connections than the threshold.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conns []*pgx.Conn
	for i := 0; i < 8; i++ {
		c, err := pgx.Connect(ctx, cluster.DSN())
		require.NoError(t, err)
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool { return v.firing("high_connections") }, 20*time.Second, 200*time.Millisecond)

	// A slow statement.
	go func() { _, _ = conns[0].Exec(ctx, "SELECT pg_sleep(6)") }()
	require.Eventually(t, func() bool { return v.firing("slow_queries") }, 20*time.Second, 200*time.Millisecond)
	cancel()
	for _, c := range conns {
		_ = c.Close(context.Background())
	}

	// The server stops: the database is down.
	cluster.Stop()
	require.Eventually(t, func() bool { return v.firing("database_down") }, 20*time.Second, 200*time.Millisecond)
	require.NotContains(t, v.out.String(), secret, "the DSN's password was logged")

	// It comes back: up returns and the alert resolves.
	cluster.Start()
	require.Eventually(t, func() bool { return v.alert("database_down") == nil }, 30*time.Second, 200*time.Millisecond,
		"database_down did not resolve after the restart")
}

// TestAppSignals checks that error_rate and cpu_usage follow what a test app
// does and that the seed's high_error_rate fires.
func TestAppSignals(t *testing.T) {
	var (
		errorsPerScrape atomic.Int64
		requests        atomic.Int64
		failures        atomic.Int64
		cpuSeconds      atomic.Int64 // in milliseconds
	)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each scrape: 100 more requests, errorsPerScrape of them 5xx, and
		// 0.5 s more CPU.
		requests.Add(100)
		failures.Add(errorsPerScrape.Load())
		cpuSeconds.Add(500)
		var b strings.Builder
		fmt.Fprintf(&b, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(&b, "http_requests_total{code=\"200\"} %d\n", requests.Load()-failures.Load())
		fmt.Fprintf(&b, "http_requests_total{code=\"500\"} %d\n", failures.Load())
		fmt.Fprintf(&b, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", float64(cpuSeconds.Load())/1000)
		fmt.Fprintf(&b, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 64<<20)
		_, _ = w.Write([]byte(b.String()))
	}))
	defer app.Close()

	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: staging
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  app: {targets: ["%s"], labels: {app: app}, memory_limit: 256MB}
alerts:
  rules:
    - {name: high_error_rate, condition: error_rate > 5, duration: 2s, severity: critical, labels: {app: app}}
`, filepath.Join(dir, "data"), addr, strings.TrimPrefix(app.URL, "http://")))
	v := startVigil(t, cfg, addr)

	require.Eventually(t, func() bool {
		vec := v.query(`error_rate{app="app"}`)
		return len(vec) == 1 && vec[0].Value == 0
	}, 20*time.Second, 200*time.Millisecond, "error_rate never showed 0% for an app without errors")
	require.Nil(t, v.alert("high_error_rate"))

	vec := v.query(`memory_usage{app="app"}`)
	require.Len(t, vec, 1)
	require.InDelta(t, 25.0, float64(vec[0].Value), 0.01, "64 MiB of 256 MiB")
	vec = v.query(`cpu_usage{app="app"}`)
	require.Len(t, vec, 1)
	require.Positive(t, float64(vec[0].Value))

	// 20% of requests start failing.
	errorsPerScrape.Store(20)
	require.Eventually(t, func() bool {
		vec := v.query(`error_rate{app="app"}`)
		return len(vec) == 1 && vec[0].Value > 5
	}, 20*time.Second, 200*time.Millisecond, "error_rate did not follow the failures")
	require.Eventually(t, func() bool { return v.firing("high_error_rate") }, 30*time.Second, 200*time.Millisecond)
}

// TestHealthProbeAndHost checks the health probe (an app with no metrics
// endpoint is down when its health check fails) and that the host
// collector's signals are stored within 0..100.
func TestHealthProbeAndHost(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()

	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: development
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  app: {labels: {app: app}, health: {url: "%s/health"}}
  infrastructure: {labels: {app: infrastructure}}
alerts:
  rules:
    - {name: app_down, condition: up == 0, duration: 1s, severity: critical, labels: {app: app}}
`, filepath.Join(dir, "data"), addr, app.URL))
	v := startVigil(t, cfg, addr)

	require.Eventually(t, func() bool {
		vec := v.query(`probe_success{app="app"}`)
		return len(vec) == 1 && vec[0].Value == 1
	}, 20*time.Second, 200*time.Millisecond, "the health probe never succeeded")
	vec := v.query(`up{app="app"}`)
	require.Len(t, vec, 1)
	require.Equal(t, model.SampleValue(1), vec[0].Value)

	for _, q := range []string{`cpu_usage{app="infrastructure"}`, `memory_usage{app="infrastructure"}`, `disk_usage{app="infrastructure",mountpoint="/"}`} {
		require.Eventually(t, func() bool { return len(v.query(q)) > 0 }, 20*time.Second, 200*time.Millisecond, q)
		for _, s := range v.query(q) {
			require.GreaterOrEqual(t, float64(s.Value), 0.0, q)
			require.LessOrEqual(t, float64(s.Value), 100.0, q)
		}
	}

	healthy.Store(false)
	require.Eventually(t, func() bool { return v.firing("app_down") }, 20*time.Second, 200*time.Millisecond,
		"a failing health check did not make the app down")
}
