package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// Alerts posted to the Alertmanager API v2 (POST /api/v2/alerts), as
// implemented here (as in Alertmanager, the post stores the alerts and
// their dispatch is asynchronous):
//
//   - Each valid alert is written to the store's "ingest" key-value space
//     under its fingerprint (labels, annotations, startsAt, endsAt), the
//     whole group-commit batch in one write, and the post is answered. A
//     resolved alert (endsAt not after now) is written too, as a tombstone.
//   - A notify loop in Run feeds the recorded alerts through the same path
//     as the rules' alerts with Source SourceAPI: a firing alert opens or
//     joins its incident, a resolved one resolves it. Pending alerts are
//     kept by fingerprint, the latest post winning. A batch the store
//     refuses stays pending and is retried with a backoff; a tombstone is
//     deleted once its resolve is recorded. At the start every record is
//     notified again (a crash may have come before its notify), which
//     changes nothing for one notified already.
//   - An alert without endsAt ends resolve_timeout after it was posted
//     (Alertmanager's resolve timeout). A sweeper in Run queues the resolve
//     of every alert whose endsAt passed without a new post, at its endsAt,
//     by the injected Clock; its record goes once the resolve is recorded.
//     The records are durable: after a restart what expired while vigil
//     was down is resolved. The restart reconcile leaves SourceAPI
//     incidents alone (fromRules): their endsAt ends them.
//   - An alert that was resolved and is posted again firing with the same
//     startsAt opens no new incident (the same firing, as for an incident
//     resolved by hand); a new startsAt opens one.
//   - Gateways that share the store (HA) both take every post and both
//     notify, but not at the same moment: the alerts are split between the
//     live peers (those holding a lease) by their group key, and each
//     gateway notifies its share at once and the others' ingestPeerDelay
//     later (and after its own share, when it is behind), by when their
//     owner has normally recorded them and the late notify changes
//     nothing, so writes nothing. Should the owner have
//     died, the late notify records them. Each keeps its own pending set;
//     a tombstone is deleted only while it holds the value this gateway
//     wrote or read.

// SourceAPI is Alert.Source of the alerts posted to the Alertmanager API.
const SourceAPI = "api"

// ingestNamespace is the key-value space of the posted alerts' records.
const ingestNamespace = "ingest"

// Bounds of one posted alert. Alertmanager has none by default; these keep
// one sender from filling the store or the messages.
const (
	MaxPostedLabels          = 64
	MaxPostedLabelNameBytes  = 256
	MaxPostedLabelValueBytes = 4096
	MaxPostedAnnotations     = 64
	MaxPostedAnnotationBytes = 16384
	MaxPostedURLBytes        = 4096
)

// ErrInvalidAlert wraps every validation error of a posted alert.
var ErrInvalidAlert = errors.New("invalid alert")

// PostedAlert is one alert of POST /api/v2/alerts, in Alertmanager's schema.
type PostedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// IngestedAlert is a posted alert as vigil keeps it.
type IngestedAlert struct {
	PostedAlert
	Fingerprint string    `json:"fingerprint"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// Timeout says that endsAt was not posted: it is resolve_timeout after
	// the last post.
	Timeout bool `json:"timeout,omitempty"`
	// SilencedBy and Receivers are filled by PostedAlerts, never stored.
	SilencedBy []string `json:"silencedBy,omitempty"`
	Receivers  []string `json:"receivers,omitempty"`
}

// ValidatePostedAlert checks a posted alert as Alertmanager does, after
// dropping its labels with empty values (an empty label is no label): at
// least one label and an alertname, valid UTF-8 label names and values,
// endsAt not before startsAt; and vigil's size bounds. Errors wrap
// ErrInvalidAlert.
func ValidatePostedAlert(a *PostedAlert) error {
	for k, v := range a.Labels {
		if v == "" {
			delete(a.Labels, k)
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidAlert, fmt.Sprintf(format, args...))
	}
	switch {
	case len(a.Labels) == 0:
		return bad("at least one label pair required")
	case a.Labels[labels.AlertName] == "":
		return bad("the label alertname is required")
	case len(a.Labels) > MaxPostedLabels:
		return bad("%d labels; at most %d", len(a.Labels), MaxPostedLabels)
	case len(a.Annotations) > MaxPostedAnnotations:
		return bad("%d annotations; at most %d", len(a.Annotations), MaxPostedAnnotations)
	case len(a.GeneratorURL) > MaxPostedURLBytes:
		return bad("generatorURL is %d bytes; at most %d", len(a.GeneratorURL), MaxPostedURLBytes)
	case !a.StartsAt.IsZero() && !a.EndsAt.IsZero() && a.EndsAt.Before(a.StartsAt):
		return bad("start time must be before end time: endsAt %s is before startsAt %s",
			a.EndsAt.UTC().Format(time.RFC3339), a.StartsAt.UTC().Format(time.RFC3339))
	}
	check := func(what string, m map[string]string, maxValue int) error {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			switch {
			case len(k) > MaxPostedLabelNameBytes:
				return bad("invalid %s: name %.40q… is %d bytes; at most %d", what, k, len(k), MaxPostedLabelNameBytes)
			case !model.UTF8Validation.IsValidLabelName(k):
				return bad("invalid %s: %q is not a valid label name", what, k)
			case !utf8.ValidString(v):
				return bad("invalid %s: the value of %q is not valid UTF-8", what, k)
			case len(v) > maxValue:
				return bad("invalid %s: the value of %q is %d bytes; at most %d", what, k, len(v), maxValue)
			}
		}
		return nil
	}
	if err := check("label set", a.Labels, MaxPostedLabelValueBytes); err != nil {
		return err
	}
	return check("annotations", a.Annotations, MaxPostedAnnotationBytes)
}

// ingestState is what the Manager keeps of the posted alerts.
type ingestState struct {
	// mtx takes posts and sweeps one at a time.
	mtx sync.Mutex
	// waiting are the posts not written yet (IngestAlerts), under
	// waitMtx.
	waitMtx sync.Mutex
	waiting []*ingestRequest
	// ends is the endsAt of each firing record by fingerprint, under mtx;
	// nil until read from the store. A record whose resolve is pending
	// is not in it.
	ends map[string]time.Time
	// armed is when the sweeper wakes next; zero when it waits for a post.
	armed time.Time

	once sync.Once
	// wake wakes the sweeper, kick the notify loop.
	wake, kick chan struct{}

	// pendMtx guards pending, lastErr and changed. Lock order: mtx, then
	// pendMtx.
	pendMtx sync.Mutex
	// pending are the alerts recorded but not notified yet, by
	// fingerprint: the latest post of an alert replaces an earlier one, so
	// there are at most as many as distinct alerts.
	pending map[string]*pendingAlert
	// inflight are the fingerprints of the alerts a notify worker has
	// taken: another worker leaves them (and newer posts of them) alone,
	// so that the posts of one alert are notified in order.
	inflight map[string]bool
	// lastErr is the error of the last notify round, nil after one that
	// succeeded.
	lastErr error
	// dueAt is when the timer that wakes the notify loop for the alerts
	// held back (another peer's share) fires; zero when none is armed.
	dueAt    time.Time
	dueTimer Timer
	// flushing counts the FlushIngest calls waiting: while one does, no
	// alert is held back.
	flushing int
	// changed is closed and replaced after each notify round.
	changed chan struct{}
}

// pendingAlert is a recorded alert waiting to be notified.
type pendingAlert struct {
	alert *rules.Alert
	// tombstone is the record of a resolved alert, deleted once the
	// resolve is recorded (if the record still holds it); nil when firing.
	tombstone []byte
	// share is the hash of the alert's group key, which picks the peer
	// that notifies it at once (ownsShare).
	share uint64
	// since is when the alert became pending; a newer post of it keeps
	// the first one's, so that steady posts do not hold it back forever.
	since time.Time
}

// ingestPeerDelay is how long a gateway that shares the store holds back
// the posted alerts of another peer's share before it notifies them too:
// long enough for the owner to have recorded them (its late notify then
// changes nothing and writes nothing), well below the lease (a third of
// it at most), so that the share of a peer that died is recorded within
// the delay, not at its lease's end.
const ingestPeerDelay = 5 * time.Second

// peerDelay is ingestPeerDelay, or a third of a shorter lease.
func (m *Manager) peerDelay() time.Duration {
	if m.shared == nil {
		return 0
	}
	return min(ingestPeerDelay, m.shared.claimRetry())
}

// shareOf is the share of an alert: the hash of its group key, so that
// the members of one incident go to one gateway.
func shareOf(cfg *runtimeConfig, ls labels.Labels) uint64 {
	key := fingerprint(ls)
	if cfg != nil {
		key = cfg.groupKey(ls)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

// ownsShare reports whether the gateway self notifies the alerts of share
// at once among the live peers (sorted): each share has exactly one owner
// among them. A gateway alone, or one whose peers are unknown or do not
// list it (its lease lapsed; the others count without it), owns every
// share, as the others then notify theirs at once too.
func ownsShare(peers []string, self string, share uint64) bool {
	if len(peers) < 2 || !slices.Contains(peers, self) {
		return true
	}
	return peers[share%uint64(len(peers))] == self
}

func (s *ingestState) init() {
	s.once.Do(func() {
		s.wake = make(chan struct{}, 1)
		s.kick = make(chan struct{}, 1)
		s.changed = make(chan struct{})
		s.pending = map[string]*pendingAlert{}
		s.inflight = map[string]bool{}
	})
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// alert is the record as an alert of the rules' notify path: firing while
// its endsAt is after now, resolved at its endsAt after.
func (rec *IngestedAlert) alert(now time.Time) *rules.Alert {
	a := &rules.Alert{
		State:       rules.StateFiring,
		Labels:      labels.FromMap(rec.Labels),
		Annotations: labels.FromMap(rec.Annotations),
		ActiveAt:    rec.StartsAt,
		FiredAt:     rec.StartsAt,
		ValidUntil:  rec.EndsAt,
	}
	if !rec.EndsAt.After(now) {
		a.State, a.ResolvedAt = rules.StateInactive, rec.EndsAt
	}
	return a
}

// pending is the record raw of rec as an alert to notify: a tombstone
// once its endsAt is not after now.
func (rec *IngestedAlert) pending(raw []byte, now time.Time) *pendingAlert {
	p := &pendingAlert{alert: rec.alert(now)}
	if p.alert.State != rules.StateFiring {
		p.tombstone = raw
	}
	return p
}

// addPending queues alerts to be notified, replacing the pending ones of
// the same fingerprints, and kicks the notify loop.
func (m *Manager) addPending(add map[string]*pendingAlert) {
	if len(add) == 0 {
		return
	}
	m.ingest.init()
	cfg := m.config()
	now := m.clock.Now()
	m.ingest.pendMtx.Lock()
	for fp, p := range add {
		p.share, p.since = shareOf(cfg, p.alert.Labels), now
		if old, ok := m.ingest.pending[fp]; ok && old.since.Before(now) {
			p.since = old.since
		}
		m.ingest.pending[fp] = p
	}
	m.metrics.ingestPending.Set(float64(len(m.ingest.pending)))
	m.ingest.pendMtx.Unlock()
	signal(m.ingest.kick)
}

// loadIngest reads the records from the store once and queues them all to
// be notified again: a record may have been written by a process that
// stopped before notifying it, and notifying an alert twice changes
// nothing. Call it with ingest.mtx held.
func (m *Manager) loadIngest() error {
	if m.ingest.ends != nil {
		return nil
	}
	all, err := m.store.KV(ingestNamespace).List("")
	if err != nil {
		return err
	}
	now := m.clock.Now()
	ends := make(map[string]time.Time, len(all))
	pend := make(map[string]*pendingAlert, len(all))
	for fp, raw := range all {
		var rec IngestedAlert
		if err := json.Unmarshal(raw, &rec); err != nil {
			m.logger.Warn("unreadable record of a posted alert; it will not be resolved by its endsAt", "fingerprint", fp, "err", err)
			continue
		}
		p := rec.pending(raw, now)
		if p.tombstone == nil {
			ends[fp] = rec.EndsAt
		}
		pend[fp] = p
	}
	m.ingest.ends = ends
	m.addPending(pend)
	return nil
}

// IngestAlerts takes alerts posted to the Alertmanager API, each validated
// by ValidatePostedAlert: it records them and queues them to open or
// resolve their incidents, which the notify loop of Run does soon after.
// A missing startsAt is now (or endsAt, when that is set), a missing endsAt
// now + ingest.resolve_timeout, as in Alertmanager. An error means the
// records could not be written and no alert was taken; nil means every
// alert is durable and will be notified, retried until the store takes
// it.
//
// Posts are written together (group commit): a post that arrives while
// another is being written waits, and the next writer takes every waiting
// post in one batch, so many senders cost a few transactions, not one each.
func (m *Manager) IngestAlerts(ctx context.Context, alerts []PostedAlert) error {
	req := &ingestRequest{alerts: alerts}
	m.ingest.waitMtx.Lock()
	m.ingest.waiting = append(m.ingest.waiting, req)
	m.ingest.waitMtx.Unlock()

	m.ingest.mtx.Lock()
	defer m.ingest.mtx.Unlock()
	if req.done {
		return req.err // written in an earlier writer's batch
	}
	m.ingest.waitMtx.Lock()
	batch := m.ingest.waiting
	m.ingest.waiting = nil
	m.ingest.waitMtx.Unlock()
	all := alerts
	if len(batch) > 1 {
		all = make([]PostedAlert, 0, len(batch)*len(alerts))
		for _, r := range batch {
			all = append(all, r.alerts...)
		}
	}
	err := m.ingestLocked(all)
	for _, r := range batch {
		r.done, r.err = true, err
	}
	return err
}

// ingestRequest is one post waiting to be written.
type ingestRequest struct {
	alerts []PostedAlert
	// done and err are set by the writer that took the request, under
	// ingest.mtx.
	done bool
	err  error
}

// ingestLocked records alerts and queues them; ingest.mtx is held.
func (m *Manager) ingestLocked(alerts []PostedAlert) error {
	cfg := m.config()
	if cfg == nil {
		return errors.New("notifier: no config applied")
	}
	timeout := cfg.resolveTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if err := m.loadIngest(); err != nil {
		return fmt.Errorf("notifier: read posted alerts: %w", err)
	}
	now := m.clock.Now()
	// The last post of a fingerprint in the batch decides its record and
	// what is notified.
	put := make(map[string][]byte, len(alerts))
	pend := make(map[string]*pendingAlert, len(alerts))
	for _, p := range alerts {
		rec := IngestedAlert{PostedAlert: p, UpdatedAt: now}
		if rec.StartsAt.IsZero() {
			rec.StartsAt = now
			if !rec.EndsAt.IsZero() {
				rec.StartsAt = rec.EndsAt
			}
		}
		if rec.EndsAt.IsZero() {
			rec.EndsAt, rec.Timeout = now.Add(timeout), true
		}
		rec.Fingerprint = fingerprint(labels.FromMap(rec.Labels))
		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("notifier: record posted alerts: %w", err)
		}
		// A resolved alert keeps its record (a tombstone) until its
		// resolve is recorded: a crash in between loses nothing.
		put[rec.Fingerprint] = raw
		pend[rec.Fingerprint] = rec.pending(raw, now)
	}
	if err := writeKV(m.store.KV(ingestNamespace), put, nil); err != nil {
		return fmt.Errorf("notifier: record posted alerts: %w", err)
	}
	earliest := time.Time{}
	for fp, pa := range pend {
		if pa.tombstone != nil {
			delete(m.ingest.ends, fp)
			continue
		}
		end := pa.alert.ValidUntil
		m.ingest.ends[fp] = end
		if earliest.IsZero() || end.Before(earliest) {
			earliest = end
		}
	}
	m.addPending(pend)
	if !earliest.IsZero() && (m.ingest.armed.IsZero() || earliest.Before(m.ingest.armed)) {
		signal(m.ingest.wake)
	}
	return nil
}

// kvWriter is a KV that writes many keys in one transaction (the bbolt
// store's).
type kvWriter interface {
	Write(put map[string][]byte, del []string) error
}

// kvUnchangedDeleter is a KV that deletes keys only where they still hold
// the given values, in one statement (the PostgreSQL store's): another
// gateway may have written a key since it was read.
type kvUnchangedDeleter interface {
	// DeleteUnchanged returns the keys it kept: they hold another value,
	// or none.
	DeleteUnchanged(want map[string][]byte) (kept []string, err error)
}

// writeKV puts and deletes keys, in one transaction when kv can.
func writeKV(kv KV, put map[string][]byte, del []string) error {
	if w, ok := kv.(kvWriter); ok {
		return w.Write(put, del)
	}
	for k, v := range put {
		if err := kv.Put(k, v); err != nil {
			return err
		}
	}
	for _, k := range del {
		if err := kv.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteTombstones deletes the records of resolved alerts whose resolve is
// recorded, each only if it still holds the tombstone: a newer post (here
// or on another gateway) keeps its record. A record kept is handed to
// the sweeper, which resolves it if it has
// ended: another gateway may have written it and died.
func (m *Manager) deleteTombstones(want map[string][]byte) error {
	if len(want) == 0 {
		return nil
	}
	kv := m.store.KV(ingestNamespace)
	var kept []string
	if d, ok := kv.(kvUnchangedDeleter); ok {
		var err error
		if kept, err = d.DeleteUnchanged(want); err != nil {
			return err
		}
		m.ingest.mtx.Lock()
	} else {
		// This process alone writes the store: under ingest.mtx no
		// post changes a record between the read and the delete.
		m.ingest.mtx.Lock()
		var del []string
		for fp, raw := range want {
			got, ok, err := kv.Get(fp)
			if err != nil {
				m.ingest.mtx.Unlock()
				return err
			}
			if ok && bytes.Equal(got, raw) {
				del = append(del, fp)
			} else if ok {
				kept = append(kept, fp)
			}
		}
		if err := writeKV(kv, nil, del); err != nil {
			m.ingest.mtx.Unlock()
			return err
		}
	}
	defer m.ingest.mtx.Unlock()
	if len(kept) == 0 || m.ingest.ends == nil {
		return nil
	}
	// The alert just notified is still pending here (finishPending
	// follows), so pending cannot tell whether a newer post will be
	// notified: the sweeper reads the record and resolves it only once it
	// has ended.
	now := m.clock.Now()
	for _, fp := range kept {
		if _, known := m.ingest.ends[fp]; !known {
			m.ingest.ends[fp] = now
		}
	}
	signal(m.ingest.wake)
	return nil
}

// Backoff of the notify loop when the store refuses the incidents'
// transactions.
const (
	ingestNotifyRetryStart = time.Second
	ingestNotifyRetryCap   = 30 * time.Second
)

// ingestNotifyWorkers notify pending alerts side by side: a notify
// transaction is a few statements per alert, each a round trip to a
// shared store, and one worker alone fell behind 1,000 alerts/s (bench
// ingest).
const ingestNotifyWorkers = 2

// runIngestNotify runs the notify workers until ctx is done.
func (m *Manager) runIngestNotify(ctx context.Context) {
	m.ingest.init()
	var wg sync.WaitGroup
	for range ingestNotifyWorkers {
		wg.Go(func() { m.ingestNotifyWorker(ctx) })
	}
	wg.Wait()
	// The alerts held back are notified again at the next start, from
	// their records.
	m.ingest.pendMtx.Lock()
	if m.ingest.dueTimer != nil {
		m.ingest.dueTimer.Stop()
		m.ingest.dueAt, m.ingest.dueTimer = time.Time{}, nil
	}
	m.ingest.pendMtx.Unlock()
}

// ingestNotifyWorker feeds the pending posted alerts through the rules'
// notify path as SourceAPI, ingestNotifyBatch at a time, until ctx is
// done. A batch that cannot be written stays pending and is tried again
// after a backoff; posts that arrive meanwhile wait with it.
func (m *Manager) ingestNotifyWorker(ctx context.Context) {
	retry := make(chan struct{}, 1)
	failures := 0
	for {
		select {
		case <-m.ingest.kick:
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil {
			batch := m.takePending()
			if len(batch) == 0 {
				break
			}
			err := m.notifyPending(ctx, batch)
			m.finishPending(batch, err)
			if err == nil {
				failures = 0
				continue
			}
			d := min(ingestNotifyRetryStart<<min(failures, 16), ingestNotifyRetryCap)
			failures++
			m.logger.Error("cannot record posted alerts; they stay pending", "alerts", len(batch), "retry_in", d, "err", err)
			t := m.clock.AfterFunc(d, func() { signal(retry) })
			select {
			case <-retry:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
}

// currentResolves returns, for each pending resolve of batch whose record
// another gateway has written since (a newer post), that record's alert
// and tombstone (nil when it fires) to be notified instead: a resolve
// held back (another peer's share, or a failing store) must not end the
// firing that came after it, which the other gateway may not live to
// notify. A firing record is handed to the sweeper, which resolves it at
// its endsAt. Errors leave the resolve as it is.
//
// A firing held back as another peer's share is checked too: when its
// record has ended (the other gateway took a resolve this one never got),
// the record's resolve is notified instead, and when the record is gone
// (that resolve was recorded and its tombstone deleted) the firing is
// dropped, mapped to nil: notified late, it would open an incident that
// nothing resolves when its startsAt differs from the resolved member's.
func (m *Manager) currentResolves(batch []fpPending) map[string]*pendingAlert {
	kv := m.store.KV(ingestNamespace)
	var out map[string]*pendingAlert
	set := func(fp string, p *pendingAlert) {
		if out == nil {
			out = map[string]*pendingAlert{}
		}
		out[fp] = p
	}
	for _, b := range batch {
		heldFiring := b.held && b.p.tombstone == nil
		if b.p.tombstone == nil && !heldFiring {
			continue
		}
		raw, ok, err := kv.Get(b.fp)
		if err != nil {
			break // the store is down: so is the notify that follows
		}
		if !ok {
			if heldFiring {
				set(b.fp, nil)
			}
			continue
		}
		if bytes.Equal(raw, b.p.tombstone) {
			continue
		}
		var rec IngestedAlert
		if json.Unmarshal(raw, &rec) != nil {
			continue
		}
		p := rec.pending(raw, m.clock.Now())
		if heldFiring && p.tombstone == nil {
			continue // still firing: as taken
		}
		set(b.fp, p)
	}
	if len(out) == 0 {
		return nil
	}
	firing := false
	m.ingest.mtx.Lock()
	for fp, p := range out {
		if p != nil && p.tombstone == nil && m.ingest.ends != nil {
			m.ingest.ends[fp], firing = p.alert.ValidUntil, true
		}
	}
	m.ingest.mtx.Unlock()
	if firing {
		signal(m.ingest.wake)
	}
	return out
}

// fpPending is one pending alert taken by the notify loop.
type fpPending struct {
	fp string
	p  *pendingAlert
	// held is whether it was held back as another peer's share: its
	// record is read again before it is notified (see currentResolves).
	held bool
}

// ingestNotifyBatch is how many pending alerts one notify transaction
// takes. Smaller than notifyBatch: gateways that share a store notify the
// same alerts at the same time, and a serializable transaction of 500
// alerts that conflicts with the other gateway's is retried whole (the
// bench showed retries of seconds each, the notify falling a minute
// behind).
const ingestNotifyBatch = 50

// takePending returns up to ingestNotifyBatch pending alerts that no
// other worker has taken, sorted by fingerprint (two gateways lock shared
// rows in the same order); they stay pending until finishPending. When
// more are left it wakes another worker. Another peer's share is held
// back until peerDelay after it became pending (a timer wakes the loop
// then), and taken only after this gateway's own share: while the
// gateways are behind, each records its own share first, and the other's
// is mostly recorded by the time it comes to it.
func (m *Manager) takePending() []fpPending {
	m.ingest.pendMtx.Lock()
	defer m.ingest.pendMtx.Unlock()
	peers, self := m.livePeers()
	hold := m.ingest.flushing == 0 && len(peers) > 1
	now, delay := m.clock.Now(), m.peerDelay()
	var next time.Time
	out := make([]fpPending, 0, min(len(m.ingest.pending), ingestNotifyBatch))
	var late []fpPending // another peer's share, due
	more := false
	for fp, p := range m.ingest.pending {
		if m.ingest.inflight[fp] {
			continue
		}
		if hold && !ownsShare(peers, self, p.share) {
			if due := p.since.Add(delay); due.After(now) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
			} else if len(late) < ingestNotifyBatch {
				late = append(late, fpPending{fp: fp, p: p, held: true})
			} else {
				more = true
			}
			continue
		}
		if len(out) == ingestNotifyBatch {
			more = true
			break
		}
		out = append(out, fpPending{fp: fp, p: p})
	}
	n := min(ingestNotifyBatch-len(out), len(late))
	out = append(out, late[:n]...)
	if n < len(late) {
		more = true
	}
	for _, b := range out {
		m.ingest.inflight[b.fp] = true
	}
	if more {
		signal(m.ingest.kick)
	} else if !next.IsZero() {
		m.armDueLocked(now, next)
	}
	slices.SortFunc(out, func(a, b fpPending) int { return strings.Compare(a.fp, b.fp) })
	return out
}

// armDueLocked arms the timer that wakes the notify loop at next, for the
// alerts held back, unless one fires sooner already. pendMtx is held.
func (m *Manager) armDueLocked(now, next time.Time) {
	s := &m.ingest
	if !s.dueAt.IsZero() && !s.dueAt.After(next) {
		return
	}
	if s.dueTimer != nil {
		s.dueTimer.Stop()
	}
	s.dueAt = next
	s.dueTimer = m.clock.AfterFunc(next.Sub(now), func() {
		s.pendMtx.Lock()
		if s.dueAt.Equal(next) {
			s.dueAt, s.dueTimer = time.Time{}, nil
		}
		s.pendMtx.Unlock()
		signal(s.kick)
	})
}

// notifyPending records one batch of pending alerts, then deletes the
// tombstones of those resolved.
func (m *Manager) notifyPending(ctx context.Context, batch []fpPending) error {
	alerts := make([]*rules.Alert, 0, len(batch))
	var tombstones map[string][]byte
	current := m.currentResolves(batch)
	for _, b := range batch {
		p := b.p
		if c, ok := current[b.fp]; ok {
			if c == nil {
				continue // ended and recorded by another gateway
			}
			p = c
		}
		alerts = append(alerts, p.alert)
		if p.tombstone != nil {
			if tombstones == nil {
				tombstones = map[string][]byte{}
			}
			tombstones[b.fp] = p.tombstone
		}
	}
	if err := m.notifyAlerts(ctx, SourceAPI, "", alerts); err != nil {
		return err
	}
	if err := m.deleteTombstones(tombstones); err != nil {
		// Notified again at the next try, which changes nothing.
		return fmt.Errorf("notifier: delete the records of resolved posted alerts: %w", err)
	}
	return nil
}

// finishPending drops the alerts of a batch that was notified (err nil)
// from the pending set, unless a newer post replaced them meanwhile.
func (m *Manager) finishPending(batch []fpPending, err error) {
	m.ingest.pendMtx.Lock()
	defer m.ingest.pendMtx.Unlock()
	for _, b := range batch {
		delete(m.ingest.inflight, b.fp)
		if err == nil && m.ingest.pending[b.fp] == b.p {
			delete(m.ingest.pending, b.fp)
		}
	}
	m.ingest.lastErr = err
	m.metrics.ingestPending.Set(float64(len(m.ingest.pending)))
	close(m.ingest.changed)
	m.ingest.changed = make(chan struct{})
}

// FlushIngest waits until every posted alert taken so far has been
// notified, and returns nil, or until a notify round fails, and returns
// its error, or until ctx is done. It needs Run. While it waits, the
// alerts of other peers' shares are not held back.
func (m *Manager) FlushIngest(ctx context.Context) error {
	m.ingest.init()
	m.ingest.pendMtx.Lock()
	m.ingest.flushing++
	held := !m.ingest.dueAt.IsZero()
	m.ingest.pendMtx.Unlock()
	defer func() {
		m.ingest.pendMtx.Lock()
		m.ingest.flushing--
		m.ingest.pendMtx.Unlock()
	}()
	if held {
		// Only then: a kick would also wake a worker that is not
		// backing off from a failing store.
		signal(m.ingest.kick)
	}
	for {
		m.ingest.pendMtx.Lock()
		n, err, changed := len(m.ingest.pending), m.ingest.lastErr, m.ingest.changed
		m.ingest.pendMtx.Unlock()
		switch {
		case n == 0:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runIngest resolves the posted alerts whose endsAt passed without a new
// post, at their endsAt, until ctx is done.
func (m *Manager) runIngest(ctx context.Context) {
	m.ingest.init()
	fire := make(chan struct{}, 1)
	for {
		next := m.sweepIngest()
		var t Timer
		if !next.IsZero() {
			t = m.clock.AfterFunc(max(next.Sub(m.clock.Now()), 0), func() { signal(fire) })
		}
		select {
		case <-fire:
		case <-m.ingest.wake:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// ingestRetry is how soon a sweep that could not read the store is tried
// again.
const ingestRetry = 10 * time.Second

// sweepIngest queues the resolves of the expired posted alerts and returns
// the earliest endsAt left (zero for none). Their records stay until the
// notify loop has recorded the resolves.
func (m *Manager) sweepIngest() time.Time {
	m.ingest.mtx.Lock()
	defer m.ingest.mtx.Unlock()
	now := m.clock.Now()
	if err := m.loadIngest(); err != nil {
		m.logger.Error("cannot read posted alerts to resolve them", "err", err)
		m.ingest.armed = now.Add(ingestRetry)
		return m.ingest.armed
	}
	kv := m.store.KV(ingestNamespace)
	resolve := map[string]*pendingAlert{}
	retry := false
	for fp, end := range m.ingest.ends {
		if end.After(now) {
			continue
		}
		// Another gateway may have written the record since.
		raw, ok, err := kv.Get(fp)
		if err != nil {
			// Each read may take the store's timeout, under ingest.mtx:
			// the others wait for the retry.
			m.logger.Error("cannot read a posted alert to resolve it", "fingerprint", fp, "err", err)
			retry = true
			break
		}
		var rec IngestedAlert
		if ok {
			if err := json.Unmarshal(raw, &rec); err != nil {
				ok = false
			}
		}
		if !ok {
			delete(m.ingest.ends, fp)
			continue
		}
		if rec.EndsAt.After(now) {
			m.ingest.ends[fp] = rec.EndsAt
			continue
		}
		resolve[fp] = rec.pending(raw, now)
		delete(m.ingest.ends, fp)
	}
	if len(resolve) > 0 {
		m.addPending(resolve)
		m.logger.Debug("posted alerts ended at their endsAt", "alerts", len(resolve))
	}
	// What is left ended only where its record could not be read: that
	// waits for the retry, not for a sweep at once.
	next := time.Time{}
	for _, end := range m.ingest.ends {
		if end.After(now) && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	if retry && (next.IsZero() || now.Add(ingestRetry).Before(next)) {
		next = now.Add(ingestRetry)
	}
	m.ingest.armed = next
	return next
}

// PostedAlerts returns the posted alerts that have not ended, each with the
// silence that mutes it, if any, and the receivers of the first level.
func (m *Manager) PostedAlerts() ([]IngestedAlert, error) {
	all, err := m.store.KV(ingestNamespace).List("")
	if err != nil {
		return nil, fmt.Errorf("notifier: read posted alerts: %w", err)
	}
	now := m.clock.Now()
	var receivers []string
	if cfg := m.config(); cfg != nil && len(cfg.levels) > 0 {
		receivers = cfg.levels[0].Notify
	}
	out := make([]IngestedAlert, 0, len(all))
	err = m.store.View(func(tx Tx) error {
		eff := newEffects()
		for fp, raw := range all {
			var rec IngestedAlert
			if err := json.Unmarshal(raw, &rec); err != nil || !rec.EndsAt.After(now) {
				continue
			}
			rec.Fingerprint = fp
			id, err := m.silencedBy(tx, rec.Labels, now, eff)
			if err != nil {
				return err
			}
			if id != "" {
				rec.SilencedBy = []string{id}
			}
			rec.Receivers = slices.Clone(receivers)
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: read silences: %w", err)
	}
	slices.SortFunc(out, func(a, b IngestedAlert) int {
		if c := a.StartsAt.Compare(b.StartsAt); c != 0 {
			return c
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	return out, nil
}
