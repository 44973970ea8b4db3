package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func newClient(t *testing.T, url string) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: url})
	require.NoError(t, err)
	return promv1.NewAPI(c)
}

// waitFiring polls the rules manager until HighCPU fires.
func waitFiring(t testing.TB, env *testEnv) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, r := range env.rules.AlertingRules() {
			if r.Name() != "HighCPU" {
				continue
			}
			for _, a := range r.ActiveAlerts() {
				if a.State.String() == "firing" {
					return true
				}
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "HighCPU never fired")
}

// TestPrometheusAPIClient drives the API with Prometheus's own Go client, as
// Grafana and other Prometheus clients would.
func TestPrometheusAPIClient(t *testing.T) {
	env := newTestEnv(t)
	env.h.SetReady(true)
	waitFiring(t, env)
	client := newClient(t, env.srv.URL)
	ctx := context.Background()
	start, end := env.sampleTime.Add(-time.Minute), env.sampleTime.Add(time.Minute)

	t.Run("Query", func(t *testing.T) {
		v, warnings, _, err := client.Query(ctx, `cpu_usage{app="app"}`, env.sampleTime)
		require.NoError(t, err)
		require.Empty(t, warnings)
		vec, ok := v.(model.Vector)
		require.True(t, ok, "got %T", v)
		require.Len(t, vec, 1)
		require.Equal(t, model.SampleValue(95), vec[0].Value)
		require.Equal(t, model.LabelValue("a"), vec[0].Metric["instance"])
		require.Equal(t, env.sampleTime.UnixMilli(), vec[0].Timestamp.UnixNano()/int64(time.Millisecond))
	})

	t.Run("Query error keeps Prometheus's envelope", func(t *testing.T) {
		_, _, _, err := client.Query(ctx, `cpu_usage{`, env.sampleTime)
		require.Error(t, err)
		var apiErr *promv1.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, promv1.ErrBadData, apiErr.Type)
	})

	t.Run("QueryRange", func(t *testing.T) {
		v, _, _, err := client.QueryRange(ctx, `sum(cpu_usage)`, promv1.Range{
			Start: env.sampleTime, End: env.sampleTime.Add(30 * time.Second), Step: 10 * time.Second,
		})
		require.NoError(t, err)
		m, ok := v.(model.Matrix)
		require.True(t, ok, "got %T", v)
		require.Len(t, m, 1)
		require.Len(t, m[0].Values, 4)
		for _, p := range m[0].Values {
			require.Equal(t, model.SampleValue(155), p.Value)
		}
	})

	t.Run("LabelNames", func(t *testing.T) {
		names, _, _, err := client.LabelNames(ctx, []string{"cpu_usage"}, start, end)
		require.NoError(t, err)
		require.Equal(t, model.LabelNames{"__name__", "app", "instance"}, names)
	})

	t.Run("LabelValues", func(t *testing.T) {
		values, _, _, err := client.LabelValues(ctx, "app", []string{"cpu_usage"}, start, end)
		require.NoError(t, err)
		require.Equal(t, model.LabelValues{"app", "database"}, values)
	})

	t.Run("Series", func(t *testing.T) {
		series, _, _, err := client.Series(ctx, []string{`up`}, start, end)
		require.NoError(t, err)
		require.Equal(t, []model.LabelSet{{"__name__": "up", "app": "app", "instance": "a"}}, series)
	})

	t.Run("Rules", func(t *testing.T) {
		res, err := client.Rules(ctx, nil)
		require.NoError(t, err)
		require.Len(t, res.Groups, 1)
		g := res.Groups[0]
		require.Equal(t, "vigil-test", g.Name)
		require.InDelta(t, 0.1, g.Interval, 1e-9)
		require.Len(t, g.Rules, 4)
		high, ok := g.Rules[0].(promv1.AlertingRule)
		require.True(t, ok, "got %T", g.Rules[0])
		require.Equal(t, "HighCPU", high.Name)
		require.Equal(t, "cpu_usage > 80", high.Query)
		require.Equal(t, "firing", high.State)
		require.Equal(t, model.LabelSet{"severity": "critical"}, high.Labels)
		require.Len(t, high.Alerts, 1)
		rec, ok := g.Rules[3].(promv1.RecordingRule)
		require.True(t, ok, "got %T", g.Rules[3])
		require.Equal(t, "cpu_usage:doubled", rec.Name)
	})

	t.Run("Alerts", func(t *testing.T) {
		res, err := client.Alerts(ctx)
		require.NoError(t, err)
		states := map[string]promv1.AlertState{}
		for _, a := range res.Alerts {
			states[string(a.Labels["alertname"])+"/"+string(a.Labels["instance"])] = a.State
		}
		require.Equal(t, map[string]promv1.AlertState{
			"HighCPU/a":    promv1.AlertStateFiring,
			"CPUWarming/a": promv1.AlertStatePending,
			"CPUWarming/b": promv1.AlertStatePending,
		}, states)
		for _, a := range res.Alerts {
			if a.Labels["alertname"] == "HighCPU" {
				require.Equal(t, model.LabelValue("critical"), a.Labels["severity"])
				require.Equal(t, model.LabelValue("CPU at 95%"), a.Annotations["summary"])
				require.Equal(t, "9.5e+01", a.Value)
			}
		}
	})

	t.Run("Buildinfo", func(t *testing.T) {
		res, err := client.Buildinfo(ctx)
		require.NoError(t, err)
		require.Equal(t, "3.16.0+vigil.0.1.0", res.Version)
		require.NotEmpty(t, res.GoVersion)
	})

	t.Run("Runtimeinfo", func(t *testing.T) {
		res, err := client.Runtimeinfo(ctx)
		require.NoError(t, err)
		require.True(t, res.ReloadConfigSuccess)
		require.Equal(t, "15d", res.StorageRetention)
		require.Positive(t, res.GOMAXPROCS)
	})

	t.Run("Config", func(t *testing.T) {
		res, err := client.Config(ctx)
		require.NoError(t, err)
		require.Contains(t, res.YAML, "scrape_interval: 15s")
		require.Contains(t, res.YAML, "evaluation_interval: 1s")
		require.Contains(t, res.YAML, "rules/*.yml")
	})

	t.Run("Flags", func(t *testing.T) {
		res, err := client.Flags(ctx)
		require.NoError(t, err)
		require.Equal(t, env.db.Dir(), res["storage.tsdb.path"])
	})

	t.Run("Metadata", func(t *testing.T) {
		res, err := client.Metadata(ctx, "", "")
		require.NoError(t, err)
		require.Equal(t, map[string][]promv1.Metadata{
			"cpu_usage": {{Type: promv1.MetricTypeGauge, Help: "CPU usage in percent."}},
		}, res)
	})

	t.Run("TargetsMetadata", func(t *testing.T) {
		res, err := client.TargetsMetadata(ctx, `{job="app"}`, "", "")
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.Equal(t, "cpu_usage", res[0].Metric)
		require.Equal(t, "app", res[0].Target["job"])
	})

	t.Run("Targets", func(t *testing.T) {
		res, err := client.Targets(ctx)
		require.NoError(t, err)
		require.Len(t, res.Active, 1)
		a := res.Active[0]
		require.Equal(t, "app", a.ScrapePool)
		require.Equal(t, "http://127.0.0.1:8080/metrics", a.ScrapeURL)
		require.Equal(t, promv1.HealthUnknown, a.Health)
		require.Equal(t, model.LabelSet{"app": "app", "instance": "127.0.0.1:8080", "job": "app"}, a.Labels)
		require.Len(t, res.Dropped, 1)
		require.Equal(t, "127.0.0.1:9999", res.Dropped[0].DiscoveredLabels["__address__"])
	})

	t.Run("AlertManagers", func(t *testing.T) {
		res, err := client.AlertManagers(ctx)
		require.NoError(t, err)
		require.Empty(t, res.Active)
		require.Empty(t, res.Dropped)
	})

	t.Run("TSDB", func(t *testing.T) {
		res, err := client.TSDB(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, res.HeadStats.NumSeries, 3)
	})

	t.Run("WalReplay", func(t *testing.T) {
		_, err := client.WalReplay(ctx)
		require.NoError(t, err)
	})

	t.Run("QueryExemplars", func(t *testing.T) {
		res, err := client.QueryExemplars(ctx, "cpu_usage", start, end)
		require.NoError(t, err)
		require.Empty(t, res)
	})
}

// TestStorageOpensLater serves queries as "unavailable" until the TSDB is
// handed over, as when vigil replays its WAL after the listener is up.
func TestStorageOpensLater(t *testing.T) {
	db := openDB(t)
	now := time.Now().Add(-time.Second)
	appendSamples(t, db, now)
	h := New(&Options{QueryEngine: newEngine()}, discardLogger(), prometheus.NewRegistry())
	h.SetReady(true)
	srv := httptest.NewServer(h.Router())
	t.Cleanup(srv.Close)
	client := newClient(t, srv.URL)

	_, _, _, err := client.Query(context.Background(), "up", now)
	var apiErr *promv1.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, promv1.ErrServer, apiErr.Type)

	status, body := do(t, http.MethodGet, srv.URL+"/api/v1/labels", nil)
	require.Equal(t, http.StatusServiceUnavailable, status, body)
	require.True(t, strings.Contains(body, `"errorType":"unavailable"`), body)

	h.SetDB(db)
	v, _, _, err := client.Query(context.Background(), "up", now)
	require.NoError(t, err)
	require.Equal(t, model.SampleValue(1), v.(model.Vector)[0].Value)
}
