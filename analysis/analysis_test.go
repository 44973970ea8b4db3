package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// The synthetic series start at the Unix epoch (promqltest's load), one
// sample every 15s; the deploy is at 10m and each step is a minute.
var (
	epoch    = time.Unix(0, 0).UTC()
	deployAt = epoch.Add(10 * time.Minute)
)

const sampleEvery = 15 * time.Second

// version is one fake app instance's traffic: requests per minute, and the
// percent of them answered 5xx, which changes to errorsAfter at changeAt
// (minutes) when changeAt > 0.
type version struct {
	instance, version string
	perMinute         float64
	errors            float64
	changeAt          int
	errorsAfter       float64
	// slow puts every request in the 1s bucket rather than 0.1s.
	slow bool
}

// series returns the promqltest load lines of v for 30 minutes.
func (v version) series() string {
	const n = 120 // 30m of 15s samples
	per := v.perMinute * sampleEvery.Minutes()
	var ok, bad strings.Builder
	var okTotal, badTotal float64
	for i := 0; i <= n; i++ {
		e := v.errors
		if v.changeAt > 0 && time.Duration(i)*sampleEvery > time.Duration(v.changeAt)*time.Minute {
			e = v.errorsAfter
		}
		if i > 0 {
			okTotal += per * (100 - e) / 100
			badTotal += per * e / 100
		}
		fmt.Fprintf(&ok, " %g", okTotal)
		fmt.Fprintf(&bad, " %g", badTotal)
	}
	fast := fmt.Sprintf("0+%gx%d", per, n)
	if v.slow {
		fast = fmt.Sprintf("0+0x%d", n)
	}
	l := fmt.Sprintf(`app="app", instance=%q`, v.instance)
	return fmt.Sprintf(`  app_build_info{%[1]s, version=%[2]q} 1+0x%[3]d
  http_requests_total{%[1]s, code="200"}%[4]s
  http_requests_total{%[1]s, code="500"}%[5]s
  http_request_duration_seconds_bucket{%[1]s, le="0.1"} %[6]s
  http_request_duration_seconds_bucket{%[1]s, le="1"} 0+%[7]gx%[3]d
  http_request_duration_seconds_bucket{%[1]s, le="+Inf"} 0+%[7]gx%[3]d
  cpu_usage{%[1]s} 20+0x%[3]d
  memory_usage{%[1]s} 40+0x%[3]d
`, l, v.version, n, ok.String(), bad.String(), fast, per)
}

func load(t *testing.T, vs ...version) storage.Queryable {
	var b strings.Builder
	b.WriteString("load 15s\n")
	for _, v := range vs {
		b.WriteString(v.series())
	}
	return promqltest.LoadedStorage(t, b.String())
}

// fakeDeploys is the rollback logic's deploys, with one deploy.
type fakeDeploys struct {
	mtx   sync.Mutex
	last  rollback.Deploy
	noted map[string]string
}

func (f *fakeDeploys) LastDeploy() (rollback.Deploy, bool, error) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	return f.last, f.last.ID != "", nil
}

func (f *fakeDeploys) NoteAnalysisFailure(id string, figures json.RawMessage) error {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.noted == nil {
		f.noted = map[string]string{}
	}
	f.noted[id] = string(figures)
	return nil
}

type fakeIncidents struct {
	mtx    sync.Mutex
	alerts []notifier.Alert
}

func (f *fakeIncidents) Raise(_ context.Context, a notifier.Alert) (notifier.Incident, error) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.alerts = append(f.alerts, a)
	return notifier.Incident{ID: fmt.Sprintf("inc%d", len(f.alerts)), Alert: a}, nil
}

func analysisConfig() *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: config.EnvProduction,
		Analysis: &config.AnalysisConfig{
			Interval:    config.Duration(time.Minute),
			Steps:       5,
			MinRequests: 100,
			Thresholds: map[string]config.ThresholdConfig{
				config.SignalErrorRate: {Max: 5, MaxRatio: 2},
				config.SignalLatency:   {MaxRatio: 1.5},
			},
		},
	}
}

func newFixtureReg(t *testing.T, q storage.Queryable, cfg *config.Config, deploys Deploys, incidents Incidents, clock *time.Time, reg prometheus.Registerer) *Manager {
	t.Helper()
	return newFixtureKV(t, q, notifier.NewMemKV(), cfg, deploys, incidents, clock, reg)
}

// newFixtureKV is newFixtureReg on a given KV (a restart keeps it).
func newFixtureKV(t *testing.T, q storage.Queryable, kv notifier.KV, cfg *config.Config, deploys Deploys, incidents Incidents, clock *time.Time, reg prometheus.Registerer) *Manager {
	t.Helper()
	if clock == nil {
		c := deployAt
		clock = &c
	}
	m, err := New(&Options{
		Queryable: q,
		Engine:    promqltest.NewTestEngine(t, false, 5*time.Minute, promqltest.DefaultMaxSamplesPerQuery*100),
		KV:        kv,
		Deploys:   deploys,
		Incidents: incidents,
		Clock:     func() time.Time { return *clock },
	}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	return m
}

func canaryDeploy() rollback.Deploy {
	return rollback.Deploy{ID: "7", Service: "checkout", Environment: "production", Version: "1.1.0",
		PreviousVersion: "1.0.0", At: deployAt, Strategy: config.StrategyCanary}
}

// deployWith is canaryDeploy under another strategy.
func deployWith(strategy string) rollback.Deploy {
	d := canaryDeploy()
	d.Strategy = strategy
	return d
}

// runTo ticks the manager once a minute from the deploy to end.
func runTo(t *testing.T, m *Manager, clock *time.Time, end time.Time) {
	t.Helper()
	for *clock = deployAt; !clock.After(end); *clock = clock.Add(time.Minute) {
		require.NoError(t, m.Tick(context.Background()))
	}
}

func baseline() version {
	return version{instance: "a:8080", version: "1.0.0", perMinute: 1000, errors: 1}
}

// A canary whose error rate becomes 3× the baseline's at 12m fails at step
// 3 (the first whose minute is after the change), on error_rate, with the
// figures of both versions, and opens one incident.
func TestCanaryErrorRateFailsAtItsStep(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 1, changeAt: 12, errorsAfter: 3})
	clock := deployAt
	deploys := &fakeDeploys{last: canaryDeploy()}
	inc := &fakeIncidents{}
	reg := prometheus.NewRegistry()
	m := newFixtureReg(t, q, analysisConfig(), deploys, inc, &clock, reg)
	runTo(t, m, &clock, deployAt.Add(8*time.Minute))

	a, ok, err := m.Analysis("7")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, VerdictFail, a.Verdict)
	require.Equal(t, 3, a.FailedStep)
	require.Len(t, a.Results, 3, "no step after the failure")
	require.Equal(t, config.SignalErrorRate, a.Failure.Signal)
	require.Equal(t, "max_ratio", a.Failure.Threshold)
	require.InDelta(t, 3.0, a.Failure.Canary, 0.01)
	require.InDelta(t, 1.0, a.Failure.Baseline, 0.01)
	require.Contains(t, a.Reason, "step 3 of 5: error_rate 3 is 3.00× the baseline's 1 (max_ratio 2)")
	for _, st := range a.Results[:2] {
		require.True(t, st.Judged)
		require.Empty(t, st.Breaches)
		require.InDelta(t, 1.0, st.Canary.Signals[config.SignalErrorRate], 0.01)
	}
	s3 := a.Results[2]
	require.Equal(t, "1.1.0", s3.Canary.Version)
	require.Equal(t, "1.0.0", s3.Baseline.Version)
	require.InDelta(t, 1000, s3.Canary.Requests, 1)
	require.InDelta(t, 1000, s3.Baseline.Requests, 1)
	require.InDelta(t, 20, s3.Canary.Signals[config.SignalCPUUsage], 0.001)
	require.InDelta(t, 0.1*0.99, s3.Canary.Signals[config.SignalLatency], 0.001)

	require.Len(t, inc.alerts, 1, "one incident, however many ticks")
	al := inc.alerts[0]
	require.Equal(t, rollback.SourceAnalysis, al.Source)
	require.Equal(t, "7", al.Labels[rollback.LabelDeployID])
	require.Equal(t, AlertName, al.Labels["alertname"])
	require.Equal(t, "inc1", a.IncidentID)
	require.Contains(t, deploys.noted["7"], `"step":3`)

	require.Equal(t, 1.0, testutil.ToFloat64(m.metrics.state.WithLabelValues(VerdictFail)))
	require.InDelta(t, 3.0, testutil.ToFloat64(m.metrics.signal.WithLabelValues(config.SignalErrorRate, roleCanary)), 0.01)
	require.InDelta(t, 1.0, testutil.ToFloat64(m.metrics.signal.WithLabelValues(config.SignalErrorRate, roleBaseline)), 0.01)
	require.Equal(t, 1.0, testutil.ToFloat64(m.metrics.verdicts.WithLabelValues(VerdictFail)))
}

// A canary within the thresholds passes after the last step and opens
// nothing.
func TestCanaryWithinThresholdPasses(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 1.5})
	clock := deployAt
	inc := &fakeIncidents{}
	m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: canaryDeploy()}, inc, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(4*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Empty(t, a.Verdict, "still running after 4 of 5 steps")
	require.Len(t, a.Results, 4)
	runTo(t, m, &clock, deployAt.Add(9*time.Minute))
	a, _, err = m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictPass, a.Verdict, a.Reason)
	require.Len(t, a.Results, 5)
	require.InDelta(t, 1.5, a.Results[4].Canary.Signals[config.SignalErrorRate], 0.01)
	require.Empty(t, inc.alerts)
}

// A canary that serves too few requests is inconclusive, not passed.
func TestCanaryTooFewRequestsInconclusive(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 20, errors: 0})
	clock := deployAt
	inc := &fakeIncidents{}
	m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: canaryDeploy()}, inc, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(6*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictInconclusive, a.Verdict)
	require.Equal(t, "5 of 5 steps had too few requests to judge (min_requests 100)", a.Reason)
	require.Contains(t, a.Results[0].Note, "1.1.0 served 20")
	require.Empty(t, inc.alerts)
}

// Latency judged from the histogram: a canary whose requests all take up
// to a second fails against a baseline under 100ms.
func TestCanaryLatencyFails(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 1, slow: true})
	clock := deployAt
	m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: canaryDeploy()}, &fakeIncidents{}, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(2*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictFail, a.Verdict)
	require.Equal(t, 1, a.FailedStep)
	require.Equal(t, config.SignalLatency, a.Failure.Signal)
	require.InDelta(t, 0.991, a.Failure.Canary, 0.001)
}

// A rolling deploy is judged on the whole app against the minute before
// it: an error rate that rises fails it.
func TestRollingErrorRiseFails(t *testing.T) {
	q := load(t, version{instance: "a:8080", version: "1.0.0", perMinute: 1000, errors: 1, changeAt: 11, errorsAfter: 4})
	clock := deployAt
	m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: deployWith(config.StrategyRolling)}, &fakeIncidents{}, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(6*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictFail, a.Verdict)
	require.Equal(t, 2, a.FailedStep)
	require.InDelta(t, 1.0, a.Failure.Baseline, 0.01)
	require.InDelta(t, 4.0, a.Failure.Canary, 0.01)
}

// The rollback webhook is called once for a failed canary (however often
// the analysis ticks) and never for one that passed: the real notifier and
// rollback logic, with a stand-in deploy controller.
func TestRollbackWebhookOnceOnFailNeverOnPass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after float64
		calls int
	}{{"fail", 3, 1}, {"pass", 1.2, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mtx    sync.Mutex
				bodies []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mtx.Lock()
				bodies = append(bodies, string(b))
				mtx.Unlock()
			}))
			defer srv.Close()
			cfg := analysisConfig()
			cfg.Rollback = config.RollbackConfig{
				Webhook:  &config.WebhookConfig{URL: srv.URL, Secret: "s3cret"},
				Cooldown: config.Duration(time.Hour), Window: config.Duration(30 * time.Minute),
			}
			cfg.Escalation = config.EscalationConfig{Levels: []config.LevelConfig{{Name: "support", Notify: []string{"log"}}}}
			clock := deployAt
			rb, err := rollback.New(&rollback.Options{KV: notifier.NewMemKV(), Clock: func() time.Time { return clock }}, nil, nil)
			require.NoError(t, err)
			require.NoError(t, rb.ApplyConfig(cfg))
			_, err = rb.RecordDeploy(rollback.Deploy{Version: "1.0.0", At: deployAt.Add(-time.Hour)})
			require.NoError(t, err)
			d, err := rb.RecordDeploy(rollback.Deploy{Version: "1.1.0", At: deployAt, Strategy: config.StrategyCanary})
			require.NoError(t, err)
			nm, err := notifier.New(&notifier.Options{
				DataDir:  t.TempDir(),
				Rollback: rb,
				Receivers: func(*config.Config) (map[string]notifier.Receiver, error) {
					return map[string]notifier.Receiver{notifier.RollbackReceiver: rb.Receiver()}, nil
				},
			}, nil, nil)
			require.NoError(t, err)
			require.NoError(t, nm.ApplyConfig(cfg))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = nm.Run(ctx) }()
			defer func() { cancel(); <-done; _ = nm.Close() }()

			q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 1, changeAt: 12, errorsAfter: tc.after})
			m := newFixtureReg(t, q, cfg, rb, nm, &clock, nil)
			runTo(t, m, &clock, deployAt.Add(9*time.Minute))
			a, _, err := m.Analysis(d.ID)
			require.NoError(t, err)
			if tc.calls == 0 {
				require.Equal(t, VerdictPass, a.Verdict)
				time.Sleep(100 * time.Millisecond) // a wrong call would have been made by now
				mtx.Lock()
				require.Empty(t, bodies)
				mtx.Unlock()
				return
			}
			require.Equal(t, VerdictFail, a.Verdict)
			require.Eventually(t, func() bool {
				mtx.Lock()
				defer mtx.Unlock()
				return len(bodies) > 0
			}, 5*time.Second, 10*time.Millisecond)
			require.NoError(t, m.Tick(ctx)) // again: nothing new
			time.Sleep(100 * time.Millisecond)
			mtx.Lock()
			defer mtx.Unlock()
			require.Len(t, bodies, tc.calls)
			require.Contains(t, bodies[0], `"reason":"analysis"`)
			require.Contains(t, bodies[0], `"bad_version":"1.1.0"`)
			require.Contains(t, bodies[0], `"signal":"error_rate"`)
			inc, err := nm.Incident(a.IncidentID)
			require.NoError(t, err)
			require.NotNil(t, inc.Rollback)
		})
	}
}

// Analyses live in the KV: a Manager started on the same KV after a
// restart resumes a running analysis at its next step and keeps a verdict.
func TestAnalysisSurvivesRestart(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 1, changeAt: 12, errorsAfter: 3})
	kv := notifier.NewMemKV()
	clock := deployAt
	deploys := &fakeDeploys{last: canaryDeploy()}
	newManager := func() *Manager {
		return newFixtureKV(t, q, kv, analysisConfig(), deploys, &fakeIncidents{}, &clock, nil)
	}
	m := newManager()
	runTo(t, m, &clock, deployAt.Add(2*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Len(t, a.Results, 2)
	require.Empty(t, a.Verdict)

	// Down from 2m to 6m: the restarted Manager takes step 3 at its own
	// time, and fails there.
	clock = deployAt.Add(6 * time.Minute)
	m = newManager()
	require.NoError(t, m.Tick(context.Background()))
	a, _, err = m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictFail, a.Verdict)
	require.Equal(t, 3, a.FailedStep)
	require.Len(t, a.Results, 3)
	require.Equal(t, deployAt.Add(3*time.Minute), a.Results[2].At)
}

// A rolling deploy whose health probe fails, or whose scrape target is
// down (with or without a probe beside it), during the rollout fails on
// health at that step, whatever its error rate.
func TestRollingProbeFailureFails(t *testing.T) {
	v := version{instance: "a:8080", version: "1.0.0", perMinute: 1000, errors: 1}
	// 1 until 12m, then 0 for a minute (4 samples), then 1.
	const failing, fine = " 1x48 0x3 1x69\n", " 1x120\n"
	probe := `  probe_success{app="app", instance="a:8080"}`
	up := `  up{app="app", instance="a:8080"}`
	for name, series := range map[string]string{
		"probe fails":             probe + failing + up + fine,
		"target down, no probe":   up + failing,
		"target down, probe fine": probe + fine + up + failing,
	} {
		t.Run(name, func(t *testing.T) {
			q := promqltest.LoadedStorage(t, "load 15s\n"+v.series()+series)
			clock := deployAt
			m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: deployWith(config.StrategyRolling)}, &fakeIncidents{}, &clock, nil)
			runTo(t, m, &clock, deployAt.Add(6*time.Minute))
			a, _, err := m.Analysis("7")
			require.NoError(t, err)
			require.Equal(t, VerdictFail, a.Verdict, a.Reason)
			require.Equal(t, 3, a.FailedStep)
			require.Equal(t, SignalHealth, a.Failure.Signal)
			require.Equal(t, 4.0, a.Failure.Canary)
			require.Zero(t, a.Results[1].Canary.Failures)
		})
	}
}

// Blue-green is judged as a canary: the two versions side by side.
func TestBlueGreenJudgedByVersion(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 3})
	clock := deployAt
	m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: deployWith(config.StrategyBlueGreen)}, &fakeIncidents{}, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(2*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictFail, a.Verdict)
	require.Equal(t, 1, a.FailedStep)
	require.Equal(t, "1.0.0", a.Results[0].Baseline.Version)
	require.InDelta(t, 1.0, a.Failure.Baseline, 0.01)
}

// countingQueryable counts the queriers the engine opens: one per query.
type countingQueryable struct {
	storage.Queryable
	mtx sync.Mutex
	n   int
}

func (c *countingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	c.mtx.Lock()
	c.n++
	c.mtx.Unlock()
	return c.Queryable.Querier(mint, maxt)
}

// A rolling deploy measures the interval before the rollout once, at its
// first step, and compares every later step with that same baseline.
func TestRollingBaselineMeasuredOnce(t *testing.T) {
	q := &countingQueryable{Queryable: load(t, version{instance: "a:8080", version: "1.0.0", perMinute: 1000, errors: 1})}
	clock := deployAt
	m := newFixtureReg(t, q, analysisConfig(), &fakeDeploys{last: deployWith(config.StrategyRolling)}, &fakeIncidents{}, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(time.Minute))
	first := q.n // step 1: the step and the minute before the rollout
	runTo(t, m, &clock, deployAt.Add(9*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictPass, a.Verdict, a.Reason)
	require.Len(t, a.Results, 5)
	require.Equal(t, 4*first/2, q.n-first, "steps 2 to 5 query only their own interval")
	for _, st := range a.Results[1:] {
		require.Equal(t, a.Results[0].Baseline, st.Baseline)
	}
	require.InDelta(t, 1.0, a.Results[0].Baseline.Signals[config.SignalErrorRate], 0.01)
}

// countingKV counts the KV's List calls.
type countingKV struct {
	notifier.KV
	mtx   sync.Mutex
	lists int
}

func (c *countingKV) List(prefix string) (map[string][]byte, error) {
	c.mtx.Lock()
	c.lists++
	c.mtx.Unlock()
	return c.KV.List(prefix)
}

// Once the last deploy's analysis is decided and its incident open, a Tick
// reads no analysis until another deploy comes; that deploy's analysis
// starts at the next Tick.
func TestTickIdleOnceSettled(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 3})
	kv := &countingKV{KV: notifier.NewMemKV()}
	clock := deployAt
	deploys := &fakeDeploys{last: canaryDeploy()}
	inc := &fakeIncidents{}
	m := newFixtureKV(t, q, kv, analysisConfig(), deploys, inc, &clock, nil)
	runTo(t, m, &clock, deployAt.Add(2*time.Minute))
	a, _, err := m.Analysis("7")
	require.NoError(t, err)
	require.Equal(t, VerdictFail, a.Verdict)
	require.Len(t, inc.alerts, 1)

	lists := kv.lists
	for range 10 {
		clock = clock.Add(time.Second)
		require.NoError(t, m.Tick(context.Background()))
	}
	require.Equal(t, lists, kv.lists, "a settled Manager lists no analyses")

	next := canaryDeploy()
	next.ID, next.Version, next.PreviousVersion, next.At = "8", "1.2.0", "1.1.0", clock
	deploys.mtx.Lock()
	deploys.last = next
	deploys.mtx.Unlock()
	require.NoError(t, m.Tick(context.Background()))
	b, ok, err := m.Analysis("8")
	require.NoError(t, err)
	require.True(t, ok, "the next deploy's analysis starts")
	require.Empty(t, b.Verdict)
	require.Greater(t, kv.lists, lists)
	require.Len(t, inc.alerts, 1)
}
