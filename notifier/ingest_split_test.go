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

	"github.com/vigil-sh/vigil/config"
)

// TestOwnsShareSplitsCompletely: among any set of live peers every share
// has exactly one owner, the same on every call; a gateway alone, or one
// the peers do not list, owns them all.
func TestOwnsShareSplitsCompletely(t *testing.T) {
	for _, peers := range [][]string{
		{"gw-a", "gw-b"},
		{"gw-a", "gw-b", "gw-c"},
		{"host-1-42-aa", "host-2-7-bb", "host-3-9-cc", "host-4-1-dd"},
	} {
		counts := map[string]int{}
		for n := range 4000 {
			share := shareOf(nil, labels.FromStrings("alertname", fmt.Sprint("A", n)))
			var owners []string
			for _, p := range peers {
				if ownsShare(peers, p, share) {
					owners = append(owners, p)
				}
				require.Equal(t, ownsShare(peers, p, share), ownsShare(slices.Clone(peers), p, share), "stable")
			}
			require.Len(t, owners, 1, "share %d among %v", share, peers)
			counts[owners[0]]++
		}
		for _, p := range peers {
			// An even split: each holds at least half its fair part.
			require.Greater(t, counts[p], 4000/len(peers)/2, "%s of %v", p, peers)
		}
	}
	share := shareOf(nil, labels.FromStrings("alertname", "X"))
	require.True(t, ownsShare(nil, "gw-a", share))
	require.True(t, ownsShare([]string{"gw-a"}, "gw-a", share))
	require.True(t, ownsShare([]string{"gw-b", "gw-c"}, "gw-a", share), "not listed: its lease lapsed")
}

// TestShareIsTheGroup: the members of one group share one owner.
func TestShareIsTheGroup(t *testing.T) {
	cfg := &runtimeConfig{esc: config.EscalationConfig{GroupBy: []string{"alertname", "app"}}}
	a := labels.FromStrings("alertname", "Down", "app", "app", "instance", "pod-1")
	b := labels.FromStrings("alertname", "Down", "app", "app", "instance", "pod-2")
	c := labels.FromStrings("alertname", "Down", "app", "other", "instance", "pod-1")
	require.Equal(t, shareOf(cfg, a), shareOf(cfg, b))
	require.NotEqual(t, shareOf(cfg, a), shareOf(cfg, c))
}

// peersStore is a BoltStore shared, as far as the Manager can tell, with
// the peers listed: claims always succeed, and the peers are whatever the
// test sets.
type peersStore struct {
	*BoltStore
	mtx   sync.Mutex
	peers []string
}

func (s *peersStore) setPeers(p ...string) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	s.peers = p
}

func (s *peersStore) Claim(kind, id, owner string, ttl time.Duration) (bool, error) { return true, nil }
func (s *peersStore) Release(kind, id, owner string) error                          { return nil }
func (s *peersStore) Renew(owner string, ttl time.Duration) (int, error)            { return 0, nil }
func (s *peersStore) Describe() string                                              { return "peers" }

func (s *peersStore) Peers() ([]Peer, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	out := make([]Peer, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, Peer{Owner: p})
	}
	return out, nil
}

// startPeer starts the gateway gw-a on a peersStore listing peers.
func startPeer(t *testing.T, rec *recorder, peers []string, tweak ...func(*Options)) (*harness, *peersStore) {
	t.Helper()
	b, err := OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	store := &peersStore{BoltStore: b}
	store.setPeers(peers...)
	h := start(t, "", ingestConfig(time.Hour), rec, nil, append([]func(*Options){func(o *Options) {
		o.Store, o.Owner, o.Lease = store, "gw-a", 15*time.Second
	}}, tweak...)...)
	return h, store
}

// othersAlert returns an alert, named prefix and a number, of another
// peer's share than gw-a's.
func othersAlert(t *testing.T, h *harness, prefix string, peers []string) PostedAlert {
	t.Helper()
	for i := range 100 {
		a := posted(fmt.Sprint(prefix, i), time.Now(), time.Time{})
		if !ownsShare(peers, "gw-a", shareOf(h.m.config(), labels.FromMap(a.Labels))) {
			return a
		}
	}
	require.FailNow(t, "no alert of another peer's share")
	return PostedAlert{}
}

// splitAlerts posts n alerts of distinct groups to h and returns how many
// of them belong to owner's share among peers.
func splitAlerts(t *testing.T, h *harness, prefix string, n int, peers []string, owner string) (out []PostedAlert, owned int) {
	t.Helper()
	cfg := h.m.config()
	now := time.Now()
	for i := range n {
		a := posted(fmt.Sprint(prefix, i), now, time.Time{})
		out = append(out, a)
		if ownsShare(peers, owner, shareOf(cfg, labels.FromMap(a.Labels))) {
			owned++
		}
	}
	require.NoError(t, h.m.IngestAlerts(context.Background(), out))
	return out, owned
}

// TestIngestSplitHoldsBackOthersShare: of two live gateways, each notifies
// its share of the posted alerts at once and the other's only after
// ingestPeerDelay. The other gateway here never notifies (it died after
// taking the post, or before its lease ended): its share still gets its
// incidents, after the delay, each paged once. Once its lease has ended
// and it is no longer listed, every new post is notified at once.
func TestIngestSplitHoldsBackOthersShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peers := []string{"gw-a", "gw-b"}
		rec := &recorder{}
		h, store := startPeer(t, rec, peers)
		require.Equal(t, ingestPeerDelay, h.m.peerDelay())

		const n = 40
		_, owned := splitAlerts(t, h, "Split", n, peers, "gw-a")
		require.Positive(t, owned)
		require.Less(t, owned, n)
		synctest.Wait()
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, owned, "only this gateway's share at once")
		for _, inc := range all {
			require.True(t, ownsShare(peers, "gw-a", shareOf(h.m.config(), labels.FromMap(inc.Alert.Labels))), inc.Alert.Name)
		}
		require.Equal(t, n-owned, pendingCount(h.m))
		require.Equal(t, float64(n-owned), testutil.ToFloat64(h.m.metrics.ingestPending))

		time.Sleep(ingestPeerDelay - time.Second)
		synctest.Wait()
		all, err = h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, owned, "the other's share is held back for the delay")

		time.Sleep(time.Second)
		synctest.Wait()
		all, err = h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, n, "the other's share is recorded after the delay")
		require.Zero(t, pendingCount(h.m))
		require.Zero(t, testutil.ToFloat64(h.m.metrics.ingestPending))
		time.Sleep(time.Second)
		synctest.Wait()
		require.Len(t, rec.delivered(), n, "each incident paged once")

		// gw-b's lease ended: the next look at the peers lists gw-a
		// alone, which notifies everything at once.
		store.setPeers("gw-a")
		time.Sleep(h.m.shared.claimRetry())
		synctest.Wait()
		_, _ = splitAlerts(t, h, "Alone", n, []string{"gw-a"}, "gw-a")
		synctest.Wait()
		all, err = h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, 2*n)
		require.Zero(t, pendingCount(h.m))
	})
}

// TestIngestSplitPeerLeavingHandsOverItsShare: alerts held back for a
// peer are notified as soon as the peers are read without it, before
// their delay ends.
func TestIngestSplitPeerLeavingHandsOverItsShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peers := []string{"gw-a", "gw-b", "gw-c"}
		// A lease of 15 s: the peers are read every 5 s, the delay 5 s.
		h, store := startPeer(t, &recorder{}, peers)
		// Half-way to the next read of the peers.
		time.Sleep(h.m.shared.claimRetry() / 2)
		synctest.Wait()
		const n = 60
		_, owned := splitAlerts(t, h, "Leave", n, peers, "gw-a")
		synctest.Wait()
		require.Equal(t, n-owned, pendingCount(h.m))
		store.setPeers("gw-a")
		// The next read comes before the delay of these alerts ends.
		time.Sleep(h.m.shared.claimRetry()/2 + time.Millisecond)
		synctest.Wait()
		require.Zero(t, pendingCount(h.m), "the share of the peers that left is taken over at the read")
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, n)
	})
}

// TestIngestSingleStoreHoldsNothingBack: with a store of this process
// alone every posted alert is notified at once.
func TestIngestSingleStoreHoldsNothingBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), ingestConfig(time.Hour), &recorder{}, nil)
		require.Nil(t, h.m.shared)
		_, _ = splitAlerts(t, h, "One", 30, nil, "")
		synctest.Wait()
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, 30)
		require.Zero(t, pendingCount(h.m))
	})
}

// TestIngestSplitRepostsDoNotHoldBackForever: an alert of another peer's
// share posted again every second is notified ingestPeerDelay after its
// first post, not after its last.
func TestIngestSplitRepostsDoNotHoldBackForever(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peers := []string{"gw-a", "gw-b"}
		h, _ := startPeer(t, &recorder{}, peers)
		a := othersAlert(t, h, "Repost", peers)
		for range ingestPeerDelay/time.Second + 1 {
			require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{a}))
			synctest.Wait()
			time.Sleep(time.Second)
		}
		synctest.Wait()
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, 1, "notified while posted again")
	})
}

// TestTakePendingOwnShareFirst: a batch takes this gateway's share before
// the other's, however long that has waited; the other's fills what room
// is left.
func TestTakePendingOwnShareFirst(t *testing.T) {
	b, err := OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	store := &peersStore{BoltStore: b}
	m, err := New(&Options{Store: store, Owner: "gw-a", Lease: 15 * time.Second}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, m.ApplyConfig(ingestConfig(time.Hour)))
	peers := []string{"gw-a", "gw-b"}
	m.shared.peers = peers
	m.ingest.init()
	long := m.clock.Now().Add(-time.Hour)
	add := func(prefix string, own bool, n int) {
		for i := 0; n > 0; i++ {
			ls := labels.FromStrings("alertname", fmt.Sprint(prefix, i))
			p := &pendingAlert{alert: &rules.Alert{Labels: ls}, share: shareOf(m.config(), ls), since: long}
			if ownsShare(peers, "gw-a", p.share) == own {
				m.ingest.pending[fingerprint(ls)] = p
				n--
			}
		}
	}
	add("Own", true, ingestNotifyBatch+10)
	add("Other", false, 20)
	owned := func(batch []fpPending) (n int) {
		for _, b := range batch {
			if ownsShare(peers, "gw-a", b.p.share) {
				n++
			}
		}
		return n
	}
	first := m.takePending()
	require.Len(t, first, ingestNotifyBatch)
	require.Equal(t, ingestNotifyBatch, owned(first))
	second := m.takePending()
	require.Len(t, second, 30)
	require.Equal(t, 10, owned(second), "the rest of its own, then the other's")
	require.Empty(t, m.takePending())
}

// TestIngestSplitHeldResolveYieldsToNewerFiring: a resolve held back for
// the other gateway's share is not notified over the firing that the
// other gateway recorded after it (a sender that re-posts to either
// gateway; the other died before its notify): the record's firing is
// notified instead, the incident stays open, the record stays, and the
// sweeper resolves it at its endsAt.
func TestIngestSplitHeldResolveYieldsToNewerFiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peers := []string{"gw-a", "gw-b"}
		h, store := startPeer(t, &recorder{}, peers)
		name := othersAlert(t, h, "Held", peers).Labels["alertname"]
		ctx := context.Background()
		t0 := time.Now()
		require.NoError(t, h.m.IngestAlerts(ctx, []PostedAlert{posted(name, t0, t0.Add(time.Hour))}))
		require.NoError(t, h.m.FlushIngest(ctx))
		require.Equal(t, StateTriggered, h.incidentOf(name).State)

		time.Sleep(time.Minute)
		require.NoError(t, h.m.IngestAlerts(ctx, []PostedAlert{posted(name, t0, time.Now())}))
		synctest.Wait()
		require.Equal(t, 1, pendingCount(h.m), "the resolve is held back for gw-b")

		// gw-b takes a newer firing, records it and dies before its notify.
		time.Sleep(time.Second)
		t1 := time.Now()
		again := posted(name, t1, t1.Add(time.Hour))
		fp := fingerprint(labels.FromMap(again.Labels))
		raw, err := json.Marshal(IngestedAlert{PostedAlert: again, Fingerprint: fp, UpdatedAt: t1})
		require.NoError(t, err)
		require.NoError(t, store.KV(ingestNamespace).Put(fp, raw))

		time.Sleep(ingestPeerDelay)
		synctest.Wait()
		require.Zero(t, pendingCount(h.m))
		open, err := h.m.Incidents(StateTriggered)
		require.NoError(t, err)
		require.Len(t, open, 1, "the held resolve did not end the newer firing")
		rec, ok := record(t, store.KV(ingestNamespace), again)
		require.True(t, ok, "gw-b's record is kept")
		require.True(t, rec.StartsAt.Equal(t1))

		time.Sleep(time.Hour)
		synctest.Wait()
		open, err = h.m.Incidents(StateTriggered)
		require.NoError(t, err)
		require.Empty(t, open, "resolved at the newer firing's endsAt")
		_, ok = record(t, store.KV(ingestNamespace), again)
		require.False(t, ok, "its tombstone deleted")
	})
}

// timerClock is the real clock (synctest's in a bubble) that keeps count
// of the AfterFunc calls still pending: neither run nor stopped.
type timerClock struct {
	mtx     sync.Mutex
	pending int
}

func (c *timerClock) Now() time.Time { return time.Now() }

func (c *timerClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &countedTimer{c: c}
	c.mtx.Lock()
	c.pending++
	c.mtx.Unlock()
	t.t = time.AfterFunc(d, func() {
		if t.done() {
			f()
		}
	})
	return t
}

func (c *timerClock) left() int {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	return c.pending
}

type countedTimer struct {
	c    *timerClock
	t    *time.Timer
	once sync.Once
}

// done counts the timer out once, and reports whether this call did.
func (t *countedTimer) done() bool {
	first := false
	t.once.Do(func() {
		first = true
		t.c.mtx.Lock()
		t.c.pending--
		t.c.mtx.Unlock()
	})
	return first
}

func (t *countedTimer) Stop() bool {
	stopped := t.t.Stop()
	if stopped {
		t.done()
	}
	return stopped
}

// TestIngestSplitStopLeavesNoTimer: alerts held back for the other
// gateway when Run ends leave no timer behind (they are notified again at
// the next start, from their records).
func TestIngestSplitStopLeavesNoTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peers := []string{"gw-a", "gw-b"}
		clock := &timerClock{}
		h, _ := startPeer(t, &recorder{}, peers, func(o *Options) { o.Clock = clock })
		_, owned := splitAlerts(t, h, "Stop", 20, peers, "gw-a")
		synctest.Wait()
		require.Equal(t, 20-owned, pendingCount(h.m), "the other's share is held back")
		h.stop()
		require.Zero(t, clock.left(), "timers left after Run")
	})
}

// TestIngestSplitHeldFiringYieldsToOthersResolve: a firing held back for
// gw-b whose resolve only gw-b received is not notified late. When gw-b
// recorded the resolve and deleted the record, the held firing is dropped;
// when gw-b's ended record is still there, its resolve is notified instead.
// Notified as it was, the firing would open an incident that nothing
// resolves (the record that would resolve it is gone or ended).
func TestIngestSplitHeldFiringYieldsToOthersResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		// others is what gw-b leaves in the record meanwhile: nil for no
		// record.
		others func(a PostedAlert, now time.Time) *PostedAlert
	}{
		{"record deleted", func(PostedAlert, time.Time) *PostedAlert { return nil }},
		{"record ended", func(a PostedAlert, now time.Time) *PostedAlert {
			a.StartsAt, a.EndsAt = now.Add(-time.Minute), now // a sender restart: another startsAt
			return &a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				peers := []string{"gw-a", "gw-b"}
				h, store := startPeer(t, &recorder{}, peers)
				a := othersAlert(t, h, "HeldFiring", peers)
				ctx := context.Background()
				t0 := time.Now()
				a.StartsAt, a.EndsAt = t0, t0.Add(time.Hour)
				require.NoError(t, h.m.IngestAlerts(ctx, []PostedAlert{a}))
				synctest.Wait()
				require.Equal(t, 1, pendingCount(h.m), "the firing is held back for gw-b")

				time.Sleep(time.Second)
				kv := store.KV(ingestNamespace)
				fp := fingerprint(labels.FromMap(a.Labels))
				if o := tc.others(a, time.Now()); o == nil {
					require.NoError(t, kv.Delete(fp))
				} else {
					raw, err := json.Marshal(IngestedAlert{PostedAlert: *o, Fingerprint: fp, UpdatedAt: time.Now()})
					require.NoError(t, err)
					require.NoError(t, kv.Put(fp, raw))
				}

				time.Sleep(ingestPeerDelay)
				synctest.Wait()
				require.Zero(t, pendingCount(h.m))
				open, err := h.m.Incidents(StateTriggered)
				require.NoError(t, err)
				require.Empty(t, open, "the held firing opened an incident after gw-b's resolve")
				_, ok := record(t, kv, a)
				require.False(t, ok, "no record left")

				time.Sleep(2 * time.Hour)
				synctest.Wait()
				open, err = h.m.Incidents(StateTriggered)
				require.NoError(t, err)
				require.Empty(t, open)
			})
		})
	}
}
