package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	require.Contains(t, body, `vigil_test_events_total{environment="production"} 3`)
	require.Contains(t, body, `vigil_test_staged{environment="staging"} 1`, "a metric's own label wins")
	require.Contains(t, body, `vigil_ready{environment="production"} 0`)
	// The request above is counted by route.
	status, body = get("/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `vigil_http_request_duration_seconds_count{code="200",environment="production",handler="/metrics",method="GET"} 1`)

	// A reload moves the endpoint and changes the labels.
	cfg := testConfig()
	cfg.Metrics.Path = "/internal/metrics"
	cfg.Metrics.Labels = map[string]string{"environment": "staging", "service": "checkout"}
	require.NoError(t, env.h.ApplyConfig(cfg))

	status, body = get("/internal/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `vigil_test_events_total{environment="staging",service="checkout"} 3`)
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

func TestLabelingGatherer(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{
			name:   "adds labels in order",
			labels: map[string]string{"environment": "production", "a": "first"},
			want: `# HELP t_total Test.
# TYPE t_total counter
t_total{a="first",environment="production",job="x"} 2
`,
		},
		{
			name:   "keeps a metric's own value",
			labels: map[string]string{"job": "override"},
			want: `# HELP t_total Test.
# TYPE t_total counter
t_total{job="x"} 2
`,
		},
		{
			name:   "no labels",
			labels: nil,
			want: `# HELP t_total Test.
# TYPE t_total counter
t_total{job="x"} 2
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_total", Help: "Test.", ConstLabels: prometheus.Labels{"job": "x"}})
			reg.MustRegister(c)
			c.Add(2)
			g := labelingGatherer{gatherer: reg, labels: func() map[string]string { return tc.labels }}
			require.NoError(t, testutil.GatherAndCompare(g, strings.NewReader(tc.want), "t_total"))
			// The wrapped registry is left as it was.
			require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader("# HELP t_total Test.\n# TYPE t_total counter\nt_total{job=\"x\"} 2\n"), "t_total"))
		})
	}
}

func TestMetricsWithoutGatherer(t *testing.T) {
	h := New(&Options{}, discardLogger(), nil)
	require.NoError(t, h.ApplyConfig(&config.Config{Metrics: config.MetricsConfig{Labels: map[string]string{"environment": "production"}}}))
	rec := httptest.NewRecorder()
	h.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String())
}
