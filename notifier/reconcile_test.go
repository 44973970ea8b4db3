package notifier

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// fakeRules is LocalRules with the freshness and alerts a test sets.
type fakeRules struct {
	mtx    sync.Mutex
	fresh  bool
	active []*rules.Alert
	reads  int
	over   map[string]bool
	// overAsked counts OverLimit calls by name.
	overAsked map[string]int
	// afterRead, when set, runs once after the next read, outside the
	// lock: what the rules do between the reconcile's read and its write.
	afterRead func()
}

func (f *fakeRules) setOver(name string, over bool) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.over == nil {
		f.over = map[string]bool{}
	}
	f.over[name] = over
}

func (f *fakeRules) OverLimit(name string) bool {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.overAsked == nil {
		f.overAsked = map[string]int{}
	}
	f.overAsked[name]++
	return f.over[name]
}

func (f *fakeRules) set(fresh bool, active ...*rules.Alert) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.fresh, f.active = fresh, active
}

func (f *fakeRules) Fresh() bool {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	return f.fresh
}

func (f *fakeRules) ForEachActiveAlert(fn func(labels.Labels, rules.AlertState)) {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.reads++
	for _, a := range f.active {
		fn(a.Labels, a.State)
	}
	if after := f.afterRead; after != nil {
		f.afterRead = nil
		f.mtx.Unlock()
		after()
		f.mtx.Lock()
	}
}

func pending(a *rules.Alert) *rules.Alert {
	p := *a
	p.State = rules.StatePending
	return &p
}

// reconcileStart runs Reconcile on src until it returns; the channel closes
// then.
func reconcileStart(h *harness, src LocalRules) chan struct{} {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		require.NoError(h.t, h.m.Reconcile(ctx, src, time.Second))
	}()
	return done
}

func finished(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// After a restart, an open incident whose alert the fresh rules no longer
// hold is resolved and the told levels hear it; until the rules are fresh
// nothing is judged.
func TestReconcileResolvesIncidentsWhoseAlertsEndedWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		rec := &recorder{}
		cfg := testConfig(config.EnvProduction)
		h := start(t, dir, cfg, rec, nil)
		t0 := time.Now()
		gone := h.fire(alert("critical", t0))
		kept := h.fire(namedAlert("disk_full", t0))
		waits := h.fire(namedAlert("slow_queries", t0))
		time.Sleep(time.Hour + time.Second) // Level 2 was told too
		synctest.Wait()
		h.stop()

		// vigil is down; high_cpu clears. After the start disk_full still
		// fires, and slow_queries is pending again (its `for` restarted).
		h = start(t, dir, cfg, rec, nil)
		src := &fakeRules{}
		src.set(false) // nothing scraped since the start yet
		done := reconcileStart(h, src)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Zero(t, src.reads, "the rules were read before they were fresh")
		for _, id := range []string{gone.ID, kept.ID, waits.ID} {
			inc, err := h.m.Incident(id)
			require.NoError(t, err)
			require.Equal(t, StateTriggered, inc.State)
		}

		src.set(true, namedAlert("disk_full", t0), pending(namedAlert("slow_queries", time.Now())))
		time.Sleep(time.Second)
		synctest.Wait()
		inc, err := h.m.Incident(gone.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, inc.State)
		require.Equal(t, ResolvedByAlert, inc.ResolvedBy)
		var resolvedTo []string
		for _, c := range rec.delivered() {
			if c.incident == gone.ID && c.kind == KindResolved {
				resolvedTo = append(resolvedTo, c.receiver)
			}
		}
		require.ElementsMatch(t, []string{"r1", "r2"}, resolvedTo, "every told level hears of the end")
		for _, id := range []string{kept.ID, waits.ID} {
			inc, err := h.m.Incident(id)
			require.NoError(t, err)
			require.Equal(t, StateTriggered, inc.State)
		}
		require.False(t, finished(done), "a pending alert is checked again")

		// The pending alert is dropped without a word: its incident ends.
		src.set(true, namedAlert("disk_full", t0))
		time.Sleep(time.Second)
		synctest.Wait()
		inc, err = h.m.Incident(waits.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, inc.State)
		inc, err = h.m.Incident(kept.ID)
		require.NoError(t, err)
		require.Equal(t, StateTriggered, inc.State)
		require.True(t, finished(done), "nothing is left to judge")
	})
}

// Incidents whose alerts came from outside the rules are not the rules' to
// end.
func TestReconcileLeavesIncidentsFromElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), &recorder{}, nil)
		inc := h.fire(alert("critical", time.Now()))
		// As a gateway's Alertmanager API would write it.
		require.NoError(t, h.m.store.Update(func(tx Tx) error {
			got, err := tx.Incident(inc.ID)
			if err != nil {
				return err
			}
			got.Alert.Source = "alertmanager-api"
			got.Members[0].Source = "alertmanager-api"
			return tx.PutIncident(&got)
		}))
		legacy := h.fire(namedAlert("disk_full", time.Now()))
		// As an older vigil wrote it: no source at all, from the rules.
		require.NoError(t, h.m.store.Update(func(tx Tx) error {
			got, err := tx.Incident(legacy.ID)
			if err != nil {
				return err
			}
			got.Alert.Source = ""
			got.Members = nil
			return tx.PutIncident(&got)
		}))
		time.Sleep(time.Second)
		src := &fakeRules{}
		src.set(true)
		done := reconcileStart(h, src)
		synctest.Wait()
		require.True(t, finished(done))
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, StateTriggered, got.State)
		got, err = h.m.Incident(legacy.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, got.State)
	})
}

// A deadline that passed while vigil was down waits for the first
// reconcile: the level is not paged for an alert that ended meanwhile, and
// is paged at once after it for one that goes on.
func TestDeadlinesWaitForTheFirstReconcile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		rec := &recorder{}
		cfg := testConfig(config.EnvProduction)
		h := start(t, dir, cfg, rec, nil)
		t0 := time.Now()
		gone := h.fire(alert("critical", t0))
		kept := h.fire(namedAlert("disk_full", t0))
		h.stop()

		time.Sleep(2 * time.Hour) // down past the Level 2 deadline (1h)
		h = start(t, dir, cfg, rec, nil, func(o *Options) { o.Reconcile = true })
		src := &fakeRules{}
		done := reconcileStart(h, src)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Empty(t, levelTwo(rec), "Level 2 was paged before the reconcile")

		restarted := time.Now()
		src.set(true, namedAlert("disk_full", t0))
		time.Sleep(time.Second)
		synctest.Wait()
		require.True(t, finished(done))
		got, err := h.m.Incident(gone.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, got.State)
		got, err = h.m.Incident(kept.ID)
		require.NoError(t, err)
		require.Equal(t, 1, got.Level)
		calls := levelTwo(rec)
		require.Len(t, calls, 1)
		require.Equal(t, kept.ID, calls[0].incident)
		require.Equal(t, KindEscalation, calls[0].kind)
		require.LessOrEqual(t, calls[0].at.Sub(restarted), time.Second)
	})
}

func levelTwo(rec *recorder) []call {
	var out []call
	for _, c := range rec.delivered() {
		if c.receiver == "r2" {
			out = append(out, c)
		}
	}
	return out
}

// A rule over its limit has its alerts dropped unresolved: the reconcile
// does not judge its incidents then (their alerts are unknown, not
// ended), and ReconcileRule, run when the rule is back under its limit,
// resolves those whose alert ended meanwhile and keeps the rest.
func TestReconcileRuleOverLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), &recorder{}, nil)
		t0 := time.Now()
		ended := h.fire(alert("critical", t0))
		kept := h.fire(alert("warning", t0))
		other := h.fire(namedAlert("disk_full", t0))
		time.Sleep(time.Second) // the reconcile judges incidents opened before it reads
		state := func(id string) State {
			inc, err := h.m.Incident(id)
			require.NoError(t, err)
			return inc.State
		}

		// high_cpu is over its limit: none of its alerts is active.
		src := &fakeRules{}
		src.setOver("high_cpu", true)
		src.set(true)
		done := reconcileStart(h, src)
		time.Sleep(time.Second)
		synctest.Wait()
		require.True(t, finished(done))
		src.mtx.Lock()
		require.Equal(t, 1, src.overAsked["high_cpu"], "asked once for its two incidents")
		src.mtx.Unlock()
		require.Equal(t, StateResolved, state(other.ID), "disk_full's alert ended")
		require.Equal(t, StateTriggered, state(ended.ID), "not judged while over the limit")
		require.Equal(t, StateTriggered, state(kept.ID), "not judged while over the limit")

		// Back under the limit: the warning alert is pending again (its
		// `for` restarted), the critical one is gone.
		src.setOver("high_cpu", false)
		src.set(true, pending(alert("warning", time.Now())))
		ruleDone := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); <-ruleDone }()
		go func() {
			defer close(ruleDone)
			require.NoError(t, h.m.ReconcileRule(ctx, src, time.Second, "high_cpu"))
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, StateResolved, state(ended.ID))
		require.Equal(t, StateTriggered, state(kept.ID))
		require.False(t, finished(ruleDone), "a pending alert is checked again")
		src.set(true, alert("warning", t0))
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, StateTriggered, state(kept.ID))
		require.True(t, finished(ruleDone))
	})
}

// TestReconcileRuleKeepsRefiring has the alert of an open incident fire
// again (and its firing recorded) right after the reconcile read the rules
// without it: the incident stays open, as the alert is firing.
func TestReconcileRuleKeepsRefiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), &recorder{}, nil)
		t0 := time.Now()
		inc := h.fire(alert("critical", t0))
		time.Sleep(time.Second) // the reconcile judges incidents opened before it reads

		src := &fakeRules{}
		src.set(true)
		refired := alert("critical", time.Now())
		src.afterRead = func() {
			src.set(true, refired)
			h.m.Notify(context.Background(), "cpu_usage > 80", refired)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		require.NoError(t, h.m.ReconcileRule(ctx, src, time.Second, "high_cpu"))
		synctest.Wait()
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, StateTriggered, got.State, "its alert fires")
	})
}
