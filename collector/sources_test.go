package collector

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestDSNAddress(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u:pw@db.example:6432/app":        "db.example:6432",
		"postgresql://u:pw@10.0.0.1/app":             "10.0.0.1:5432",
		"postgres://u@[::1]:5433/app":                "[::1]:5433",
		"postgres:///app?host=/var/run/postgresql":   "localhost:5432",
		"host=db port=5433 user=u password=pw":       "db:5433",
		"host='db.internal' password='p w' dbname=x": "db.internal:5432",
		"": "",
	} {
		require.Equal(t, want, DSNAddress(dsn), dsn)
	}
}

func TestCollectorJobs(t *testing.T) {
	cfg := &config.Config{
		Service: "checkout", Environment: "production",
		Metrics: config.MetricsConfig{Interval: config.Duration(15e9)},
		Collectors: config.CollectorsConfig{
			App: &config.AppCollectorConfig{
				CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"app": "web"}},
				Health:           &config.HealthConfig{URL: "http://localhost:8080/health", Interval: config.Duration(5e9), Timeout: config.Duration(2e9)},
			},
			Infrastructure: &config.InfraCollectorConfig{Targets: []string{"node:9100"}},
			Database: &config.DatabaseCollectorConfig{
				CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"app": "database"}},
				DSN:              "postgres://u:secret@db:5432/app", Timeout: config.Duration(3e9),
			},
		},
	}
	scs, err := ScrapeConfigs(cfg, "127.0.0.1:9090")
	require.NoError(t, err)
	jobs := map[string]string{}
	for _, sc := range scs {
		jobs[sc.JobName] = sc.MetricsPath
	}
	require.Equal(t, map[string]string{
		// No metrics endpoint: the health probe is the app's scrape.
		JobApp:                  CollectorsPath + CollectorHealth,
		JobNode:                 "/metrics",
		JobSelf:                 "/metrics",
		CollectorInfrastructure: CollectorsPath + CollectorInfrastructure,
		CollectorDatabase:       CollectorsPath + CollectorDatabase,
	}, jobs)

	for _, sc := range scs {
		switch sc.JobName {
		case CollectorDatabase:
			tg := sc.ServiceDiscoveryConfigs[0]
			require.Contains(t, fmtTargets(tg), "db:5432", "the database's address is its instance")
			require.NotContains(t, fmtTargets(tg), "secret")
			require.Equal(t, model.Duration(4e9), sc.ScrapeTimeout, "collector timeout plus a second")
		case JobSelf:
			require.Equal(t, "false", sc.Params.Get("collectors"), "the self-scrape leaves collectors to their jobs")
		case JobApp:
			require.Equal(t, model.Duration(5e9), sc.ScrapeInterval, "the probe's interval")
		}
	}

	// With a metrics endpoint the probe has its own job and never fails the scrape.
	cfg.Collectors.App.Targets = []string{"localhost:8080"}
	srcs := sources(cfg)
	var health source
	for _, s := range srcs {
		if s.name == CollectorHealth {
			health = s
		}
	}
	require.Equal(t, CollectorHealth, health.job)
	require.False(t, health.strict)
	require.Equal(t, "web", health.labels["app"])

	// Without a self target (TLS), nothing of vigil's own is scraped.
	scs, err = ScrapeConfigs(cfg, "")
	require.NoError(t, err)
	for _, sc := range scs {
		require.NotEqual(t, CollectorsPath, sc.MetricsPath[:min(len(sc.MetricsPath), len(CollectorsPath))])
	}
}

func fmtTargets(c any) string {
	b, _ := json.Marshal(c)
	return string(b)
}

func TestSetServesCollectors(t *testing.T) {
	set := NewSet(discard(), nil)
	set.Replace(map[string]Collector{"ok": okCollector{}, "down": downCollector{}}, nil)

	rec := httptest.NewRecorder()
	set.ServeCollector(rec, httptest.NewRequest(http.MethodGet, "/", nil), "ok")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "connections 3")

	rec = httptest.NewRecorder()
	set.ServeCollector(rec, httptest.NewRequest(http.MethodGet, "/", nil), "down")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "a failed collection fails the scrape, so up is 0")

	rec = httptest.NewRecorder()
	set.ServeCollector(rec, httptest.NewRequest(http.MethodGet, "/", nil), "nope")
	require.Equal(t, http.StatusNotFound, rec.Code)

	mfs, err := set.Gatherer().Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1, "the failing collector is left out of /metrics")
}

var connectionsDesc = prometheus.NewDesc("connections", "Open connections.", nil, nil)

type okCollector struct{}

func (okCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, 3)
	return nil
}

type downCollector struct{}

func (downCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, 0)
	return errors.New("connection refused")
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestReloadSwapsCollectors: a reload adds and removes collectors, and a
// reload whose database DSN cannot be parsed keeps the ones running.
func TestReloadSwapsCollectors(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Collectors.Infrastructure = &config.InfraCollectorConfig{}
	h := start(t, cfg, Options{SelfTarget: "127.0.0.1:1"})
	require.Equal(t, []string{CollectorInfrastructure}, h.m.Collectors().Names())

	withDB := testConfig(nil)
	withDB.Collectors.Infrastructure = &config.InfraCollectorConfig{}
	withDB.Collectors.Database = &config.DatabaseCollectorConfig{DSN: "postgres://vigil@127.0.0.1:1/none?sslmode=disable"}
	require.NoError(t, h.m.ApplyConfig(withDB))
	require.Equal(t, []string{CollectorDatabase, CollectorInfrastructure}, h.m.Collectors().Names())

	bad := testConfig(nil)
	bad.Collectors.Database = &config.DatabaseCollectorConfig{DSN: "postgres://vigil@127.0.0.1:notaport/x"}
	require.Error(t, h.m.ApplyConfig(bad))
	require.Equal(t, []string{CollectorDatabase, CollectorInfrastructure}, h.m.Collectors().Names(), "a bad reload keeps the running collectors")

	require.NoError(t, h.m.ApplyConfig(testConfig(nil)))
	require.Empty(t, h.m.Collectors().Names())
}
