package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// seriesAlerts are n firing alerts of one rule, one per series.
func seriesAlerts(name string, n int, activeAt time.Time) []*rules.Alert {
	out := make([]*rules.Alert, n)
	for i := range out {
		a := alert("critical", activeAt)
		a.Labels = labels.FromStrings(labels.AlertName, name, "severity", "critical", "app", "app", "instance", fmt.Sprintf("host-%05d", i))
		out[i] = a
	}
	return out
}

func resolvedAll(as []*rules.Alert, at time.Time) []*rules.Alert {
	out := make([]*rules.Alert, len(as))
	for i, a := range as {
		out[i] = resolved(a, at)
	}
	return out
}

// updateCounter counts the alerts each write transaction looked up (only
// Notify looks alerts up).
type updateCounter struct {
	*BoltStore
	mtx     sync.Mutex
	lookups []int
}

func (s *updateCounter) Update(fn func(Tx) error) error {
	n := 0
	err := s.BoltStore.Update(func(tx Tx) error {
		n = 0
		return fn(lookupTx{Tx: tx, n: &n})
	})
	if n > 0 {
		s.mtx.Lock()
		s.lookups = append(s.lookups, n)
		s.mtx.Unlock()
	}
	return err
}

func (s *updateCounter) batches() []int {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return append([]int(nil), s.lookups...)
}

type lookupTx struct {
	Tx
	n *int
}

func (t lookupTx) LatestIncident(fp string) (Incident, bool, error) {
	if len(fp) == 16 { // an alert's, not a storm's
		*t.n++
	}
	return t.Tx.LatestIncident(fp)
}

func (h *harness) storm(name string) Incident {
	h.t.Helper()
	for _, inc := range must(h.m.Incidents(""))(h.t) {
		if inc.Storm != nil && inc.Alert.Name == name {
			return inc
		}
	}
	h.t.Fatalf("no storm incident of %s", name)
	return Incident{}
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// A rule that fires for 1,200 series at once opens storm_threshold
// incidents and folds the rest into one, written in batches; the folded
// alerts' resends change nothing, each resolution counts once, and the last
// one resolves the storm incident and tells Level 1.
func TestStormFoldsIntoOneIncident(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := OpenBoltStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		store := &updateCounter{BoltStore: b}
		cfg := testConfig(config.EnvProduction)
		cfg.Escalation.StormThreshold = 3
		rec := &recorder{}
		h := start(t, "", cfg, rec, nil, func(o *Options) { o.Store = store })
		t0 := time.Now()
		storm := seriesAlerts("high_cpu", 1200, t0)

		h.m.Notify(context.Background(), "cpu_usage > 80", storm...)
		synctest.Wait()
		require.Equal(t, []int{500, 500, 200}, store.batches(), "1,200 alerts are written %d at a time", notifyBatch)

		open := must(h.m.Incidents(StateTriggered))(t)
		require.Equal(t, 4, len(open), "storm_threshold incidents and one storm incident")
		inc := h.storm("high_cpu")
		require.Equal(t, 1197, inc.Storm.Alerts)
		require.Equal(t, 1197, inc.Storm.Firing)
		require.Len(t, inc.Storm.Sample, StormSample)
		require.Equal(t, "host-00003", inc.Storm.Sample[0].Labels["instance"], "the sample is the first alerts folded")
		require.Equal(t, PriorityCritical, inc.Priority)
		require.Equal(t, map[string]string{"alertname": "high_cpu", "severity": "critical", "app": "app"}, inc.Alert.Labels)
		require.Equal(t, `1197 alerts folded, 1197 still firing; the first: {instance="host-00003"}, {instance="host-00004"}, `+
			`{instance="host-00005"}, {instance="host-00006"}, {instance="host-00007"}`, inc.Alert.Annotations["description"])
		firing := 0
		for _, c := range rec.delivered() {
			if c.kind == KindFiring {
				require.Equal(t, "r1", c.receiver)
				firing++
			}
		}
		require.Equal(t, 4, firing, "Level 1 is paged four times, not 1,200")

		// The threshold counts per alertname.
		h.m.Notify(context.Background(), "disk_usage > 80", seriesAlerts("disk_full", 2, t0)...)
		// Resends of the folded alerts change nothing.
		h.m.Notify(context.Background(), "cpu_usage > 80", storm...)
		synctest.Wait()
		require.Len(t, must(h.m.Incidents(StateTriggered))(t), 6)
		require.Equal(t, 1197, h.storm("high_cpu").Storm.Firing)

		// Resolutions count once each, resends too.
		end := time.Now()
		h.m.Notify(context.Background(), "cpu_usage > 80", resolvedAll(storm[3:1199], end)...)
		h.m.Notify(context.Background(), "cpu_usage > 80", resolvedAll(storm[3:1199], end)...)
		synctest.Wait()
		inc = h.storm("high_cpu")
		require.Equal(t, StateTriggered, inc.State)
		require.Equal(t, 1, inc.Storm.Firing)
		require.Equal(t, 1197, inc.Storm.Alerts)

		h.m.Notify(context.Background(), "cpu_usage > 80", resolvedAll(storm[1199:], end)...)
		synctest.Wait()
		inc = h.storm("high_cpu")
		require.Equal(t, StateResolved, inc.State)
		require.Equal(t, ResolvedByAlert, inc.ResolvedBy)
		var told []Kind
		for _, c := range rec.delivered() {
			if c.incident == inc.ID {
				told = append(told, c.kind)
			}
		}
		require.Equal(t, []Kind{KindFiring, KindResolved}, told)

		// A later firing of a folded series is new: with three incidents
		// of its name open, it opens a new storm.
		h.m.Notify(context.Background(), "cpu_usage > 80", seriesAlerts("high_cpu", 1200, time.Now())[1000])
		synctest.Wait()
		again := h.storm("high_cpu")
		require.NotEqual(t, inc.ID, again.ID)
		require.Equal(t, 1, again.Storm.Firing)
	})
}

// startTwoStorms starts a notifier with a storm threshold of 1 and fires
// five high_cpu and five disk_full alerts: each name has one incident of
// its own (the first alert) and a storm incident folding the other four.
func startTwoStorms(t *testing.T) (h *harness, cpu, disk []*rules.Alert) {
	cfg := testConfig(config.EnvProduction)
	cfg.Escalation.StormThreshold = 1
	h = start(t, t.TempDir(), cfg, &recorder{}, nil)
	t0 := time.Now()
	cpu = seriesAlerts("high_cpu", 5, t0)
	disk = seriesAlerts("disk_full", 5, t0)
	h.m.Notify(context.Background(), "x", cpu...)
	h.m.Notify(context.Background(), "y", disk...)
	synctest.Wait()
	time.Sleep(time.Second)
	return h, cpu, disk
}

// After a restart, a storm incident whose alerts all ended while vigil was
// down is resolved by the reconcile; one whose alerts still fire stays.
func TestReconcileJudgesStormsByAlertname(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _, disk := startTwoStorms(t)

		src := &fakeRules{}
		src.set(true, disk[4]) // a folded disk_full alert still fires
		done := reconcileStart(h, src)
		synctest.Wait()
		require.True(t, finished(done))
		require.Equal(t, StateResolved, h.storm("high_cpu").State)
		require.Equal(t, StateTriggered, h.storm("disk_full").State)
	})
}

// After a restart, a storm incident is judged by the alerts it folds, not
// by its name: when every folded alert ended while vigil was down, it
// resolves even though the alert of its name that has an incident of its
// own still fires (else it would stay open, and page, for ever: no
// resolution of its folded alerts is ever sent again). One whose folded
// alerts partly still fire stays, counting only those.
func TestReconcileJudgesStormsByTheirAlerts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, cpu, disk := startTwoStorms(t)

		src := &fakeRules{}
		// cpu[0] and disk[0] have incidents of their own; of the folded
		// ones only disk[3] and disk[4] still fire (disk[4] pending again,
		// as after a start until its for state is restored).
		src.set(true, cpu[0], disk[0], disk[3], pending(disk[4]))
		done := reconcileStart(h, src)
		synctest.Wait()
		require.True(t, finished(done))
		require.Equal(t, StateResolved, h.storm("high_cpu").State)
		diskStorm := h.storm("disk_full")
		require.Equal(t, StateTriggered, diskStorm.State)
		require.Equal(t, 2, diskStorm.Storm.Firing)

		// Their resolutions now end the storm.
		h.m.Notify(context.Background(), "y", resolvedAll(disk[3:], time.Now())...)
		synctest.Wait()
		require.Equal(t, StateResolved, h.storm("disk_full").State)
	})
}

// BenchmarkStorm100k measures a 100k-series storm with the default
// threshold: the time to record it, the store's size after it, and its
// pages.
func BenchmarkStorm100k(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		cfg := testConfig(config.EnvProduction)
		cfg.Escalation.StormThreshold = config.DefaultStormThreshold
		cfg.Escalation.Levels = []config.LevelConfig{{Name: "support", Notify: []string{"r1"}}}
		m, err := New(&Options{DataDir: dir, Receivers: func(*config.Config) (map[string]Receiver, error) {
			return map[string]Receiver{"r1": receiverFunc(func(context.Context, *Message) (bool, error) { return false, nil })}, nil
		}}, slog.New(slog.DiscardHandler), nil)
		require.NoError(b, err)
		require.NoError(b, m.ApplyConfig(cfg))
		m.Notify(context.Background(), "x", seriesAlerts("high_cpu", 100_000, time.Now())...)
		open, err := m.Incidents(StateTriggered)
		require.NoError(b, err)
		require.NoError(b, m.Close())
		fi, err := os.Stat(filepath.Join(dir, StoreFile))
		require.NoError(b, err)
		b.ReportMetric(float64(fi.Size())/(1<<20), "MB-store")
		b.ReportMetric(float64(len(open)), "incidents")
	}
}

// The threshold counts the open incidents in the store after a restart, and
// resolved ones no more.
func TestStormThresholdCountsOpenIncidents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := testConfig(config.EnvProduction)
		cfg.Escalation.StormThreshold = 3
		h := start(t, dir, cfg, &recorder{}, nil)
		t0 := time.Now()
		as := seriesAlerts("high_cpu", 6, t0)
		h.m.Notify(context.Background(), "x", as[:3]...)
		h.m.Notify(context.Background(), "x", resolved(as[0], time.Now()))
		synctest.Wait()
		h.stop()

		h = start(t, dir, cfg, &recorder{}, nil)
		h.m.Notify(context.Background(), "x", as[3]) // two open: opens a third
		h.m.Notify(context.Background(), "x", as[4]) // three open: folds
		synctest.Wait()
		require.Len(t, must(h.m.Incidents(StateTriggered))(t), 4)
		require.Equal(t, 1, h.storm("high_cpu").Storm.Alerts)
	})
}

// A storm incident resolved by hand keeps its alerts that go on firing
// muted; an alert that starts after the resolution folds anew.
func TestStormResolvedByHand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(config.EnvProduction)
		cfg.Escalation.StormThreshold = 1
		h := start(t, t.TempDir(), cfg, &recorder{}, nil)
		as := seriesAlerts("high_cpu", 4, time.Now())
		h.m.Notify(context.Background(), "x", as...)
		synctest.Wait()
		storm := h.storm("high_cpu")
		require.Equal(t, 3, storm.Storm.Alerts)
		_, err := h.m.Resolve(storm.ID, "alice", "known, fixing")
		require.NoError(t, err)

		time.Sleep(time.Minute)
		h.m.Notify(context.Background(), "x", as...) // resends of the same firings
		synctest.Wait()
		require.Len(t, must(h.m.Incidents(StateTriggered))(t), 1, "only the first alert's own incident is open")

		later := seriesAlerts("high_cpu", 4, time.Now())[2]
		h.m.Notify(context.Background(), "x", later)
		synctest.Wait()
		again := h.storm("high_cpu")
		require.NotEqual(t, storm.ID, again.ID)
		require.Equal(t, StateTriggered, again.State)
		require.Equal(t, 1, again.Storm.Alerts)
	})
}

// A restart mid-escalation with storm incidents open: the deadlines that
// passed while vigil was down wait for the first reconcile, which resolves
// the storm whose folded alerts all ended (Level 2 never hears of it) and
// keeps the one whose folded alert still fires, counting only that one
// and paging Level 2 for it at once. A new alert of its name folds into
// it, as before the restart.
func TestRestartMidEscalationWithStormsOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		rec := &recorder{}
		cfg := testConfig(config.EnvProduction)
		cfg.Escalation.StormThreshold = 1
		h := start(t, dir, cfg, rec, nil)
		t0 := time.Now()
		cpu := seriesAlerts("high_cpu", 5, t0)
		disk := seriesAlerts("disk_full", 6, t0)
		h.m.Notify(context.Background(), "x", cpu...)
		h.m.Notify(context.Background(), "y", disk[:5]...)
		synctest.Wait()
		time.Sleep(time.Second)
		cpuStorm, diskStorm := h.storm("high_cpu"), h.storm("disk_full")
		h.stop()

		time.Sleep(2 * time.Hour) // down past the Level 2 deadline (1h)
		h = start(t, dir, cfg, rec, nil, func(o *Options) { o.Reconcile = true })
		src := &fakeRules{}
		done := reconcileStart(h, src)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Empty(t, levelTwo(rec), "Level 2 was paged before the reconcile")

		src.set(true, disk[3]) // one folded disk_full alert still fires
		time.Sleep(time.Second)
		synctest.Wait()
		require.True(t, finished(done))
		require.Equal(t, StateResolved, must(h.m.Incident(cpuStorm.ID))(t).State)
		got := must(h.m.Incident(diskStorm.ID))(t)
		require.Equal(t, StateTriggered, got.State)
		require.Equal(t, 1, got.Storm.Firing)
		calls := levelTwo(rec)
		require.Len(t, calls, 1)
		require.Equal(t, diskStorm.ID, calls[0].incident)
		require.Equal(t, KindEscalation, calls[0].kind)

		h.m.Notify(context.Background(), "y", disk[5])
		synctest.Wait()
		got = must(h.m.Incident(diskStorm.ID))(t)
		require.Equal(t, 5, got.Storm.Alerts)
		require.Equal(t, 2, got.Storm.Firing)
	})
}
