package notifier

import (
	"context"
	"encoding/json"
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
	bolt "go.etcd.io/bbolt"

	"github.com/vigil-sh/vigil/config"
)

const day = 24 * time.Hour

func retentionConfig(retention time.Duration) *config.Config {
	cfg := testConfig(config.EnvProduction)
	cfg.Storage.IncidentRetention = config.Duration(retention)
	return cfg
}

// namedAlert is a firing alert of its own fingerprint.
func namedAlert(name string, activeAt time.Time) *rules.Alert {
	a := alert("critical", activeAt)
	a.Labels = labels.FromStrings(labels.AlertName, name, "severity", "critical", "app", "app")
	return a
}

func incidentIDs(t *testing.T, m *Manager, state State) []string {
	t.Helper()
	all, err := m.Incidents(state)
	require.NoError(t, err)
	out := []string{}
	for _, inc := range all {
		out = append(out, inc.ID)
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// requireIndexConsistent checks the fingerprint index against the
// incidents: every entry names an incident of its fingerprint, and every open
// incident is the one its fingerprint names.
func requireIndexConsistent(t *testing.T, s *BoltStore) {
	t.Helper()
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		incs, fps := tx.Bucket(bucketIncidents), tx.Bucket(bucketFingerprint)
		require.NoError(t, fps.ForEach(func(fp, id []byte) error {
			v := incs.Get(id)
			require.NotNil(t, v, "fingerprint %s names incident %s, which is gone", fp, id)
			var inc Incident
			require.NoError(t, json.Unmarshal(v, &inc))
			require.Equal(t, string(fp), inc.Fingerprint)
			return nil
		}))
		return incs.ForEach(func(id, v []byte) error {
			var inc Incident
			require.NoError(t, json.Unmarshal(v, &inc))
			cur := fps.Get([]byte(inc.Fingerprint))
			if inc.State != StateResolved {
				require.Equal(t, string(id), string(cur), "an open incident is the latest of its fingerprint")
			} else if cur != nil {
				require.GreaterOrEqual(t, string(cur), string(id))
			}
			return nil
		})
	}))
}

func TestRetentionPrunesOnlyWhatMayGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		cfg := retentionConfig(30 * day)
		rec := &recorder{}
		h := start(t, dir, cfg, rec, nil)
		t0 := time.Now()
		a := namedAlert("disk_full", t0)   // resolved by its alert
		b := namedAlert("high_cpu", t0)    // stays open
		c := namedAlert("app_down", t0)    // resolved by hand, still firing
		d := namedAlert("high_memory", t0) // resolved by its alert, later
		incA, incB, incC, incD := h.fire(a), h.fire(b), h.fire(c), h.fire(d)

		time.Sleep(time.Minute)
		h.m.Notify(ctx, "x", resolved(a, time.Now()))
		_, err := h.m.Resolve(incC.ID, "alice", "muted")
		require.NoError(t, err)
		time.Sleep(time.Minute)
		h.m.Notify(ctx, "x", resolved(d, time.Now()))
		synctest.Wait()

		// A resolved 30 days and 30 seconds ago, D 29 seconds later.
		n, err := h.m.PruneIncidents(t0.Add(30*day + 90*time.Second))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = h.m.Incident(incA.ID)
		require.ErrorIs(t, err, ErrNotFound)
		require.Equal(t, sorted(incB.ID, incC.ID, incD.ID), incidentIDs(t, h.m, ""))
		require.Equal(t, sorted(incC.ID, incD.ID), incidentIDs(t, h.m, StateResolved))
		require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.pruned))
		requireIndexConsistent(t, h.m.store.(*BoltStore))

		// Years later: D goes; B is open and C's alert still fires.
		far := t0.Add(1000 * day)
		n, err = h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, sorted(incB.ID, incC.ID), incidentIDs(t, h.m, ""))
		n, err = h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Zero(t, n, "nothing more to prune")

		// C's firing, resent, still does not reopen it.
		h.m.Notify(ctx, "x", c)
		synctest.Wait()
		require.Equal(t, sorted(incB.ID, incC.ID), incidentIDs(t, h.m, ""))

		// A fires again: a new incident, notified as usual.
		before := len(rec.delivered())
		againA := h.fire(namedAlert("disk_full", time.Now()))
		require.NotEqual(t, incA.ID, againA.ID)
		require.Equal(t, incA.Fingerprint, againA.Fingerprint)
		got := rec.delivered()[before:]
		require.Len(t, got, 1)
		require.Equal(t, KindFiring, got[0].kind)
		require.Equal(t, againA.ID, got[0].incident)

		// C's firing ends: that is recorded, without messages, and C may go.
		before = len(rec.delivered())
		h.m.Notify(ctx, "x", resolved(c, time.Now()))
		synctest.Wait()
		require.Len(t, rec.delivered(), before)
		gotC, err := h.m.Incident(incC.ID)
		require.NoError(t, err)
		require.False(t, gotC.Alert.ResolvedAt.IsZero())
		require.Equal(t, "alice", gotC.ResolvedBy)
		n, err = h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		againC := h.fire(namedAlert("app_down", time.Now()))
		require.NotEqual(t, incC.ID, againC.ID)
		require.Equal(t, 3.0, testutil.ToFloat64(h.m.metrics.pruned))
		requireIndexConsistent(t, h.m.store.(*BoltStore))

		// After a restart the store reads the same.
		want := incidentIDs(t, h.m, "")
		require.Equal(t, sorted(incB.ID, againA.ID, againC.ID), want)
		h.stop()
		h2 := start(t, dir, cfg, rec, nil)
		require.Equal(t, want, incidentIDs(t, h2.m, ""))
		_, err = h2.m.Incident(incA.ID)
		require.ErrorIs(t, err, ErrNotFound)
		_, err = h2.m.Incident(incD.ID)
		require.ErrorIs(t, err, ErrNotFound)
		requireIndexConsistent(t, h2.m.store.(*BoltStore))
		// The fingerprints name the new incidents: resends do not open more.
		h2.m.Notify(ctx, "x", namedAlert("disk_full", againA.Alert.ActiveAt), namedAlert("app_down", againC.Alert.ActiveAt))
		synctest.Wait()
		require.Equal(t, want, incidentIDs(t, h2.m, ""))
	})
}

func TestRetentionKeepsQueuedDeliveriesAndPendingRollbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rec := &recorder{}
		rec.setFail(func(_ string, m *Message) (bool, error) {
			if m.Kind == KindResolved {
				return true, fmt.Errorf("receiver down")
			}
			return false, nil
		})
		h := start(t, t.TempDir(), retentionConfig(30*day), rec, nil)
		a := namedAlert("disk_full", time.Now())
		incA := h.fire(a)
		h.m.Notify(ctx, "x", resolved(a, time.Now()))
		synctest.Wait()
		far := time.Now().Add(1000 * day)

		n, err := h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Zero(t, n, "its resolved message is still queued")
		_, err = h.m.Incident(incA.ID)
		require.NoError(t, err)

		rec.setFail(nil)
		time.Sleep(10 * time.Minute) // the retry backoff is at most 5m
		synctest.Wait()
		require.Zero(t, testutil.ToFloat64(h.m.metrics.pending))
		n, err = h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		b := namedAlert("high_cpu", time.Now())
		incB := h.fire(b)
		h.m.Notify(ctx, "x", resolved(b, time.Now()))
		synctest.Wait()
		require.NoError(t, h.m.store.Update(func(tx Tx) error { return tx.SetRollbackPending(incB.ID, true) }))
		n, err = h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Zero(t, n, "its rollback decision is pending")
		require.NoError(t, h.m.store.Update(func(tx Tx) error { return tx.SetRollbackPending(incB.ID, false) }))
		n, err = h.m.PruneIncidents(far)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Empty(t, incidentIDs(t, h.m, ""))
	})
}

// countingStore records how many incidents each write transaction deleted.
type countingStore struct {
	*BoltStore
	mtx     sync.Mutex
	deletes []int
}

func (s *countingStore) Update(fn func(Tx) error) error {
	n := 0
	err := s.BoltStore.Update(func(tx Tx) error {
		n = 0
		return fn(countingTx{Tx: tx, n: &n})
	})
	if err == nil && n > 0 {
		s.mtx.Lock()
		s.deletes = append(s.deletes, n)
		s.mtx.Unlock()
	}
	return err
}

type countingTx struct {
	Tx
	n *int
}

func (t countingTx) DeleteIncident(id string) error {
	*t.n++
	return t.Tx.DeleteIncident(id)
}

// storedIncident is an incident of its own fingerprint as the Manager
// would have written it.
func storedIncident(ids *idSource, name string, created time.Time, state State, resolvedAt time.Time) Incident {
	inc := Incident{
		ID:          ids.next(created),
		Fingerprint: "fp-" + name,
		Alert:       Alert{Name: name, Fingerprint: "fp-" + name, ActiveAt: created, FiredAt: created},
		State:       state,
		Priority:    PriorityCritical,
		CreatedAt:   created,
	}
	if state == StateResolved {
		inc.ResolvedAt, inc.ResolvedBy = resolvedAt, ResolvedByAlert
		inc.Alert.ResolvedAt = resolvedAt
	}
	return inc
}

func putIncidents(t *testing.T, s Store, incs ...Incident) {
	t.Helper()
	require.NoError(t, s.Update(func(tx Tx) error {
		for i := range incs {
			if err := tx.PutIncident(&incs[i]); err != nil {
				return err
			}
		}
		return nil
	}))
}

func TestRetentionPrunesInBatches(t *testing.T) {
	dir := t.TempDir()
	bs, err := OpenBoltStore(dir)
	require.NoError(t, err)
	cs := &countingStore{BoltStore: bs}
	m, err := New(&Options{Store: cs}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(retentionConfig(90*day)))

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var incs []Incident
	for i := range 2500 {
		created := now.Add(-200*day + time.Duration(i)*time.Minute)
		incs = append(incs, storedIncident(&m.ids, fmt.Sprintf("old%d", i), created, StateResolved, created.Add(time.Hour)))
	}
	var kept []string
	for i := range 3 {
		created := now.Add(-300*day + time.Duration(i)*time.Hour)
		inc := storedIncident(&m.ids, fmt.Sprintf("open%d", i), created, StateAcknowledged, time.Time{})
		incs, kept = append(incs, inc), append(kept, inc.ID)
	}
	for i := range 3 {
		created := now.Add(-10*day + time.Duration(i)*time.Hour)
		inc := storedIncident(&m.ids, fmt.Sprintf("recent%d", i), created, StateResolved, created.Add(time.Hour))
		incs, kept = append(incs, inc), append(kept, inc.ID)
	}
	putIncidents(t, bs, incs...)
	slices.Sort(kept)

	n, err := m.PruneIncidents(now)
	require.NoError(t, err)
	require.Equal(t, 2500, n)
	require.GreaterOrEqual(t, len(cs.deletes), 3, "deleted across several transactions: %v", cs.deletes)
	total := 0
	for _, d := range cs.deletes {
		require.LessOrEqual(t, d, pruneBatch)
		total += d
	}
	require.Equal(t, 2500, total)
	require.Equal(t, 2500.0, testutil.ToFloat64(m.metrics.pruned))
	require.Equal(t, kept, incidentIDs(t, m, ""))
	requireIndexConsistent(t, bs)
	require.NoError(t, bs.View(func(tx Tx) error {
		_, found, err := tx.LatestIncident("fp-old0")
		require.NoError(t, err)
		require.False(t, found)
		return nil
	}))
	require.NoError(t, m.Close())
	require.NoError(t, bs.Close())

	// Reopened, the store holds what was kept, and a manager on it finds
	// nothing more to prune.
	m2, err := New(&Options{DataDir: dir}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, m2.Close()) }()
	require.NoError(t, m2.ApplyConfig(retentionConfig(90*day)))
	require.Equal(t, kept, incidentIDs(t, m2, ""))
	requireIndexConsistent(t, m2.store.(*BoltStore))
	n, err = m2.PruneIncidents(now)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRetentionZeroKeepsEverything(t *testing.T) {
	m, err := New(&Options{DataDir: t.TempDir()}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	require.NoError(t, m.ApplyConfig(retentionConfig(0)))
	long := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range 5 {
		inc := storedIncident(&m.ids, fmt.Sprint(i), long.Add(time.Duration(i)*time.Hour), StateResolved, long.Add(time.Duration(i+1)*time.Hour))
		putIncidents(t, m.store, inc)
		want = append(want, inc.ID)
	}
	n, err := m.PruneIncidents(long.Add(100 * 365 * day))
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, sorted(want...), incidentIDs(t, m, ""))
}

func TestRetentionRunsAtStartHourlyAndOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		dir := t.TempDir()
		// Left by an earlier run: resolved 100 days ago.
		s, err := OpenBoltStore(dir)
		require.NoError(t, err)
		var ids idSource
		stale := storedIncident(&ids, "stale", time.Now().Add(-101*day), StateResolved, time.Now().Add(-100*day))
		putIncidents(t, s, stale)
		require.NoError(t, s.Close())

		var logs syncBuffer
		rec := &recorder{}
		m, err := New(&Options{
			DataDir: dir,
			Receivers: func(*config.Config) (map[string]Receiver, error) {
				return map[string]Receiver{"r1": rec.receiver("r1"), "r2": rec.receiver("r2"), "r3": rec.receiver("r3")}, nil
			},
		}, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, m.ApplyConfig(retentionConfig(90*day)))
		done := make(chan struct{})
		go func() { defer close(done); require.NoError(t, m.Run(ctx)) }()
		t.Cleanup(func() {
			cancel()
			<-done
			require.NoError(t, m.Close())
		})
		synctest.Wait()
		_, err = m.Incident(stale.ID)
		require.ErrorIs(t, err, ErrNotFound, "pruned at start")
		require.Contains(t, logs.String(), "pruned resolved incidents past their retention")
		require.Contains(t, logs.String(), "incidents=1")
		require.Contains(t, logs.String(), "retention=90d")

		// Every hour: with 2h of retention, an incident resolved now is
		// gone at the third hourly prune.
		t0 := time.Now()
		require.NoError(t, m.ApplyConfig(retentionConfig(2*time.Hour)))
		a := namedAlert("disk_full", t0)
		m.Notify(ctx, "x", a)
		m.Notify(ctx, "x", resolved(a, t0))
		synctest.Wait()
		require.Len(t, incidentIDs(t, m, StateResolved), 1)
		time.Sleep(150 * time.Minute)
		synctest.Wait()
		require.Len(t, incidentIDs(t, m, StateResolved), 1, "resolved 2h30m ago, last pruned at 2h")
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Empty(t, incidentIDs(t, m, ""))

		// A reload that shortens the retention prunes at once.
		b := namedAlert("high_cpu", time.Now())
		m.Notify(ctx, "x", b)
		m.Notify(ctx, "x", resolved(b, time.Now()))
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		require.Len(t, incidentIDs(t, m, ""), 1)
		require.NoError(t, m.ApplyConfig(retentionConfig(5*time.Minute)))
		synctest.Wait()
		require.Empty(t, incidentIDs(t, m, ""))
		require.Equal(t, 3.0, testutil.ToFloat64(m.metrics.pruned))
	})
}

func TestStoreDeleteIncident(t *testing.T) {
	s, err := OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	defer s.Close()
	var ids idSource
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first := storedIncident(&ids, "x", t0, StateResolved, t0.Add(time.Minute))
	second := storedIncident(&ids, "x", t0.Add(time.Hour), StateResolved, t0.Add(2*time.Hour))
	other := storedIncident(&ids, "y", t0.Add(2*time.Hour), StateTriggered, time.Time{})
	putIncidents(t, s, first, second, other)

	require.NoError(t, s.View(func(tx Tx) error {
		page, err := tx.IncidentsAfter("", 2)
		require.NoError(t, err)
		require.Equal(t, []string{first.ID, second.ID}, []string{page[0].ID, page[1].ID})
		page, err = tx.IncidentsAfter(second.ID, 2)
		require.NoError(t, err)
		require.Len(t, page, 1)
		require.Equal(t, other.ID, page[0].ID)
		all, err := tx.IncidentsAfter("", 0)
		require.NoError(t, err)
		require.Len(t, all, 3)
		return nil
	}))

	latest := func(fp string) (string, bool) {
		var id string
		var found bool
		require.NoError(t, s.View(func(tx Tx) error {
			inc, ok, err := tx.LatestIncident(fp)
			id, found = inc.ID, ok
			return err
		}))
		return id, found
	}
	// An older incident of the fingerprint leaves the index alone.
	require.NoError(t, s.Update(func(tx Tx) error { return tx.DeleteIncident(first.ID) }))
	id, found := latest("fp-x")
	require.True(t, found)
	require.Equal(t, second.ID, id)
	// The latest takes its entry with it.
	require.NoError(t, s.Update(func(tx Tx) error { return tx.DeleteIncident(second.ID) }))
	_, found = latest("fp-x")
	require.False(t, found)
	// A missing incident is no error.
	require.NoError(t, s.Update(func(tx Tx) error { return tx.DeleteIncident(second.ID) }))
	require.NoError(t, s.View(func(tx Tx) error {
		_, err := tx.Incident(first.ID)
		require.ErrorIs(t, err, ErrNotFound)
		return nil
	}))
	requireIndexConsistent(t, s)
}
