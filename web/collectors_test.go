package web

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// fakeCollectors serves one collector and gathers one metric.
type fakeCollectors struct{ reg *prometheus.Registry }

func (f fakeCollectors) ServeCollector(w http.ResponseWriter, _ *http.Request, name string) {
	if name != "database" {
		http.Error(w, "no such collector", http.StatusNotFound)
		return
	}
	_, _ = w.Write([]byte("connections 3\n"))
}

func (f fakeCollectors) Gatherer() prometheus.Gatherer { return f.reg }

func TestCollectorsOnMetrics(t *testing.T) {
	creg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "connections", Help: "Open connections.",
		ConstLabels: prometheus.Labels{"app": "database"}})
	g.Set(3)
	creg.MustRegister(g)
	env := newTestEnv(t, func(o *Options) { o.Collectors = fakeCollectors{creg} })
	env.h.SetReady(true)

	status, body := do(t, http.MethodGet, env.srv.URL+"/metrics", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `connections{app="database"`, "an external Prometheus sees the collectors")

	status, body = do(t, http.MethodGet, env.srv.URL+"/metrics?collectors=false", nil)
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, body, "connections{", "the self-scrape leaves them to their own jobs")

	status, body = do(t, http.MethodGet, env.srv.URL+"/metrics/collectors/database", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "connections 3\n", body)
	status, _ = do(t, http.MethodGet, env.srv.URL+"/metrics/collectors/nope", nil)
	require.Equal(t, http.StatusNotFound, status)
}
