package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

// record returns the stored record of a posted alert, if any.
func record(t *testing.T, kv KV, a PostedAlert) (IngestedAlert, bool) {
	t.Helper()
	raw, ok, err := kv.Get(fingerprint(labels.FromMap(a.Labels)))
	require.NoError(t, err)
	var rec IngestedAlert
	if ok {
		require.NoError(t, json.Unmarshal(raw, &rec))
	}
	return rec, ok
}

func pendingCount(m *Manager) int {
	m.ingest.pendMtx.Lock()
	defer m.ingest.pendMtx.Unlock()
	return len(m.ingest.pending)
}

// TestIngestIncidentStoreRefusalLosesNothing: while the store refuses the
// incidents' transactions (a full disk) a post is still taken, its record
// written; once the store takes writes again its incident opens without a
// new post. The retries back off: a few, not a busy loop.
func TestIngestIncidentStoreRefusalLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openFullStore(t)
		rec := &recorder{}
		h := start(t, "", ingestConfig(time.Hour), rec, nil, func(o *Options) { o.Store = store })
		t0 := time.Now()
		// Off the first prune, which writes too.
		time.Sleep(time.Second)
		synctest.Wait()
		store.full.Store(true)
		a := posted("Kept", t0, t0.Add(time.Hour))
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{a}))
		synctest.Wait()
		_, ok := record(t, store.KV(ingestNamespace), a)
		require.True(t, ok, "the record is written")
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Empty(t, all)
		err = h.m.FlushIngest(context.Background())
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.Equal(t, 1, pendingCount(h.m))

		refusedBefore := store.refused.Load()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		// 1+2+4+8+16 s, then every 30 s: about 14 tries in 5 minutes.
		tries := store.refused.Load() - refusedBefore
		require.GreaterOrEqual(t, tries, int64(10))
		require.LessOrEqual(t, tries, int64(20), "the retries back off")

		store.full.Store(false)
		freed := time.Now()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		inc := h.incidentOf("Kept")
		require.Equal(t, StateTriggered, inc.State)
		require.Equal(t, SourceAPI, inc.Alert.Source)
		require.False(t, inc.CreatedAt.Before(freed))
		require.NoError(t, h.m.FlushIngest(context.Background()))
		require.Zero(t, pendingCount(h.m))
		require.Len(t, rec.delivered(), 1, "Level 1 paged once")
	})
}

// kvFailStore is a BoltStore whose ingest KV refuses writes while fail is
// set.
type kvFailStore struct {
	*BoltStore
	fail bool
}

func (s *kvFailStore) KV(ns string) KV {
	kv := s.BoltStore.KV(ns)
	if ns == ingestNamespace && s.fail {
		return failingKV{kv}
	}
	return kv
}

type failingKV struct{ KV }

var errKVFull = errors.New("kv full")

func (failingKV) Put(string, []byte) error { return errKVFull }
func (failingKV) Delete(string) error      { return errKVFull }

// TestIngestRecordRefusalIsAnError: when the records cannot be written the
// post fails (the sender tries again) and nothing is notified.
func TestIngestRecordRefusalIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := OpenBoltStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		store := &kvFailStore{BoltStore: b}
		h := start(t, "", ingestConfig(time.Hour), &recorder{}, nil, func(o *Options) { o.Store = store })
		synctest.Wait()
		store.fail = true
		t0 := time.Now()
		err = h.m.IngestAlerts(context.Background(), []PostedAlert{posted("Refused", t0, t0.Add(time.Hour))})
		require.ErrorIs(t, err, errKVFull)
		synctest.Wait()
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Empty(t, all, "nothing notified that was not recorded")
		require.Zero(t, pendingCount(h.m))
		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

// TestIngestSweepResolveRetried: an alert whose endsAt passes while the
// store refuses the incidents' writes keeps its record and is resolved,
// at its endsAt, once the store takes writes again.
func TestIngestSweepResolveRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openFullStore(t)
		h := start(t, "", ingestConfig(time.Hour), &recorder{}, nil, func(o *Options) { o.Store = store })
		t0 := time.Now()
		a := posted("Ends", t0, t0.Add(time.Minute))
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{a}))
		synctest.Wait()
		require.Equal(t, StateTriggered, h.incidentOf("Ends").State)

		store.full.Store(true)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		require.Equal(t, StateTriggered, h.incidentOf("Ends").State)
		_, ok := record(t, store.KV(ingestNamespace), a)
		require.True(t, ok, "the record stays until the resolve is recorded")
		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Empty(t, list, "an ended alert is not listed")

		store.full.Store(false)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		inc := h.incidentOf("Ends")
		require.Equal(t, StateResolved, inc.State)
		require.True(t, inc.Alert.ResolvedAt.Equal(t0.Add(time.Minute)), "resolved at its endsAt: %s", inc.Alert.ResolvedAt.Sub(t0))
		_, ok = record(t, store.KV(ingestNamespace), a)
		require.False(t, ok, "the record goes once the resolve is recorded")
		require.Zero(t, pendingCount(h.m))
	})
}

// ingestOnly runs a Manager without Run on dir, takes one post and closes
// it: it stands for a gateway that crashed after writing the records and
// before notifying them.
func ingestOnly(t *testing.T, dir string, alerts ...PostedAlert) {
	t.Helper()
	m, err := New(&Options{DataDir: dir}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(ingestConfig(time.Hour)))
	require.NoError(t, m.IngestAlerts(context.Background(), alerts))
	require.NoError(t, m.Close())
}

// TestIngestCrashBeforeNotify: records written by a gateway that stopped
// before notifying them are notified after the restart: the firing alert
// opens its incident, the resolved one resolves it.
func TestIngestCrashBeforeNotify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		t0 := time.Now()
		firing := posted("Crash", t0, t0.Add(time.Hour))
		ingestOnly(t, dir, firing)

		h := start(t, dir, ingestConfig(time.Hour), &recorder{}, nil)
		synctest.Wait()
		inc := h.incidentOf("Crash")
		require.Equal(t, StateTriggered, inc.State)
		h.stop()

		// The resolve is posted and the gateway stops before notifying
		// it: the tombstone keeps it.
		time.Sleep(time.Minute)
		resolvedAt := time.Now()
		ingestOnly(t, dir, posted("Crash", t0, resolvedAt))
		b, err := OpenBoltStore(dir)
		require.NoError(t, err)
		rec, ok := record(t, b.KV(ingestNamespace), firing)
		require.NoError(t, b.Close())
		require.True(t, ok, "a resolved post leaves a tombstone")
		require.True(t, rec.EndsAt.Equal(resolvedAt))

		h = start(t, dir, ingestConfig(time.Hour), &recorder{}, nil)
		synctest.Wait()
		inc = h.incidentOf("Crash")
		require.Equal(t, StateResolved, inc.State)
		require.Equal(t, ResolvedByAlert, inc.ResolvedBy)
		require.True(t, inc.Alert.ResolvedAt.Equal(resolvedAt))
		_, ok = record(t, h.m.KV(ingestNamespace), firing)
		require.False(t, ok, "the tombstone goes once the resolve is recorded")
		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

// TestIngestNotifyIdempotent: notifying a recorded alert again, as every
// start does, changes nothing: the firing alert's incident and its
// messages are the same, and a resolved alert notified again leaves its
// resolved incident as it was.
func TestIngestNotifyIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		rec := &recorder{}
		h := start(t, dir, ingestConfig(time.Hour), rec, nil)
		t0 := time.Now()
		firing := posted("Twice", t0, t0.Add(time.Hour))
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{firing}))
		synctest.Wait()
		before := h.incidentOf("Twice")
		sent := len(rec.delivered())
		require.Positive(t, sent)
		h.stop()

		time.Sleep(time.Minute)
		h = start(t, dir, ingestConfig(time.Hour), rec, nil)
		synctest.Wait()
		require.Equal(t, before, h.incidentOf("Twice"), "a start notifies the record again, which changes nothing")
		require.Len(t, rec.delivered(), sent)

		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{posted("Twice", t0, time.Now())}))
		synctest.Wait()
		resolvedInc := h.incidentOf("Twice")
		require.Equal(t, StateResolved, resolvedInc.State)
		sent = len(rec.delivered())

		time.Sleep(time.Minute)
		rec2 := IngestedAlert{PostedAlert: posted("Twice", t0, resolvedInc.Alert.ResolvedAt)}
		require.NoError(t, h.m.notifyAlerts(context.Background(), SourceAPI, "", []*rules.Alert{rec2.alert(time.Now())}))
		synctest.Wait()
		require.Equal(t, resolvedInc, h.incidentOf("Twice"), "resolving a resolved member changes nothing")
		require.Len(t, rec.delivered(), sent)
	})
}

// TestIngestTombstoneSharedStore: two gateways on one store, both posted
// every alert. A gateway whose resolve could not be recorded for a while
// neither ends the newer firing the other recorded meanwhile nor deletes
// its record; a tombstone the other deleted already troubles neither.
func TestIngestTombstoneSharedStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := openFullStore(t)
		a := start(t, "", ingestConfig(time.Hour), &recorder{}, nil, func(o *Options) { o.Store = shared })
		b := start(t, "", ingestConfig(time.Hour), &recorder{}, nil, func(o *Options) { o.Store = shared.BoltStore })
		t0 := time.Now()
		post := func(h *harness, p PostedAlert) {
			require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{p}))
		}
		firing := posted("HA", t0, t0.Add(time.Hour))
		post(a, firing)
		post(b, firing)
		synctest.Wait()
		require.Equal(t, StateTriggered, a.incidentOf("HA").State)

		// Both take the resolve; A's store writes fail for a while.
		time.Sleep(time.Minute)
		shared.full.Store(true)
		end := posted("HA", t0, time.Now())
		post(a, end)
		post(b, end)
		synctest.Wait()
		require.Equal(t, StateResolved, b.incidentOf("HA").State)
		require.Zero(t, pendingCount(b.m))
		require.Equal(t, 1, pendingCount(a.m))

		// It fires again, with a new startsAt; B records it first.
		time.Sleep(time.Second)
		t1 := time.Now()
		again := posted("HA", t1, t1.Add(time.Hour))
		post(b, again)
		synctest.Wait()
		shared.full.Store(false)
		time.Sleep(30 * time.Second) // A's retry
		synctest.Wait()
		require.Zero(t, pendingCount(a.m))
		open, err := a.m.Incidents(StateTriggered)
		require.NoError(t, err)
		require.Len(t, open, 1, "A's late resolve did not end the new firing")
		require.True(t, open[0].Alert.ActiveAt.Equal(t1))
		rec, ok := record(t, shared.KV(ingestNamespace), again)
		require.True(t, ok, "A kept the record B wrote")
		require.True(t, rec.StartsAt.Equal(t1))
		list, err := a.m.PostedAlerts()
		require.NoError(t, err)
		require.Len(t, list, 1)
		post(a, again)
		synctest.Wait()
		open, err = a.m.Incidents(StateTriggered)
		require.NoError(t, err)
		require.Len(t, open, 1, "the new firing has its incident")
		require.True(t, open[0].Alert.ActiveAt.Equal(t1))
	})
}

// TestIngestNotifyWorkersKeepOrder: the notify workers never take the same
// alert at once, and a newer post of an alert a worker holds waits for it,
// so the posts of one alert are notified in order; a batch notified after
// a newer post came leaves that one pending.
func TestIngestNotifyWorkersKeepOrder(t *testing.T) {
	m, err := New(&Options{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, m.ApplyConfig(ingestConfig(time.Hour)))
	t0 := time.Now()
	var alerts []PostedAlert
	for i := range ingestNotifyBatch + 10 {
		alerts = append(alerts, posted(fmt.Sprintf("A%03d", i), t0, t0.Add(time.Hour)))
	}
	require.NoError(t, m.IngestAlerts(context.Background(), alerts))
	first := m.takePending()
	require.Len(t, first, ingestNotifyBatch)
	second := m.takePending()
	require.Len(t, second, 10, "the other worker takes the rest")
	require.Empty(t, m.takePending())

	// A newer post of an alert the first worker holds.
	held := first[0]
	var again PostedAlert
	for _, a := range alerts {
		if fingerprint(labels.FromMap(a.Labels)) == held.fp {
			again = a
		}
	}
	again.EndsAt = t0.Add(2 * time.Hour)
	require.NoError(t, m.IngestAlerts(context.Background(), []PostedAlert{again}))
	require.Empty(t, m.takePending(), "the newer post waits for the older")

	m.finishPending(first, nil)
	m.finishPending(second, nil)
	require.Equal(t, 1, pendingCount(m), "the newer post is still pending")
	last := m.takePending()
	require.Len(t, last, 1)
	require.Equal(t, held.fp, last[0].fp)
	require.True(t, last[0].p.alert.ValidUntil.Equal(t0.Add(2*time.Hour)))
}

// getFailStore is a BoltStore whose ingest KV fails every read, counted,
// while fail is set.
type getFailStore struct {
	*BoltStore
	fail atomic.Bool
	gets atomic.Int64
}

func (s *getFailStore) KV(ns string) KV {
	kv := s.BoltStore.KV(ns)
	if ns == ingestNamespace {
		return getFailKV{KV: kv, s: s}
	}
	return kv
}

type getFailKV struct {
	KV
	s *getFailStore
}

func (kv getFailKV) Get(key string) ([]byte, bool, error) {
	if kv.s.fail.Load() {
		kv.s.gets.Add(1)
		return nil, false, errKVFull
	}
	return kv.KV.Get(key)
}

// TestIngestUnreadableStoreReadOnce: while the store fails reads (each of
// which may take the store's whole timeout), the sweep and the notify of
// resolves give up at the first failing read, not after one per alert,
// and the sweep tries again later.
func TestIngestUnreadableStoreReadOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := OpenBoltStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		store := &getFailStore{BoltStore: b}
		h := start(t, "", ingestConfig(time.Hour), &recorder{}, nil, func(o *Options) { o.Store = store })
		const n = 20
		t0 := time.Now()
		var alerts []PostedAlert
		for i := range n {
			alerts = append(alerts, posted(fmt.Sprint("Unread", i), t0, t0.Add(time.Minute)))
		}
		require.NoError(t, h.m.IngestAlerts(context.Background(), alerts))
		synctest.Wait()
		require.Zero(t, pendingCount(h.m))

		store.fail.Store(true)
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Equal(t, int64(1), store.gets.Load(), "the sweep read once")

		var batch []fpPending
		for _, a := range alerts {
			batch = append(batch, fpPending{fp: fingerprint(labels.FromMap(a.Labels)), p: &pendingAlert{tombstone: []byte("{}")}})
		}
		store.gets.Store(0)
		require.Empty(t, h.m.currentResolves(batch))
		require.Equal(t, int64(1), store.gets.Load(), "the notify read once")

		store.fail.Store(false)
		time.Sleep(ingestRetry)
		synctest.Wait()
		for _, a := range alerts {
			require.Equal(t, StateResolved, h.incidentOf(a.Labels["alertname"]).State)
		}
	})
}
