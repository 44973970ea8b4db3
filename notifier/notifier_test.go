package notifier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// call is one message a fakeReceiver got.
type call struct {
	receiver string
	at       time.Time
	kind     Kind
	level    int
	delivery string
	incident string
	payload  string
	// members is how many members the message's incident listed.
	members int
}

// recorder collects the calls of every fake receiver of a test.
type recorder struct {
	mtx   sync.Mutex
	calls []call
	// fail, when set, decides each attempt's failure.
	fail func(receiver string, m *Message) (bool, error)
}

func (r *recorder) receiver(name string) Receiver { return &fakeReceiver{name: name, rec: r} }

func (r *recorder) setFail(f func(string, *Message) (bool, error)) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	r.fail = f
}

func (r *recorder) got() []call {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	return append([]call(nil), r.calls...)
}

// delivered returns the successful calls (attempts that did not fail).
func (r *recorder) delivered() []call {
	var out []call
	for _, c := range r.got() {
		if c.kind != "" {
			out = append(out, c)
		}
	}
	return out
}

type fakeReceiver struct {
	name string
	rec  *recorder
}

func (f *fakeReceiver) Notify(_ context.Context, m *Message) (bool, error) {
	f.rec.mtx.Lock()
	defer f.rec.mtx.Unlock()
	c := call{receiver: f.name, at: time.Now(), kind: m.Kind, level: m.Level, delivery: m.DeliveryID, incident: m.Incident.ID, payload: string(m.Payload), members: len(m.Incident.Members)}
	if f.rec.fail != nil {
		if retry, err := f.rec.fail(f.name, m); err != nil {
			c.kind = "" // a failed attempt
			f.rec.calls = append(f.rec.calls, c)
			return retry, err
		}
	}
	f.rec.calls = append(f.rec.calls, c)
	return false, nil
}

func testConfig(env string) *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: env,
		Escalation: config.EscalationConfig{
			ResponseTimes: map[string]config.Duration{
				"critical": config.Duration(time.Hour),
				"high":     config.Duration(4 * time.Hour),
				"medium":   config.Duration(24 * time.Hour),
				"low":      config.Duration(48 * time.Hour),
			},
			Priorities: map[string]string{"critical": "critical", "high": "high", "warning": "medium", "info": "low"},
			Levels: []config.LevelConfig{
				{Name: "support", Notify: []string{"r1"}},
				{Name: "development", Notify: []string{"r2"}},
				{Name: "architecture", Notify: []string{"r3"}},
			},
			RepeatLimit: 2,
			// One incident per alert, as before grouping: the tests of
			// escalation, storms and the reconcile fire alerts that differ
			// by severity or instance. group_test.go tests the default.
			GroupBy: []string{config.GroupByAll},
		},
	}
}

type harness struct {
	t      *testing.T
	m      *Manager
	rec    *recorder
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// start opens a Manager on dir and runs it; stop (also on cleanup) ends it.
func start(t *testing.T, dir string, cfg *config.Config, rec *recorder, rb Rollbacker, tweak ...func(*Options)) *harness {
	t.Helper()
	opts := &Options{
		DataDir:     dir,
		ExternalURL: "http://vigil.test",
		Rollback:    rb,
		Receivers: func(*config.Config) (map[string]Receiver, error) {
			out := map[string]Receiver{}
			for _, n := range []string{"r1", "r2", "r3", "log", RollbackReceiver} {
				out[n] = rec.receiver(n)
			}
			return out, nil
		},
	}
	for _, f := range tweak {
		f(opts)
	}
	reg := prometheus.NewRegistry()
	m, err := New(opts, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, m: m, rec: rec, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		require.NoError(t, m.Run(ctx))
	}()
	t.Cleanup(h.stop)
	synctest.Wait()
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	require.NoError(h.t, h.m.Close())
	h.cancel = nil
}

func alert(severity string, activeAt time.Time) *rules.Alert {
	return &rules.Alert{
		State:       rules.StateFiring,
		Labels:      labels.FromStrings(labels.AlertName, "high_cpu", "severity", severity, "app", "app"),
		Annotations: labels.FromStrings("summary", "CPU above 80%"),
		Value:       95,
		ActiveAt:    activeAt,
		FiredAt:     activeAt,
	}
}

func resolved(a *rules.Alert, at time.Time) *rules.Alert {
	r := *a
	r.State = rules.StateInactive
	r.ResolvedAt = at
	return &r
}

// fire sends a firing alert and returns its incident.
func (h *harness) fire(a *rules.Alert) Incident {
	h.t.Helper()
	h.m.Notify(context.Background(), "cpu_usage > 80", a)
	synctest.Wait()
	open, err := h.m.Incidents(StateTriggered)
	require.NoError(h.t, err)
	require.NotEmpty(h.t, open)
	return open[0]
}

// summary is a call without its IDs, for comparison.
type summary struct {
	receiver string
	after    time.Duration
	kind     Kind
}

// summarize orders calls by time, then receiver: the workers send
// deliveries due at the same time in parallel.
func summarize(calls []call, t0 time.Time) []summary {
	out := []summary{}
	for _, c := range calls {
		out = append(out, summary{c.receiver, c.at.Sub(t0), c.kind})
	}
	slices.SortStableFunc(out, func(a, b summary) int {
		if a.after != b.after {
			return cmp.Compare(a.after, b.after)
		}
		return cmp.Compare(a.receiver, b.receiver)
	})
	return out
}

func TestEscalationByPriority(t *testing.T) {
	for _, tc := range []struct {
		severity, priority string
		deadline           time.Duration
	}{
		{"critical", PriorityCritical, time.Hour},
		{"high", PriorityHigh, 4 * time.Hour},
		{"warning", PriorityMedium, 24 * time.Hour},
		{"info", PriorityLow, 48 * time.Hour},
		{"unmapped", PriorityMedium, 24 * time.Hour},
	} {
		t.Run(tc.severity, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
				t0 := time.Now()
				inc := h.fire(alert(tc.severity, t0))
				require.Equal(t, tc.priority, inc.Priority)
				require.Equal(t, tc.deadline, inc.NextDeadline.Sub(t0))

				time.Sleep(10 * tc.deadline)
				synctest.Wait()
				d := tc.deadline
				require.Equal(t, []summary{
					{"r1", 0, KindFiring},
					{"r2", d, KindEscalation},
					{"r3", 2 * d, KindEscalation},
					{"r3", 3 * d, KindRepeat}, // repeat_limit 2
					{"r3", 4 * d, KindRepeat},
				}, summarize(rec.delivered(), t0))

				inc, err := h.m.Incident(inc.ID)
				require.NoError(t, err)
				require.Equal(t, 2, inc.Level)
				require.Equal(t, 2, inc.Repeats)
				require.True(t, inc.NextDeadline.IsZero())
				require.Len(t, inc.Notifications, 5)
				for _, n := range inc.Notifications {
					require.Equal(t, OutcomeDelivered, n.Outcome)
					require.Equal(t, 1, n.Attempts)
				}
				require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.escalations.WithLabelValues("development")))
				require.Equal(t, 3.0, testutil.ToFloat64(h.m.metrics.escalations.WithLabelValues("architecture")))
				require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.incidents.WithLabelValues("triggered", tc.priority)))
			})
		})
	}
}

func TestLevelWaitOverridesResponseTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(config.EnvProduction)
		cfg.Escalation.Levels[0].Wait = config.Duration(5 * time.Minute)
		rec := &recorder{}
		h := start(t, t.TempDir(), cfg, rec, nil)
		t0 := time.Now()
		h.fire(alert("critical", t0))
		time.Sleep(90 * time.Minute)
		synctest.Wait()
		require.Equal(t, []summary{
			{"r1", 0, KindFiring},
			{"r2", 5 * time.Minute, KindEscalation},
			{"r3", 65 * time.Minute, KindEscalation},
		}, summarize(rec.delivered(), t0))
	})
}

func TestAcknowledge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rearm time.Duration
		want  []summary
	}{
		{"stops escalation", 0, []summary{
			{"r1", 0, KindFiring},
			{"r2", time.Hour, KindEscalation},
			{"r1", 90 * time.Minute, KindAcknowledged},
			{"r2", 90 * time.Minute, KindAcknowledged},
		}},
		{"rearms while still firing", 2 * time.Hour, []summary{
			{"r1", 0, KindFiring},
			{"r2", time.Hour, KindEscalation},
			{"r1", 90 * time.Minute, KindAcknowledged},
			{"r2", 90 * time.Minute, KindAcknowledged},
			{"r2", 210 * time.Minute, KindEscalation}, // current level again
			{"r3", 270 * time.Minute, KindEscalation},
			{"r3", 330 * time.Minute, KindRepeat},
			{"r3", 390 * time.Minute, KindRepeat},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(config.EnvProduction)
				cfg.Escalation.Rearm = config.Duration(tc.rearm)
				rec := &recorder{}
				h := start(t, t.TempDir(), cfg, rec, nil)
				t0 := time.Now()
				inc := h.fire(alert("critical", t0))
				time.Sleep(90 * time.Minute)
				acked, err := h.m.Acknowledge(inc.ID, "alice", "looking")
				require.NoError(t, err)
				require.Equal(t, StateAcknowledged, acked.State)
				require.Equal(t, "alice", acked.AcknowledgedBy)
				require.Len(t, acked.Comments, 1)
				require.Equal(t, 90*time.Minute, acked.Comments[0].At.Sub(t0))
				require.Equal(t, "looking", acked.Comments[0].Text)
				// A second acknowledgement changes nothing.
				_, err = h.m.Acknowledge(inc.ID, "bob", "")
				require.NoError(t, err)
				time.Sleep(48 * time.Hour)
				synctest.Wait()
				require.Equal(t, tc.want, summarize(rec.delivered(), t0))
				require.Equal(t, uint64(1), histogramCount(t, h.reg, "vigil_time_to_acknowledge_seconds"))
			})
		})
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestResolveAndRefire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
		t0 := time.Now()
		a := alert("critical", t0)
		inc := h.fire(a)
		h.m.Notify(context.Background(), "cpu_usage > 80", a) // a resend
		time.Sleep(90 * time.Minute)
		h.m.Notify(context.Background(), "cpu_usage > 80", resolved(a, time.Now()))
		synctest.Wait()
		require.Equal(t, []summary{
			{"r1", 0, KindFiring},
			{"r2", time.Hour, KindEscalation},
			{"r1", 90 * time.Minute, KindResolved},
			{"r2", 90 * time.Minute, KindResolved},
		}, summarize(rec.delivered(), t0))
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, got.State)
		require.Equal(t, ResolvedByAlert, got.ResolvedBy)

		// Nothing escalates after the end.
		time.Sleep(10 * time.Hour)
		synctest.Wait()
		require.Len(t, rec.delivered(), 4)

		// Firing again is a new incident.
		again := h.fire(alert("critical", time.Now()))
		require.NotEqual(t, inc.ID, again.ID)
		require.Equal(t, inc.Fingerprint, again.Fingerprint)
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, 2)
		require.Equal(t, again.ID, all[0].ID, "newest first")
		require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.resolved.WithLabelValues("critical")))
	})
}

func TestResolveByHand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
		t0 := time.Now()
		a := alert("high", t0)
		inc := h.fire(a)
		time.Sleep(time.Minute)
		got, err := h.m.Resolve(inc.ID, "alice", "fixed the cron job")
		require.NoError(t, err)
		require.Equal(t, StateResolved, got.State)
		require.Equal(t, "alice", got.ResolvedBy)
		_, err = h.m.Acknowledge(inc.ID, "bob", "")
		require.ErrorIs(t, err, ErrResolved)
		_, err = h.m.Incident("nope")
		require.ErrorIs(t, err, ErrNotFound)

		// The same firing, resent by the rules manager, does not reopen it.
		h.m.Notify(context.Background(), "x", a)
		synctest.Wait()
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, 1)
		require.Equal(t, []summary{{"r1", 0, KindFiring}, {"r1", time.Minute, KindResolved}}, summarize(rec.delivered(), t0))
	})
}

func TestEnvironments(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []summary
	}{
		{config.EnvStaging, []summary{
			{"r1", 0, KindFiring},
			{"r1", time.Hour, KindRepeat},
			{"r1", 2 * time.Hour, KindRepeat},
			{"r1", 150 * time.Minute, KindResolved},
		}},
		{config.EnvDevelopment, []summary{
			{"log", 0, KindFiring},
			{"log", time.Hour, KindEscalation},
			{"log", 2 * time.Hour, KindEscalation},
			{"log", 150 * time.Minute, KindResolved},
		}},
	} {
		t.Run(tc.env, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				rb := &fakeRollbacker{}
				h := start(t, t.TempDir(), testConfig(tc.env), rec, rb)
				t0 := time.Now()
				a := alert("critical", t0)
				inc := h.fire(a)
				time.Sleep(150 * time.Minute)
				h.m.Notify(context.Background(), "x", resolved(a, time.Now()))
				synctest.Wait()
				require.Equal(t, tc.want, summarize(rec.delivered(), t0))
				require.Zero(t, rb.calls, "no rollback outside production")
				got, err := h.m.Incident(inc.ID)
				require.NoError(t, err)
				require.Nil(t, got.Rollback)
			})
		})
	}
}

type fakeRollbacker struct {
	mtx   sync.Mutex
	calls int
	// dryRun records without a message.
	dryRun bool
}

func (f *fakeRollbacker) Decide(_ context.Context, inc *Incident, env string) (*Message, *RollbackRecord, error) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.calls++
	rec := &RollbackRecord{BadVersion: "v2", PreviousVersion: "v1", DryRun: f.dryRun}
	if f.dryRun {
		return nil, rec, nil
	}
	return &Message{Kind: KindRollback, Payload: []byte(`{"incident":"` + inc.ID + `","env":"` + env + `"}`)}, rec, nil
}

type statusErr int

func (e statusErr) Error() string   { return fmt.Sprintf("deploy controller answered %d", int(e)) }
func (e statusErr) StatusCode() int { return int(e) }

func TestRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		failures := 2
		rec.setFail(func(name string, _ *Message) (bool, error) {
			if name == RollbackReceiver && failures > 0 {
				failures--
				return true, fmt.Errorf("post: %w", statusErr(503))
			}
			return false, nil
		})
		rb := &fakeRollbacker{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, rb)
		t0 := time.Now()
		inc := h.fire(alert("critical", t0))
		synctest.Wait()
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.NotNil(t, got.Rollback)
		require.Equal(t, OutcomePending, got.Rollback.Outcome)
		require.Equal(t, 503, got.Rollback.StatusCode)
		require.Equal(t, 1, got.Rollback.Attempts)

		time.Sleep(10 * time.Second)
		synctest.Wait()
		var rollbacks []call
		for _, c := range rec.got() {
			if c.receiver == RollbackReceiver {
				rollbacks = append(rollbacks, c)
			}
		}
		require.Len(t, rollbacks, 3)
		require.Equal(t, KindRollback, rollbacks[2].kind)
		require.Equal(t, rollbacks[0].delivery, rollbacks[2].delivery, "retries keep the DeliveryID")
		require.JSONEq(t, `{"incident":"`+inc.ID+`","env":"production"}`, rollbacks[2].payload)
		// Backoff: about 1s, then about 2s (±20%).
		require.InDelta(t, time.Second, rollbacks[1].at.Sub(rollbacks[0].at), float64(200*time.Millisecond))
		require.InDelta(t, 2*time.Second, rollbacks[2].at.Sub(rollbacks[1].at), float64(400*time.Millisecond))

		got, err = h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, OutcomeDelivered, got.Rollback.Outcome)
		require.Equal(t, 3, got.Rollback.Attempts)
		require.Equal(t, rollbacks[0].delivery, got.Rollback.DeliveryID)
		require.Equal(t, "v2", got.Rollback.BadVersion)
		require.Equal(t, 1, rb.calls)
		require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.rollbacks.WithLabelValues(OutcomeDelivered)))

		// The alert's resends do not decide again.
		h.m.Notify(context.Background(), "x", alert("critical", t0))
		synctest.Wait()
		require.Equal(t, 1, rb.calls)
	})
}

func TestRollbackDryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, &fakeRollbacker{dryRun: true})
		inc := h.fire(alert("critical", time.Now()))
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.True(t, got.Rollback.DryRun)
		require.Equal(t, "dry_run", got.Rollback.Outcome)
		for _, c := range rec.got() {
			require.NotEqual(t, RollbackReceiver, c.receiver)
		}
	})
}

func TestDeliveryFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		retry    bool
		err      error
		attempts int
		after    time.Duration
	}{
		{"not retried", false, errors.New("bad request"), 1, 0},
		{"retried until expiry", true, errors.New("unavailable"), 0, time.Hour},
		{"retry after", true, &RetryAfter{After: 20 * time.Minute, Err: errors.New("429")}, 4, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				rec.setFail(func(string, *Message) (bool, error) { return tc.retry, tc.err })
				h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil,
					func(o *Options) { o.DeliveryExpiry = time.Hour })
				t0 := time.Now()
				inc := h.fire(alert("critical", t0))
				time.Sleep(time.Hour - time.Second)
				inc, err := h.m.Incident(inc.ID)
				require.NoError(t, err)
				_, err = h.m.Acknowledge(inc.ID, "a", "") // stop escalating
				require.NoError(t, err)
				synctest.Wait()
				time.Sleep(2 * time.Hour)
				synctest.Wait()

				inc, err = h.m.Incident(inc.ID)
				require.NoError(t, err)
				n := inc.Notifications[0]
				require.Equal(t, OutcomeFailed, n.Outcome)
				require.Equal(t, tc.err.Error(), n.Error)
				require.Equal(t, tc.after, n.DoneAt.Sub(t0))
				if tc.attempts > 0 {
					require.Equal(t, tc.attempts, n.Attempts) // 0, 20m, 40m, 60m
				} else {
					require.Greater(t, n.Attempts, 10)
				}
				require.Equal(t, 0.0, testutil.ToFloat64(h.m.metrics.pending))
				require.Equal(t, 2.0, testutil.ToFloat64(h.m.metrics.notifications.WithLabelValues("r1", OutcomeFailed)))
			})
		})
	}
}

func TestRestartResumesDeliveriesAndEscalation(t *testing.T) {
	for _, tc := range []struct {
		name string
		// down is how long vigil is stopped, from 30m after the alert.
		down time.Duration
		// wantR2 is when level 2 is notified, after the alert.
		wantR2 time.Duration
	}{
		{"deadline after restart", 10 * time.Minute, time.Hour},
		{"deadline passed while down", 2 * time.Hour, 150 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				rec := &recorder{}
				rec.setFail(func(name string, _ *Message) (bool, error) {
					if name == "r1" {
						return true, errors.New("connection refused")
					}
					return false, nil
				})
				rb := &fakeRollbacker{}
				h := start(t, dir, testConfig(config.EnvProduction), rec, rb)
				t0 := time.Now()
				inc := h.fire(alert("critical", t0))
				time.Sleep(30 * time.Minute)
				synctest.Wait()
				h.stop()
				var failed []call
				for _, c := range rec.got() {
					if c.receiver == "r1" {
						require.Empty(t, c.kind, "r1 is down")
						failed = append(failed, c)
					}
				}
				require.Greater(t, len(failed), 3)
				firstID := failed[0].delivery

				time.Sleep(tc.down)
				rec.setFail(nil) // the receiver recovered
				h2 := start(t, dir, testConfig(config.EnvProduction), rec, rb)
				time.Sleep(5 * time.Hour)
				synctest.Wait()

				var got []call
				for _, c := range rec.delivered() {
					if c.receiver != RollbackReceiver {
						got = append(got, c)
					}
				}
				require.Equal(t, firstID, got[0].delivery, "the same DeliveryID after the restart")
				require.Equal(t, summary{"r1", 30*time.Minute + tc.down, KindFiring}, summarize(got[:1], t0)[0])
				require.Equal(t, summary{"r2", tc.wantR2, KindEscalation}, summarize(got[1:2], t0)[0])
				require.Equal(t, summary{"r3", tc.wantR2 + time.Hour, KindEscalation}, summarize(got[2:3], t0)[0])

				inc, err := h2.m.Incident(inc.ID)
				require.NoError(t, err)
				require.Equal(t, OutcomeDelivered, inc.Notifications[0].Outcome)
				require.Equal(t, len(failed)+1, inc.Notifications[0].Attempts)
				require.Equal(t, 1, rb.calls, "the rollback is decided once")
				require.Equal(t, OutcomeDelivered, inc.Rollback.Outcome)
			})
		})
	}
}

func TestKV(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBoltStore(dir)
	require.NoError(t, err)
	a, b := s.KV("slack"), s.KV("rollback")
	require.NoError(t, a.Put("ts/1", []byte("x")))
	require.NoError(t, a.Put("ts/2", []byte("y")))
	require.NoError(t, a.Put("other", []byte("z")))
	require.NoError(t, b.Put("ts/1", []byte("b")))
	v, ok, err := a.Get("ts/1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "x", string(v))
	list, err := a.List("ts/")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"ts/1": []byte("x"), "ts/2": []byte("y")}, list)
	require.NoError(t, a.Delete("ts/1"))
	require.NoError(t, s.Close())

	s, err = OpenBoltStore(dir)
	require.NoError(t, err)
	defer s.Close()
	_, ok, err = s.KV("slack").Get("ts/1")
	require.NoError(t, err)
	require.False(t, ok)
	v, ok, err = s.KV("rollback").Get("ts/1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "b", string(v))
	_, ok, err = s.KV("empty").Get("x")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestIDsSortByTime(t *testing.T) {
	var ids idSource
	now := time.Now()
	a, b := ids.next(now), ids.next(now)
	c := ids.next(now.Add(time.Second))
	require.Len(t, a, 24)
	require.Less(t, a, b)
	require.Less(t, b, c)
}

func BenchmarkDeliveries(b *testing.B) {
	cfg := testConfig(config.EnvProduction)
	cfg.Escalation.Levels = cfg.Escalation.Levels[:1]
	var delivered sync.WaitGroup
	m, err := New(&Options{
		DataDir: b.TempDir(),
		Receivers: func(*config.Config) (map[string]Receiver, error) {
			return map[string]Receiver{"r1": receiverFunc(func(context.Context, *Message) (bool, error) {
				delivered.Done()
				return false, nil
			})}, nil
		},
	}, slog.New(slog.DiscardHandler), nil)
	require.NoError(b, err)
	require.NoError(b, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done; _ = m.Close() }()

	// The rules manager sends an evaluation's alerts in one call: 100 here.
	const perNotify = 100
	alerts := make([]*rules.Alert, 0, perNotify)
	b.ResetTimer()
	start := time.Now()
	delivered.Add(b.N)
	for i := range b.N {
		a := alert("critical", start)
		a.Labels = labels.FromStrings(labels.AlertName, "bench", "i", fmt.Sprint(i))
		alerts = append(alerts, a)
		if len(alerts) == perNotify || i == b.N-1 {
			m.Notify(ctx, "bench", alerts...)
			alerts = alerts[:0]
		}
	}
	delivered.Wait()
	for m.queue.len() > 0 { // until every outcome is committed
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}

type receiverFunc func(context.Context, *Message) (bool, error)

func (f receiverFunc) Notify(ctx context.Context, m *Message) (bool, error) { return f(ctx, m) }

func TestBuiltInLogReceiverAndBadReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		calls := 0
		m, err := New(&Options{
			DataDir: t.TempDir(),
			Receivers: func(cfg *config.Config) (map[string]Receiver, error) {
				calls++
				if cfg.Service == "broken" {
					return nil, errors.New("slack: token_file unreadable")
				}
				return nil, nil
			},
		}, slog.New(slog.NewTextHandler(&buf, nil)), prometheus.NewRegistry())
		require.NoError(t, err)
		// Alerts before the first config are dropped, not stored.
		m.Notify(context.Background(), "x", alert("critical", time.Now()))
		all, err := m.Incidents("")
		require.NoError(t, err)
		require.Empty(t, all)

		require.NoError(t, m.ApplyConfig(testConfig(config.EnvDevelopment)))
		bad := testConfig(config.EnvProduction)
		bad.Service = "broken"
		require.ErrorContains(t, m.ApplyConfig(bad), "token_file unreadable")
		require.Equal(t, config.EnvDevelopment, m.config().env, "a bad reload keeps the old config")

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		m.Notify(ctx, "cpu_usage > 80", alert("critical", time.Now()))
		synctest.Wait()
		cancel()
		<-done
		require.NoError(t, m.Close())
		require.Contains(t, buf.String(), "incident firing")
		require.Contains(t, buf.String(), "alertname=high_cpu")
		require.Contains(t, buf.String(), `summary="CPU above 80%"`)
		require.Contains(t, buf.String(), "level_name=support")
		require.Equal(t, 2, calls)
	})
}

type syncBuffer struct {
	mtx sync.Mutex
	b   []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return string(s.b)
}
