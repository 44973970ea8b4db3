package web

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestMetricsEndpoint(t *testing.T) {
	env := newTestEnv(t)
	events := prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_test_events_total", Help: "Test events."})
	staging := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_test_staged", Help: "A gauge with its own environment label.",
		ConstLabels: prometheus.Labels{"environment": "staging"},
	})
	env.reg.MustRegister(events, staging)
	events.Add(3)
	staging.Set(1)

	get := func(path string) (int, string) {
		t.Helper()
		return do(t, http.MethodGet, env.srv.URL+path, nil)
	}

	status, body := get("/metrics")
	require.Equal(t, http.StatusOK, status)
	// metrics.labels (environment: production here) label the app's
	// scrape, never vigil's own metrics (issue 9).
	require.Contains(t, body, "vigil_test_events_total 3\n")
	require.Contains(t, body, `vigil_test_staged{environment="staging"} 1`)
	require.Contains(t, body, "vigil_ready 0\n")
	// The request above is counted by route.
	status, body = get("/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `vigil_http_request_duration_seconds_count{code="200",handler="/metrics",method="GET"} 1`)

	// A reload moves the endpoint; the labels stay off.
	cfg := testConfig()
	cfg.Metrics.Path = "/internal/metrics"
	cfg.Metrics.Labels = map[string]string{"environment": "staging", "service": "checkout"}
	require.NoError(t, env.h.ApplyConfig(cfg))

	status, body = get("/internal/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "vigil_test_events_total 3\n")
	status, body = get("/metrics")
	require.Equal(t, http.StatusNotFound, status)
	require.JSONEq(t, `{"status":"error","error":"not found"}`, body)

	// Without labels the metrics are served as gathered.
	cfg = testConfig()
	cfg.Metrics.Labels = nil
	require.NoError(t, env.h.ApplyConfig(cfg))
	status, body = get("/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "vigil_test_events_total 3")
}

func TestMetricsWithoutGatherer(t *testing.T) {
	h := New(&Options{}, discardLogger(), nil)
	require.NoError(t, h.ApplyConfig(&config.Config{Metrics: config.MetricsConfig{Labels: map[string]string{"environment": "production"}}}))
	rec := httptest.NewRecorder()
	h.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String())
}
