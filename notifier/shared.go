package notifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// A store that several gateways share (one that implements Leaser) holds
// deliveries and deadlines that other gateways wrote: they are not in this
// process's queue nor its timers. shared keeps this gateway in step with
// it: every lease/3 it renews the lease on this gateway's claims, and
// queues the deliveries, arms the deadlines and decides the rollbacks that
// it does not know yet. A gateway claims a delivery before each attempt
// and a deadline or a rollback decision before acting on it, so one
// gateway acts on each; when a gateway dies, its claims end with its lease
// and the others' next look takes them over.
type shared struct {
	leaser Leaser
	owner  string
	lease  time.Duration

	mtx sync.Mutex
	// deadlines are the incidents' deadlines as last armed from the
	// store, so that an unchanged one is not armed again.
	deadlines map[string]time.Time
	// deciding are the rollback decisions running in this process.
	deciding map[string]bool
	// renewed is when the lease was last renewed; zero before.
	renewed time.Time
	lastErr error
	// peers are the owners of the live leases, sorted, as last read
	// (syncShared); nil when unknown. They split the posted alerts'
	// notify (ingest.go).
	peers []string
}

// newShared returns nil for a store of this process alone.
func newShared(m *Manager) *shared {
	l, ok := m.store.(Leaser)
	if !ok {
		return nil
	}
	owner := m.opts.Owner
	if owner == "" {
		owner = defaultOwner()
	}
	lease := m.opts.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	return &shared{leaser: l, owner: owner, lease: lease, deadlines: map[string]time.Time{}, deciding: map[string]bool{}}
}

// defaultOwner names this gateway in claims: host, pid and a random
// suffix, so that a restarted gateway is not taken for the one that died.
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "vigil"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// claimRetry is how long a lost claim waits before it is tried again: a
// third of the lease, so that a dead gateway's claims are taken over
// within 4/3 of the lease after its last renewal.
func (s *shared) claimRetry() time.Duration { return max(s.lease/3, 10*time.Millisecond) }

// claim claims (kind, id) for this gateway: always true for a store of
// this process alone.
func (m *Manager) claim(kind, id string) bool {
	s := m.shared
	if s == nil {
		return true
	}
	ok, err := s.leaser.Claim(kind, id, s.owner, s.lease)
	if err != nil {
		m.logger.Warn("cannot claim in the shared store; trying later", "kind", kind, "id", id, "err", err)
		return false
	}
	return ok
}

// releaseClaim gives up a claim after the work is written.
func (m *Manager) releaseClaim(kind, id string) {
	s := m.shared
	if s == nil {
		return
	}
	if err := s.leaser.Release(kind, id, s.owner); err != nil {
		// It ends with the lease anyway.
		m.logger.Debug("cannot release a claim", "kind", kind, "id", id, "err", err)
	}
}

// claimDeadline is the hook of deadline(): whether this gateway takes the
// escalation step of incident id now. When another gateway holds it, the
// step is looked at again after claimRetry (the other may die before it
// writes); the step rereads the incident, so a step done meanwhile is a
// stale timer then.
func (m *Manager) claimDeadline(id string) bool {
	if m.claim(ClaimDeadline, id) {
		return true
	}
	m.timerMtx.Lock()
	defer m.timerMtx.Unlock()
	if m.stopped {
		return false
	}
	if t, ok := m.timers[id]; ok {
		t.Stop()
	}
	m.timers[id] = m.clock.AfterFunc(m.shared.claimRetry(), func() { m.deadline(id) })
	return false
}

// releaseDeadline ends the claim of claimDeadline.
func (m *Manager) releaseDeadline(id string) { m.releaseClaim(ClaimDeadline, id) }

// claimRollback is the hook of decideRollback: whether this gateway
// decides incident id's rollback now. One that is not decided here stays
// pending in the store, and the poll loop tries again.
func (m *Manager) claimRollback(id string) bool {
	s := m.shared
	if s == nil {
		return true
	}
	s.mtx.Lock()
	busy := s.deciding[id]
	s.mtx.Unlock()
	if busy || !m.claim(ClaimRollback, id) {
		return false
	}
	s.mtx.Lock()
	s.deciding[id] = true
	s.mtx.Unlock()
	return true
}

// releaseRollback ends the claim of claimRollback.
func (m *Manager) releaseRollback(id string) {
	s := m.shared
	if s == nil {
		return
	}
	s.mtx.Lock()
	delete(s.deciding, id)
	s.mtx.Unlock()
	m.releaseClaim(ClaimRollback, id)
}

// claimAttempt is the hook of the delivery workers: whether this gateway
// makes the attempt of it now. It claims the delivery, then rereads it:
// another gateway may have sent it (it is gone: done here too) or made an
// attempt and scheduled the next (it waits for that). A delivery another
// live gateway holds is looked at again after claimRetry.
func (m *Manager) claimAttempt(it *item) bool {
	s := m.shared
	if s == nil {
		return true
	}
	now := m.clock.Now()
	if !m.claim(ClaimDelivery, it.d.ID) {
		m.queue.retry(it, now.Add(s.claimRetry()))
		return false
	}
	var (
		d  Delivery
		ok bool
	)
	err := m.store.View(func(tx Tx) error {
		var err error
		d, ok, err = tx.Delivery(it.d.ID)
		return err
	})
	switch {
	case err != nil:
		m.logger.Warn("cannot reread a claimed delivery; trying later", "delivery", it.d.ID, "err", err)
		m.queue.retry(it, now.Add(s.claimRetry()))
		return false
	case !ok:
		// Sent (or given up) by another gateway.
		m.releaseClaim(ClaimDelivery, it.d.ID)
		m.queue.done(it)
		m.metrics.pending.Set(float64(m.queue.len()))
		return false
	}
	it.d.Attempts, it.d.NextAttempt, it.d.LastError = d.Attempts, d.NextAttempt, d.LastError
	if d.NextAttempt.After(now) {
		m.queue.retry(it, d.NextAttempt)
		return false
	}
	return true
}

// releaseAttempt ends the claim of a delivery that is done.
func (m *Manager) releaseAttempt(id string) { m.releaseClaim(ClaimDelivery, id) }

// runShared renews the lease and picks up the other gateways' work every
// lease/3 until ctx is done.
func (m *Manager) runShared(ctx context.Context) {
	s := m.shared
	if s == nil {
		return
	}
	for {
		m.syncShared(ctx)
		wake := make(chan struct{})
		t := m.clock.AfterFunc(s.claimRetry(), func() { close(wake) })
		select {
		case <-wake:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// syncShared is one round of runShared.
func (m *Manager) syncShared(ctx context.Context) {
	s := m.shared
	if _, err := s.leaser.Renew(s.owner, s.lease); err != nil {
		m.logger.Warn("cannot renew the lease in the shared store", "err", err)
		s.mtx.Lock()
		s.lastErr = err
		s.mtx.Unlock()
		return
	}
	s.mtx.Lock()
	s.renewed, s.lastErr = m.clock.Now(), nil
	s.mtx.Unlock()
	m.refreshPeers()

	var (
		deliveries []Delivery
		deadlines  map[string]time.Time
		rollbacks  []string
	)
	known := m.queue.ids()
	err := m.store.View(func(tx Tx) error {
		var err error
		if deliveries, err = unknownDeliveries(tx, known); err != nil {
			return err
		}
		if deadlines, err = openDeadlines(tx); err != nil {
			return err
		}
		rollbacks, err = tx.RollbackPending()
		return err
	})
	if err != nil {
		m.logger.Warn("cannot read the shared store", "err", err)
		return
	}
	if len(deliveries) > 0 {
		m.queue.restore(deliveries)
		m.metrics.pending.Set(float64(m.queue.len()))
		m.logger.Debug("queued deliveries from the shared store", "deliveries", len(deliveries))
	}
	s.mtx.Lock()
	var arm []string
	for id, at := range deadlines {
		if prev, ok := s.deadlines[id]; !ok || !prev.Equal(at) {
			arm = append(arm, id)
		}
	}
	s.deadlines = deadlines
	s.mtx.Unlock()
	for _, id := range arm {
		m.arm(id, deadlines[id])
	}
	for _, id := range rollbacks {
		if ctx.Err() != nil {
			return
		}
		_ = m.decideRollback(ctx, id)
	}
}

// refreshPeers rereads the live peers that split the posted alerts'
// notify. When the list changes, the notify loop looks again at the alerts
// it holds back: a peer that left leaves its share to the others at once.
// A list that cannot be read is unknown: every alert is notified at once,
// as by a gateway alone.
func (m *Manager) refreshPeers() {
	s := m.shared
	var owners []string
	peers, err := s.leaser.Peers()
	if err != nil {
		m.logger.Warn("cannot list the peers in the shared store; notifying every posted alert at once", "err", err)
	}
	for _, p := range peers {
		owners = append(owners, p.Owner)
	}
	slices.Sort(owners)
	owners = slices.Compact(owners)
	s.mtx.Lock()
	same := slices.Equal(s.peers, owners)
	s.peers = owners
	s.mtx.Unlock()
	if !same {
		m.ingest.init()
		signal(m.ingest.kick)
	}
}

// livePeers returns the owners of the live leases, sorted, and this
// gateway's owner; nil peers for a store of this process alone or while
// they are unknown.
func (m *Manager) livePeers() (peers []string, self string) {
	s := m.shared
	if s == nil {
		return nil, ""
	}
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return s.peers, s.owner
}

// deadlineLister is a Tx that lists the escalation deadlines of the open
// incidents without reading the incidents whole: the poll of a shared store
// runs every lease/3, and a gateway may hold thousands of open incidents.
type deadlineLister interface {
	OpenDeadlines() (map[string]time.Time, error)
}

// openDeadlines returns the escalation deadlines of the open incidents,
// without reading the incidents whole when tx can.
func openDeadlines(tx Tx) (map[string]time.Time, error) {
	if l, ok := tx.(deadlineLister); ok {
		return l.OpenDeadlines()
	}
	out := map[string]time.Time{}
	for _, st := range []State{StateTriggered, StateAcknowledged} {
		open, err := tx.Incidents(st)
		if err != nil {
			return nil, err
		}
		for _, inc := range open {
			if !inc.NextDeadline.IsZero() {
				out[inc.ID] = inc.NextDeadline
			}
		}
	}
	return out, nil
}

// deliveryIDLister is a Tx that lists the queued deliveries' IDs alone.
type deliveryIDLister interface {
	DeliveryIDs() ([]string, error)
}

// unknownDeliveries returns the queued deliveries not in known, reading
// only those whole when tx can list IDs.
func unknownDeliveries(tx Tx, known map[string]bool) ([]Delivery, error) {
	l, ok := tx.(deliveryIDLister)
	if !ok {
		all, err := tx.Deliveries()
		return slices.DeleteFunc(all, func(d Delivery) bool { return known[d.ID] }), err
	}
	ids, err := l.DeliveryIDs()
	if err != nil {
		return nil, err
	}
	var out []Delivery
	for _, id := range ids {
		if known[id] {
			continue
		}
		d, found, err := tx.Delivery(id)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, d)
		}
	}
	return out, nil
}

// StoreStatus is which store the notifier uses and, for a shared one, the
// gateways holding leases in it.
type StoreStatus struct {
	// Kind is "bbolt" or "postgres".
	Kind string `json:"kind"`
	// Location is the file, or the server and schema (no secrets).
	Location string `json:"location"`
	Shared   bool   `json:"shared"`
	// Owner names this gateway in claims; Lease is their length.
	Owner string        `json:"owner,omitempty"`
	Lease time.Duration `json:"-"`
	// LeaseSeconds is Lease, for JSON.
	LeaseSeconds float64 `json:"leaseSeconds,omitempty"`
	// Renewed is this gateway's last lease renewal.
	Renewed time.Time `json:"renewed,omitzero"`
	Peers   []Peer    `json:"peers,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// StoreStatus describes the store for /ready and the page.
func (m *Manager) StoreStatus() StoreStatus {
	s := m.shared
	if s == nil {
		st := StoreStatus{Kind: "bbolt"}
		if b, ok := m.store.(*BoltStore); ok {
			st.Location = b.db.Path()
		}
		return st
	}
	st := StoreStatus{Kind: "postgres", Location: s.leaser.Describe(), Shared: true, Owner: s.owner, Lease: s.lease,
		LeaseSeconds: s.lease.Seconds()}
	s.mtx.Lock()
	st.Renewed = s.renewed
	if s.lastErr != nil {
		st.Error = s.lastErr.Error()
	}
	s.mtx.Unlock()
	peers, err := s.leaser.Peers()
	if err != nil {
		st.Error = err.Error()
	}
	for i := range peers {
		peers[i].Self = peers[i].Owner == s.owner
	}
	st.Peers = peers
	return st
}
