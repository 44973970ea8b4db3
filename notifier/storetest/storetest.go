// Package storetest is the contract of notifier.Store, run against every
// implementation: the embedded bbolt store (from package notifier's tests)
// and the PostgreSQL one (notifier/pgstore). A behaviour the notifier relies
// on belongs here, so that a store that passes can replace another.
package storetest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// Run runs the contract against stores made by open: each subtest opens an
// empty one. open closes the store when the test ends.
func Run(t *testing.T, open func(t *testing.T) notifier.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s notifier.Store)
	}{
		{"IncidentRoundTrip", testIncidentRoundTrip},
		{"LatestIncident", testLatestIncident},
		{"IncidentsByState", testIncidentsByState},
		{"IncidentsAfter", testIncidentsAfter},
		{"DeleteIncident", testDeleteIncident},
		{"FoldAlert", testFoldAlert},
		{"Deliveries", testDeliveries},
		{"RollbackPending", testRollbackPending},
		{"Silences", testSilences},
		{"KV", testKV},
		{"KVAtomic", testKVAtomic},
		{"UpdateIsAtomic", testUpdateAtomic},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentOpenJoins", testConcurrentOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// id makes an ID that sorts by n, as the notifier's do.
func id(n int) string { return fmt.Sprintf("%016x%08x", base.UnixNano()+int64(n), n) }

func incident(n int, fp string, state notifier.State) notifier.Incident {
	return notifier.Incident{
		ID:          id(n),
		Fingerprint: fp,
		Alert: notifier.Alert{
			Name:        "HighErrorRate",
			Fingerprint: fp,
			Labels:      map[string]string{"alertname": "HighErrorRate", "severity": "critical"},
			Annotations: map[string]string{"summary": "errors"},
			Value:       0.25,
			ActiveAt:    base,
			FiredAt:     base.Add(time.Minute),
		},
		State:         state,
		Priority:      notifier.PriorityCritical,
		Level:         0,
		NextDeadline:  base.Add(15 * time.Minute),
		CreatedAt:     base.Add(time.Duration(n) * time.Second),
		Notifications: []notifier.Notification{},
	}
}

func update(t *testing.T, s notifier.Store, fn func(tx notifier.Tx) error) {
	t.Helper()
	require.NoError(t, s.Update(fn))
}

func view[T any](t *testing.T, s notifier.Store, fn func(tx notifier.Tx) (T, error)) T {
	t.Helper()
	var out T
	require.NoError(t, s.View(func(tx notifier.Tx) error {
		var err error
		out, err = fn(tx)
		return err
	}))
	return out
}

// viewOK is view of a look-up that says whether it found anything.
func viewOK[T any](t *testing.T, s notifier.Store, fn func(tx notifier.Tx) (T, bool, error)) (T, bool) {
	t.Helper()
	var (
		out   T
		found bool
	)
	require.NoError(t, s.View(func(tx notifier.Tx) error {
		var err error
		out, found, err = fn(tx)
		return err
	}))
	return out, found
}

func ids(incs []notifier.Incident) []string {
	out := []string{}
	for _, inc := range incs {
		out = append(out, inc.ID)
	}
	return out
}

func testIncidentRoundTrip(t *testing.T, s notifier.Store) {
	err := s.View(func(tx notifier.Tx) error { _, err := tx.Incident(id(1)); return err })
	require.ErrorIs(t, err, notifier.ErrNotFound)

	inc := incident(1, "fp1", notifier.StateAcknowledged)
	inc.AcknowledgedAt, inc.AcknowledgedBy = base.Add(2*time.Minute), "alice"
	inc.Comments = []notifier.Comment{{At: base, By: "alice", Text: "looking"}}
	inc.Notifications = []notifier.Notification{{DeliveryID: id(100), Receiver: "slack", Kind: notifier.KindFiring, QueuedAt: base, Outcome: notifier.OutcomePending}}
	inc.Rollback = &notifier.RollbackRecord{DeliveryID: "rb_" + inc.ID, BadVersion: "v2", At: base, Outcome: notifier.OutcomePending}
	update(t, s, func(tx notifier.Tx) error { return tx.PutIncident(&inc) })
	got := view(t, s, func(tx notifier.Tx) (notifier.Incident, error) { return tx.Incident(inc.ID) })
	require.Equal(t, inc, got)

	// A rewrite replaces the whole incident.
	inc.State = notifier.StateResolved
	inc.ResolvedAt, inc.ResolvedBy = base.Add(time.Hour), notifier.ResolvedByAlert
	inc.Rollback.Outcome = notifier.OutcomeDelivered
	update(t, s, func(tx notifier.Tx) error { return tx.PutIncident(&inc) })
	got = view(t, s, func(tx notifier.Tx) (notifier.Incident, error) { return tx.Incident(inc.ID) })
	require.Equal(t, inc, got)
}

func testLatestIncident(t *testing.T, s notifier.Store) {
	_, found := view2(t, s, "fp")
	require.False(t, found)
	old := incident(1, "fp", notifier.StateResolved)
	newer := incident(2, "fp", notifier.StateTriggered)
	other := incident(3, "other", notifier.StateTriggered)
	update(t, s, func(tx notifier.Tx) error {
		for _, inc := range []*notifier.Incident{&old, &newer, &other} {
			if err := tx.PutIncident(inc); err != nil {
				return err
			}
		}
		return nil
	})
	got, found := view2(t, s, "fp")
	require.True(t, found)
	require.Equal(t, newer.ID, got.ID)
	// Rewriting the older one does not make it the latest.
	old.Comments = []notifier.Comment{{At: base, By: "bob", Text: "late note"}}
	update(t, s, func(tx notifier.Tx) error { return tx.PutIncident(&old) })
	got, _ = view2(t, s, "fp")
	require.Equal(t, newer.ID, got.ID)
	require.Equal(t, notifier.StateTriggered, got.State)
}

// view2 is the latest incident of fp.
func view2(t *testing.T, s notifier.Store, fp string) (notifier.Incident, bool) {
	t.Helper()
	return viewOK(t, s, func(tx notifier.Tx) (notifier.Incident, bool, error) { return tx.LatestIncident(fp) })
}

func testIncidentsByState(t *testing.T, s notifier.Store) {
	empty := view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.Incidents("") })
	require.NotNil(t, empty)
	require.Empty(t, empty)
	states := []notifier.State{notifier.StateTriggered, notifier.StateResolved, notifier.StateAcknowledged, notifier.StateResolved}
	update(t, s, func(tx notifier.Tx) error {
		for i, st := range states {
			inc := incident(i+1, fmt.Sprintf("fp%d", i), st)
			if err := tx.PutIncident(&inc); err != nil {
				return err
			}
		}
		return nil
	})
	all := view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.Incidents("") })
	require.Equal(t, []string{id(4), id(3), id(2), id(1)}, ids(all), "newest first")
	res := view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.Incidents(notifier.StateResolved) })
	require.Equal(t, []string{id(4), id(2)}, ids(res))
	trig := view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.Incidents(notifier.StateTriggered) })
	require.Equal(t, []string{id(1)}, ids(trig))
}

func testIncidentsAfter(t *testing.T, s notifier.Store) {
	update(t, s, func(tx notifier.Tx) error {
		for i := 1; i <= 5; i++ {
			inc := incident(i, fmt.Sprintf("fp%d", i), notifier.StateResolved)
			if err := tx.PutIncident(&inc); err != nil {
				return err
			}
		}
		return nil
	})
	page := func(after string, limit int) []string {
		return ids(view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.IncidentsAfter(after, limit) }))
	}
	require.Equal(t, []string{id(1), id(2)}, page("", 2))
	require.Equal(t, []string{id(3), id(4)}, page(id(2), 2))
	require.Equal(t, []string{id(5)}, page(id(4), 2))
	require.Equal(t, []string{}, page(id(5), 2))
	require.Equal(t, []string{id(1), id(2), id(3), id(4), id(5)}, page("", 0))
	// An ID that is not stored pages from where it would sort.
	require.Equal(t, []string{id(3), id(4), id(5)}, page(id(2)+"0", -1))
}

func testDeleteIncident(t *testing.T, s notifier.Store) {
	old := incident(1, "fp", notifier.StateResolved)
	newer := incident(2, "fp", notifier.StateResolved)
	update(t, s, func(tx notifier.Tx) error {
		if err := tx.PutIncident(&old); err != nil {
			return err
		}
		return tx.PutIncident(&newer)
	})
	// Deleting the older leaves the latest alone.
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteIncident(old.ID) })
	got, found := view2(t, s, "fp")
	require.True(t, found)
	require.Equal(t, newer.ID, got.ID)
	// Deleting the latest: LatestIncident never names a deleted incident.
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteIncident(newer.ID) })
	_, found = view2(t, s, "fp")
	require.False(t, found)
	err := s.View(func(tx notifier.Tx) error { _, err := tx.Incident(newer.ID); return err })
	require.ErrorIs(t, err, notifier.ErrNotFound)
	// Deleting what is not there does nothing.
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteIncident(id(99)) })
	// A new incident of the fingerprint is its latest again.
	again := incident(3, "fp", notifier.StateTriggered)
	update(t, s, func(tx notifier.Tx) error { return tx.PutIncident(&again) })
	got, found = view2(t, s, "fp")
	require.True(t, found)
	require.Equal(t, again.ID, got.ID)

	// A group incident's members name it too; they go with it.
	group := incident(4, "group", notifier.StateResolved)
	group.Members = []notifier.Member{{Fingerprint: "member-a"}, {Fingerprint: "member-b"}}
	update(t, s, func(tx notifier.Tx) error {
		if err := tx.PutIncident(&group); err != nil {
			return err
		}
		for _, m := range group.Members {
			if err := tx.FoldAlert(m.Fingerprint, group.ID); err != nil {
				return err
			}
		}
		return nil
	})
	got, found = view2(t, s, "member-a")
	require.True(t, found)
	require.Equal(t, group.ID, got.ID)
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteIncident(group.ID) })
	for _, fp := range []string{"group", "member-a", "member-b"} {
		_, found = view2(t, s, fp)
		require.False(t, found, fp)
	}
}

func testFoldAlert(t *testing.T, s notifier.Store) {
	storm := incident(5, "storm:HighErrorRate", notifier.StateTriggered)
	storm.Storm = &notifier.Storm{}
	own := incident(1, "fpA", notifier.StateResolved)
	update(t, s, func(tx notifier.Tx) error {
		if err := tx.PutIncident(&own); err != nil {
			return err
		}
		if err := tx.PutIncident(&storm); err != nil {
			return err
		}
		return tx.FoldAlert("fpA", storm.ID)
	})
	got, found := view2(t, s, "fpA")
	require.True(t, found)
	require.Equal(t, storm.ID, got.ID)
	// Unfolding names the incident: another's fold is left alone.
	update(t, s, func(tx notifier.Tx) error { return tx.UnfoldAlert("fpA", id(77)) })
	got, _ = view2(t, s, "fpA")
	require.Equal(t, storm.ID, got.ID)
	update(t, s, func(tx notifier.Tx) error { return tx.UnfoldAlert("fpA", storm.ID) })
	_, found = view2(t, s, "fpA")
	require.False(t, found)
	// A fold into an incident that was deleted is no latest incident.
	update(t, s, func(tx notifier.Tx) error { return tx.FoldAlert("fpB", id(88)) })
	_, found = view2(t, s, "fpB")
	require.False(t, found)
}

func delivery(n int) notifier.Delivery {
	return notifier.Delivery{
		ID:          id(n),
		IncidentID:  id(1),
		Receiver:    "webhook",
		Message:     []byte(`{"deliveryId":"` + id(n) + `","kind":"firing"}`),
		NextAttempt: base,
		QueuedAt:    base,
	}
}

func testDeliveries(t *testing.T, s notifier.Store) {
	got := view(t, s, func(tx notifier.Tx) ([]notifier.Delivery, error) { return tx.Deliveries() })
	require.Empty(t, got)
	_, ok := view3(t, s, id(1))
	require.False(t, ok)
	d3, d1, d2 := delivery(3), delivery(1), delivery(2)
	update(t, s, func(tx notifier.Tx) error {
		for _, d := range []*notifier.Delivery{&d3, &d1, &d2} {
			if err := tx.PutDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
	got = view(t, s, func(tx notifier.Tx) ([]notifier.Delivery, error) { return tx.Deliveries() })
	require.Len(t, got, 3)
	require.Equal(t, []string{id(1), id(2), id(3)}, []string{got[0].ID, got[1].ID, got[2].ID}, "oldest first")
	require.JSONEq(t, string(d1.Message), string(got[0].Message))

	d1.Attempts, d1.NextAttempt, d1.LastError = 2, base.Add(4*time.Second), "503 Service Unavailable"
	update(t, s, func(tx notifier.Tx) error { return tx.PutDelivery(&d1) })
	one, ok := view3(t, s, d1.ID)
	require.True(t, ok)
	require.Equal(t, 2, one.Attempts)
	require.Equal(t, "503 Service Unavailable", one.LastError)
	require.True(t, d1.NextAttempt.Equal(one.NextAttempt))

	update(t, s, func(tx notifier.Tx) error { return tx.DeleteDelivery(d2.ID) })
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteDelivery(id(42)) })
	got = view(t, s, func(tx notifier.Tx) ([]notifier.Delivery, error) { return tx.Deliveries() })
	require.Equal(t, []string{id(1), id(3)}, []string{got[0].ID, got[1].ID})
}

// view3 is the delivery did.
func view3(t *testing.T, s notifier.Store, did string) (notifier.Delivery, bool) {
	t.Helper()
	return viewOK(t, s, func(tx notifier.Tx) (notifier.Delivery, bool, error) { return tx.Delivery(did) })
}

func testRollbackPending(t *testing.T, s notifier.Store) {
	got := view(t, s, func(tx notifier.Tx) ([]string, error) { return tx.RollbackPending() })
	require.Empty(t, got)
	update(t, s, func(tx notifier.Tx) error {
		for _, n := range []int{2, 1, 3} {
			if err := tx.SetRollbackPending(id(n), true); err != nil {
				return err
			}
		}
		// Marking twice is marking once.
		return tx.SetRollbackPending(id(1), true)
	})
	got = view(t, s, func(tx notifier.Tx) ([]string, error) { return tx.RollbackPending() })
	require.ElementsMatch(t, []string{id(1), id(2), id(3)}, got)
	update(t, s, func(tx notifier.Tx) error {
		if err := tx.SetRollbackPending(id(2), false); err != nil {
			return err
		}
		return tx.SetRollbackPending(id(9), false)
	})
	got = view(t, s, func(tx notifier.Tx) ([]string, error) { return tx.RollbackPending() })
	require.ElementsMatch(t, []string{id(1), id(3)}, got)
}

func testSilences(t *testing.T, s notifier.Store) {
	err := s.View(func(tx notifier.Tx) error { _, err := tx.Silence(id(1)); return err })
	require.ErrorIs(t, err, notifier.ErrNotFound)
	empty := view(t, s, func(tx notifier.Tx) ([]notifier.Silence, error) { return tx.Silences() })
	require.NotNil(t, empty)
	require.Empty(t, empty)
	mk := func(n int) notifier.Silence {
		return notifier.Silence{ID: id(n), Matchers: `{alertname="HighErrorRate"}`, StartsAt: base, EndsAt: base.Add(time.Hour),
			CreatedBy: "alice", Comment: "deploy", CreatedAt: base}
	}
	s1, s2 := mk(1), mk(2)
	update(t, s, func(tx notifier.Tx) error {
		if err := tx.PutSilence(&s1); err != nil {
			return err
		}
		return tx.PutSilence(&s2)
	})
	all := view(t, s, func(tx notifier.Tx) ([]notifier.Silence, error) { return tx.Silences() })
	require.Equal(t, []notifier.Silence{s2, s1}, all, "newest first")
	s1.EndsAt = base.Add(time.Minute)
	update(t, s, func(tx notifier.Tx) error { return tx.PutSilence(&s1) })
	got := view(t, s, func(tx notifier.Tx) (notifier.Silence, error) { return tx.Silence(s1.ID) })
	require.Equal(t, s1, got)
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteSilence(s2.ID) })
	update(t, s, func(tx notifier.Tx) error { return tx.DeleteSilence(id(50)) })
	all = view(t, s, func(tx notifier.Tx) ([]notifier.Silence, error) { return tx.Silences() })
	require.Equal(t, []notifier.Silence{s1}, all)
}

func testKV(t *testing.T, s notifier.Store) {
	kv, other := s.KV("rollback"), s.KV("auth")
	_, ok, err := kv.Get("deploy/a")
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, kv.Put("deploy/a", []byte("1")))
	require.NoError(t, kv.Put("deploy/b", []byte("2")))
	require.NoError(t, kv.Put("cooldown/x", []byte{}))
	require.NoError(t, other.Put("deploy/a", []byte("auth's")))
	v, ok, err := kv.Get("deploy/a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte("1"), v)
	v, ok, err = kv.Get("cooldown/x")
	require.NoError(t, err)
	require.True(t, ok, "an empty value is a value")
	require.Empty(t, v)
	require.NoError(t, kv.Put("deploy/a", []byte("3")))
	list, err := kv.List("deploy/")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"deploy/a": []byte("3"), "deploy/b": []byte("2")}, list)
	list, err = kv.List("")
	require.NoError(t, err)
	require.Len(t, list, 3)
	// Prefixes are literal: no pattern characters.
	require.NoError(t, kv.Put("a%b", []byte("p")))
	list, err = kv.List("a%")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"a%b": []byte("p")}, list)
	list, err = kv.List("_")
	require.NoError(t, err)
	require.Empty(t, list)
	require.NoError(t, kv.Delete("deploy/a"))
	require.NoError(t, kv.Delete("never"))
	_, ok, err = kv.Get("deploy/a")
	require.NoError(t, err)
	require.False(t, ok)
	v, ok, err = other.Get("deploy/a")
	require.NoError(t, err)
	require.True(t, ok, "namespaces are apart")
	require.Equal(t, []byte("auth's"), v)
	list, err = s.KV("nothing").List("")
	require.NoError(t, err)
	require.Empty(t, list)

	// Both stores write many keys at once (a post of alerts' records).
	w, ok := kv.(interface {
		Write(put map[string][]byte, del []string) error
	})
	require.True(t, ok, "the KV writes many keys in one transaction")
	require.NoError(t, w.Write(map[string][]byte{"w/1": []byte("a"), "w/2": nil}, []string{"deploy/b", "never"}))
	list, err = kv.List("")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"cooldown/x": {}, "a%b": []byte("p"), "w/1": []byte("a"), "w/2": {}}, list)
}

func testUpdateAtomic(t *testing.T, s notifier.Store) {
	boom := errors.New("boom")
	inc := incident(1, "fp", notifier.StateTriggered)
	d := delivery(2)
	err := s.Update(func(tx notifier.Tx) error {
		if err := tx.PutIncident(&inc); err != nil {
			return err
		}
		if err := tx.PutDelivery(&d); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	all := view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.Incidents("") })
	require.Empty(t, all, "nothing of a failed Update is written")
	_, ok := view3(t, s, d.ID)
	require.False(t, ok)
	// A transaction sees its own writes.
	update(t, s, func(tx notifier.Tx) error {
		if err := tx.PutIncident(&inc); err != nil {
			return err
		}
		got, found, err := tx.LatestIncident("fp")
		if err != nil {
			return err
		}
		require.True(t, found)
		require.Equal(t, inc.ID, got.ID)
		return nil
	})
}

// testConcurrentUpdates: read-modify-write transactions from many
// goroutines lose no write; Update reruns fn when it must.
func testConcurrentUpdates(t *testing.T, s notifier.Store) {
	inc := incident(1, "fp", notifier.StateTriggered)
	update(t, s, func(tx notifier.Tx) error { return tx.PutIncident(&inc) })
	const writers, each = 8, 5
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				require.NoError(t, s.Update(func(tx notifier.Tx) error {
					cur, err := tx.Incident(inc.ID)
					if err != nil {
						return err
					}
					cur.Repeats++
					return tx.PutIncident(&cur)
				}))
			}
		})
	}
	wg.Wait()
	got := view(t, s, func(tx notifier.Tx) (notifier.Incident, error) { return tx.Incident(inc.ID) })
	require.Equal(t, writers*each, got.Repeats)
}

// testConcurrentOpen: writers that each open an incident for an alert
// unless one is open (as two gateways ingesting the same alert do) end
// with one incident, whatever the interleaving.
func testConcurrentOpen(t *testing.T, s notifier.Store) {
	const writers = 8
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		opened atomic.Int64
	)
	for range writers {
		wg.Go(func() {
			var did bool
			require.NoError(t, s.Update(func(tx notifier.Tx) error {
				did = false
				_, found, err := tx.LatestIncident("fp")
				if err != nil || found {
					return err
				}
				inc := incident(int(next.Add(1)), "fp", notifier.StateTriggered)
				did = true
				return tx.PutIncident(&inc)
			}))
			if did {
				opened.Add(1)
			}
		})
	}
	wg.Wait()
	all := view(t, s, func(tx notifier.Tx) ([]notifier.Incident, error) { return tx.Incidents("") })
	require.Len(t, all, 1)
	require.Equal(t, int64(1), opened.Load(), "one writer's transaction committed an incident")
}

// testKVAtomic: a counter that writers on many connections (as two
// gateways do) increment loses no increment, and of writers that claim
// the same key at once, PutIfAbsent or CompareAndSwap, exactly one wins.
func testKVAtomic(t *testing.T, s notifier.Store) {
	kv, ok := s.KV("backup").(notifier.AtomicKV)
	require.True(t, ok, "the store's KV has atomic read-modify-writes")

	n, err := kv.Incr("failures", 2)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "an absent key counts from 0")
	require.NoError(t, kv.Put("legacy", []byte("40")))
	n, err = kv.Incr("legacy", 2)
	require.NoError(t, err)
	require.Equal(t, int64(42), n, "a value Put wrote is counted on")
	v, _, err := kv.Get("legacy")
	require.NoError(t, err)
	require.Equal(t, "42", string(v), "Get reads a counter as a decimal")
	require.NoError(t, kv.Put("text", []byte("forty")))
	_, err = kv.Incr("text", 1)
	require.Error(t, err, "a value that is not an integer is not counted on")
	v, _, err = kv.Get("text")
	require.NoError(t, err)
	require.Equal(t, "forty", string(v), "and is left as it was")
	require.NoError(t, kv.Put("top", []byte(strconv.FormatInt(math.MaxInt64, 10))))
	_, err = kv.Incr("top", 1)
	require.Error(t, err, "a sum beyond int64 is an error, not a wrap")
	v, _, err = kv.Get("top")
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(math.MaxInt64, 10), string(v), "and leaves the value")

	won, err := kv.PutIfAbsent("claim", []byte("a"))
	require.NoError(t, err)
	require.True(t, won)
	won, err = kv.PutIfAbsent("claim", []byte("b"))
	require.NoError(t, err)
	require.False(t, won)
	won, err = kv.CompareAndSwap("claim", []byte("b"), []byte("c"))
	require.NoError(t, err)
	require.False(t, won, "the value is not the old one given")
	won, err = kv.CompareAndSwap("never", []byte{}, []byte("c"))
	require.NoError(t, err)
	require.False(t, won, "an absent key holds no value")
	_, found, err := kv.Get("never")
	require.NoError(t, err)
	require.False(t, found)
	won, err = kv.CompareAndSwap("claim", []byte("a"), []byte("d"))
	require.NoError(t, err)
	require.True(t, won)
	v, _, err = kv.Get("claim")
	require.NoError(t, err)
	require.Equal(t, "d", string(v))

	const writers, each = 8, 10
	var (
		wg          sync.WaitGroup
		puts, swaps atomic.Int64
	)
	for w := range writers {
		wg.Go(func() {
			for range each {
				_, err := kv.Incr("race/count", 1)
				require.NoError(t, err)
			}
			won, err := kv.PutIfAbsent("race/claim", []byte(strconv.Itoa(w)))
			require.NoError(t, err)
			if won {
				puts.Add(1)
			}
			won, err = kv.CompareAndSwap("claim", []byte("d"), []byte(strconv.Itoa(w)))
			require.NoError(t, err)
			if won {
				swaps.Add(1)
			}
		})
	}
	wg.Wait()
	n, err = kv.Incr("race/count", 0)
	require.NoError(t, err)
	require.Equal(t, int64(writers*each), n)
	require.Equal(t, int64(1), puts.Load(), "one PutIfAbsent of a key wins")
	require.Equal(t, int64(1), swaps.Load(), "one CompareAndSwap from a value wins")
}
