package rules

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/timestamp"
	promvalue "github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// oldErrorRate is the default error_rate before vigil:http_requests:rate1m:
// one expression that computed the rate of every request series twice (for
// the 0-fallback and for the denominator). The new rules must record
// exactly what it gives.
const oldErrorRate = `100 * (
  sum by (%[1]s) (
    rate(http_requests_total{code=~"5.."}[1m])
    or rate(http_requests_total{status=~"5.."}[1m])
    or rate(http_server_requests_seconds_count{status=~"5.."}[1m])
  )
  or 0 * sum by (%[1]s) (rate(http_requests_total[1m]) or rate(http_server_requests_seconds_count[1m]))
)
/
(sum by (%[1]s) (rate(http_requests_total[1m]) or rate(http_server_requests_seconds_count[1m])) > 0)`

// errorRateFixture is 10 minutes at 15 s of the app's request series in
// every shape error_rate reads, each job one case, and another app's.
const errorRateFixture = `
load 15s
  http_requests_total{app="app",job="code",instance="c:1",environment="production",code="200"} 0+950x40
  http_requests_total{app="app",job="code",instance="c:1",environment="production",code="500"} 0+30x40
  http_requests_total{app="app",job="code",instance="c:1",environment="production",code="503"} 0+20x40
  http_requests_total{app="app",job="code",instance="c:1",environment="production",code="404"} 0+7x40
  http_requests_total{app="app",job="code",instance="c:2",environment="production",code="200"} 0+300x40
  http_requests_total{app="app",job="code",instance="c:2",environment="production",code="502"} 0+1x40
  http_requests_total{app="app",job="code",instance="c:1",environment="staging",code="200"} 0+10x40
  http_requests_total{app="app",job="code",instance="c:1",environment="staging",code="500"} 0+10x40
  http_requests_total{app="app",job="status",instance="s:1",status="200"} 0+90x40
  http_requests_total{app="app",job="status",instance="s:1",status="502"} 0+10x40
  http_server_requests_seconds_count{app="app",job="spring",instance="m:1",uri="/a",outcome="SUCCESS",status="200"} 0+150x40
  http_server_requests_seconds_count{app="app",job="spring",instance="m:1",uri="/a",outcome="SERVER_ERROR",status="503"} 0+50x40
  http_server_requests_seconds_count{app="app",job="spring",instance="m:1",uri="/b",outcome="SUCCESS",status="201"} 0+3x40
  http_requests_total{app="app",job="mixed",instance="x:1",code="200"} 0+100x40
  http_requests_total{app="app",job="mixed",instance="x:1",code="500"} 0+10x40
  http_requests_total{app="app",job="mixed",instance="x:1",handler="/s",status="503"} 0+5x40
  http_requests_total{app="app",job="mixed",instance="x:1",handler="/both",code="500",status="500"} 0+4x40
  http_server_requests_seconds_count{app="app",job="mixed",instance="x:1",uri="/m",status="200"} 0+60x40
  http_server_requests_seconds_count{app="app",job="mixed",instance="x:1",uri="/m",status="500"} 0+6x40
  http_requests_total{app="app",job="twins",instance="t:1",handler="/t",status="200"} 0+40x40
  http_requests_total{app="app",job="twins",instance="t:1",handler="/t",status="500"} 0+8x40
  http_server_requests_seconds_count{app="app",job="twins",instance="t:1",handler="/t",status="200"} 0+400x40
  http_server_requests_seconds_count{app="app",job="twins",instance="t:1",handler="/t",status="500"} 0+80x40
  http_requests_total{app="app",job="quiet",instance="q:1",code="200"} 0+150x40
  http_server_requests_seconds_count{app="app",job="quiet-spring",instance="q:2",status="200"} 0+15x40
  http_requests_total{app="app",job="idle",instance="i:1",code="200"} 500x40
  http_requests_total{app="app",job="idle",instance="i:1",code="500"} 20x40
  http_requests_total{app="app",job="gone",instance="g:1",code="200"} 0+100x12
  http_requests_total{app="app",job="gone",instance="g:1",code="500"} 0+50x12
  http_requests_total{app="app",job="late",instance="l:1",code="200"} _x20 0+100x20
  http_requests_total{app="app",job="late",instance="l:1",code="500"} _x28 0+1x12
  http_requests_total{app="app",job="reset",instance="r:1",code="200"} 0+100x10 0+100x29
  http_requests_total{app="app",job="reset",instance="r:1",code="500"} 0+10x20 5+10x19
  http_requests_total{app="other",job="other",instance="o:1",code="200"} 0+100x40
  http_requests_total{app="other",job="other",instance="o:1",code="500"} 0+100x40
`

// errorRateCfg has the app collector of the fixture's app.
func errorRateCfg() *config.Config {
	return &config.Config{Collectors: config.CollectorsConfig{App: &config.AppCollectorConfig{
		CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"app": "app"}},
		MemoryLimit:      1 << 30,
	}}}
}

// signalGroup is a Prometheus rules group of rs, recording into st, run as
// vigil runs it (sequentially, every rule committed before the next).
func signalGroup(t testing.TB, engine *promql.Engine, st storage.Storage, rs []rulefmt.Rule) *promrules.Group {
	t.Helper()
	var prs []promrules.Rule
	for _, r := range rs {
		expr, err := promqlparse.ParseExpr(r.Expr)
		require.NoError(t, err, r.Record)
		prs = append(prs, promrules.NewRecordingRule(r.Record, expr, labels.EmptyLabels()))
	}
	return promrules.NewGroup(promrules.GroupOptions{
		Name: SignalsGroupName, File: "signals", Interval: time.Second, Rules: prs,
		Opts: &promrules.ManagerOptions{
			QueryFunc:    promrules.EngineQueryFunc(engine, st),
			AppendableV2: st,
			Queryable:    st,
			Context:      context.Background(),
			Logger:       slog.New(slog.DiscardHandler),
		},
	})
}

// recordedAt is what a recording rule wrote at ts, by label set (without
// the metric name): the samples of that very evaluation, stale markers left
// out.
func recordedAt(t testing.TB, st storage.Queryable, record string, ts time.Time) map[string]float64 {
	t.Helper()
	ms := timestamp.FromTime(ts)
	q, err := st.Querier(ms, ms)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, record))
	out := map[string]float64{}
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		for it.Next() != 0 {
			if tt, v := it.At(); tt == ms && !promvalue.IsStaleNaN(v) {
				out[s.Labels().DropMetricName().String()] = v
			}
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out
}

// instant evaluates q at ts, by label set (without the metric name).
func instant(t *testing.T, engine *promql.Engine, st storage.Queryable, q string, ts time.Time) map[string]float64 {
	t.Helper()
	qry, err := engine.NewInstantQuery(context.Background(), st, nil, q, ts)
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	vec, err := res.Vector()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, s := range vec {
		k := s.Metric.DropMetricName().String()
		_, dup := out[k]
		require.False(t, dup, "%s twice in %s", k, q)
		out[k] = s.F
	}
	return out
}

// requireSame fails unless got has exactly want's label sets, each with
// the same value, bit for bit (NaN equal to NaN).
func requireSame(t *testing.T, want, got map[string]float64, msgAndArgs ...any) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, "%s: %s missing (want %v)", fmt.Sprint(msgAndArgs...), k, w)
		if math.IsNaN(w) {
			require.True(t, math.IsNaN(g), "%s: %s = %v, want NaN", fmt.Sprint(msgAndArgs...), k, g)
			continue
		}
		require.Equal(t, math.Float64bits(w), math.Float64bits(g), "%s: %s = %v, want %v", fmt.Sprint(msgAndArgs...), k, g, w)
	}
	for k, g := range got {
		_, ok := want[k]
		require.True(t, ok, "%s: %s = %v, want it absent", fmt.Sprint(msgAndArgs...), k, g)
	}
}

// TestErrorRateEquivalence evaluates the signals group every 15 s over the
// fixture and checks, at every evaluation, that the error_rate it records
// is the old single expression's result at that time, per label set: code-,
// status- and Micrometer-labelled series, both in one instance, an
// http_requests_total and an http_server_requests_seconds_count series
// with the same labels (the old `or` counted the first only), no errors
// (0), no requests (absent: a flat counter, a series gone, one not yet
// there), a counter reset, several instances and environments, another
// app. It runs with and without delayed name removal, and once as vigil
// after a restart: a new group every evaluation, so no stale marker hides
// the last evaluation's vigil:http_requests:rate1m, which error_rate must
// not use.
func TestErrorRateEquivalence(t *testing.T) {
	cfg := errorRateCfg()
	rs, err := SignalRules(cfg)
	require.NoError(t, err)
	old, err := ScopeString(fmt.Sprintf(oldErrorRate, signalLabels), "app", "")
	require.NoError(t, err)

	for _, tc := range []struct {
		name         string
		delayedNames bool
		restart      bool
	}{
		{"running", false, false},
		{"delayed name removal", true, false},
		{"restarted every evaluation", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := promqltest.LoadedStorage(t, errorRateFixture)
			engine := promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{
				MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
				EnableDelayedNameRemoval: tc.delayedNames,
			})
			g := signalGroup(t, engine, st, rs)
			seen := map[string]map[string]bool{} // job: "value", "zero", "absent"
			mark := func(job, what string) {
				if seen[job] == nil {
					seen[job] = map[string]bool{}
				}
				seen[job][what] = true
			}
			for ts := time.Unix(0, 0).UTC(); ts.Before(time.Unix(660, 0)); ts = ts.Add(15 * time.Second) {
				if tc.restart {
					g = signalGroup(t, engine, st, rs)
				}
				g.Eval(context.Background(), ts)
				for _, r := range g.Rules() {
					require.NoError(t, r.LastError(), "%s at %s", r.Name(), ts)
				}
				want := instant(t, engine, st, old, ts)
				requireSame(t, want, recordedAt(t, st, "error_rate", ts), "recorded at ", ts)
				if !tc.restart {
					// What alerts and the API read: the latest sample,
					// hidden by a stale marker once absent.
					requireSame(t, want, instant(t, engine, st, "error_rate", ts), "read at ", ts)
				}
				jobs := map[string]bool{}
				for k, v := range want {
					ls, err := promqlparse.ParseMetric(k)
					require.NoError(t, err)
					job := ls.Get("job")
					jobs[job] = true
					require.False(t, math.IsNaN(v), "old error_rate NaN for %s", k)
					if v == 0 {
						mark(job, "zero")
					} else {
						mark(job, "value")
					}
				}
				for _, job := range []string{"code", "idle", "gone", "late", "quiet"} {
					if !jobs[job] {
						mark(job, "absent")
					}
				}
			}
			// The fixture exercised every case: not a vacuous equality.
			require.Equal(t, map[string]bool{"value": true, "absent": true}, seen["code"], "code")
			require.Equal(t, map[string]bool{"value": true}, seen["status"], "status")
			require.Equal(t, map[string]bool{"value": true}, seen["spring"], "spring")
			require.Equal(t, map[string]bool{"value": true}, seen["mixed"], "mixed")
			require.Equal(t, map[string]bool{"value": true}, seen["twins"], "twins")
			require.Equal(t, map[string]bool{"zero": true, "absent": true}, seen["quiet"], "quiet")
			require.Equal(t, map[string]bool{"zero": true}, seen["quiet-spring"], "quiet-spring")
			require.Equal(t, map[string]bool{"absent": true}, seen["idle"], "idle")
			require.Equal(t, map[string]bool{"value": true, "absent": true}, seen["gone"], "gone")
			require.Equal(t, map[string]bool{"zero": true, "value": true, "absent": true}, seen["late"], "late")
			require.Equal(t, map[string]bool{"value": true}, seen["reset"], "reset")
			require.NotContains(t, seen, "other", "another app leaked in")
		})
	}
}
