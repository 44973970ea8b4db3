// Package notifier turns alert state changes from the rules manager into
// incidents that escalate through the support levels, and delivers their
// messages durably: every message is written to the store (bbolt in the data
// directory) in the same transaction as the incident change that caused it,
// then sent by a worker pool with retries, so a restart or a receiver outage
// loses none. Receivers (Slack, webhook, rollback) live in sub-packages; the
// log receiver is built in.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-sh/vigil/config"
)

// Defaults of Options.
const (
	DefaultWorkers        = 4
	DefaultAttemptTimeout = 30 * time.Second
	DefaultDeliveryExpiry = 24 * time.Hour
)

// ResolvedByAlert is Incident.ResolvedBy when the alert itself cleared.
const ResolvedByAlert = "alert"

// RollbackReceiver is the receiver name rollback messages go to; main
// registers it through Options.Receivers.
const RollbackReceiver = "rollback"

// ErrResolved is returned when acknowledging an incident that has ended.
var ErrResolved = errors.New("incident is resolved")

// Clock tells the time and runs functions later. Tests inject a fake one or
// run under testing/synctest with the real one.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not run yet.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Rollbacker decides whether an incident calls for a rollback.
type Rollbacker interface {
	// Decide is called once when an incident opens in production (and for
	// manual rollbacks). It returns a message for the receiver named
	// "rollback" (Kind KindRollback, with Payload), or nil when no rollback
	// is due; a record with a nil message (a dry run) is recorded only. The
	// notifier records the RollbackRecord on the incident and delivers the
	// message durably like any other. Decide should answer the same for the
	// same incident ID: after a crash between the incident opening and the
	// decision being stored it is asked again.
	Decide(ctx context.Context, inc *Incident, env string) (*Message, *RollbackRecord, error)
}

// StatusCoder is an error that carries the far end's HTTP status; it is
// recorded on the RollbackRecord.
type StatusCoder interface {
	StatusCode() int
}

// Options configure the Manager.
type Options struct {
	// DataDir holds notifier.db. Required unless Store is set.
	DataDir string
	// Store replaces the embedded bbolt store (and DataDir).
	Store Store
	// Clock defaults to real time.
	Clock Clock
	// Receivers builds the configured receivers from the config; the "log"
	// receiver and every receiver with a log block are built in and need not
	// be returned. May be nil.
	Receivers func(cfg *config.Config) (map[string]Receiver, error)
	// Rollback may be nil: no rollbacks.
	Rollback Rollbacker
	// ExternalURL goes into messages as a link back to vigil.
	ExternalURL string
	// Workers send deliveries in parallel (default 4).
	Workers int
	// AttemptTimeout bounds one delivery attempt (default 30s).
	AttemptTimeout time.Duration
	// DeliveryExpiry is how long a delivery is retried before it is
	// recorded as failed (default 24h).
	DeliveryExpiry time.Duration
	// Reconcile says that Reconcile runs after the start: an escalation
	// deadline that comes due before its first judgement waits for it, so
	// that no level is paged for an alert that ended while vigil was down.
	// Without a call to Reconcile those deadlines would wait for ever.
	Reconcile bool
	// Owner names this gateway in the claims of a shared store (a Store
	// that implements Leaser); default: host, pid and a random suffix.
	Owner string
	// Lease is how long a claim in a shared store lasts unless renewed
	// (storage.lease; default DefaultLease).
	Lease time.Duration
}

// runtimeConfig is what the Manager needs from a config, swapped whole on
// reload.
type runtimeConfig struct {
	env       string
	service   string
	esc       config.EscalationConfig
	levels    []config.LevelConfig
	receivers map[string]Receiver
	// retention is storage.incident_retention; 0 (or less) keeps every
	// incident.
	retention time.Duration
	rto       rtoPolicy // disaster_recovery's RTO escalation (rto.go)
	// resolveTimeout is ingest.resolve_timeout.
	resolveTimeout time.Duration
}

// Manager receives alerts from the rules manager, keeps incidents, escalates
// them and delivers their messages.
type Manager struct {
	opts    Options
	logger  *slog.Logger
	clock   Clock
	store   Store
	ownsDB  bool
	metrics *metrics
	ids     idSource
	queue   *queue
	// matchers caches the parsed selectors of silences.
	matchers silenceMatchers

	cfgMtx sync.RWMutex
	cfg    *runtimeConfig

	timerMtx sync.Mutex
	timers   map[string]Timer
	// retries counts the failed attempts of a timer-driven step, by timer
	// key, for its backoff.
	retries map[string]int
	stopped bool

	// reprune asks the retention loop for a prune now: the retention
	// changed on reload.
	reprune chan struct{}

	// held are the incidents whose deadline came due before the first
	// reconcile after the start (Options.Reconcile); nil when nothing is
	// held any more.
	heldMtx sync.Mutex
	held    map[string]bool

	// openByName counts the open incidents (storms aside) by alertname,
	// for the storm threshold; changed after each commit.
	openMtx    sync.Mutex
	openByName map[string]int

	// firings are the fingerprints each running reconcile saw fire (or
	// fold into a storm) since it read the rules; see noteFiring.
	firingMtx sync.Mutex
	firings   map[*map[string]bool]struct{}

	// ingest keeps the alerts posted to the Alertmanager API (ingest.go).
	ingest ingestState
	// shared is set when the store is shared with other gateways (see
	// shared.go).
	shared *shared
}

// watchFirings starts recording the fingerprints whose alerts are notified
// firing, until the returned stop. A reconcile that read the rules without
// an alert must not resolve its incident when the alert fired again
// before the reconcile wrote.
func (m *Manager) watchFirings() (fired func(fp string) bool, stop func()) {
	set := map[string]bool{}
	m.firingMtx.Lock()
	if m.firings == nil {
		m.firings = map[*map[string]bool]struct{}{}
	}
	m.firings[&set] = struct{}{}
	m.firingMtx.Unlock()
	fired = func(fp string) bool {
		m.firingMtx.Lock()
		defer m.firingMtx.Unlock()
		return set[fp]
	}
	stop = func() {
		m.firingMtx.Lock()
		delete(m.firings, &set)
		m.firingMtx.Unlock()
	}
	return fired, stop
}

// noteFiring records fps as fired for every running reconcile.
func (m *Manager) noteFiring(fps ...string) {
	m.firingMtx.Lock()
	defer m.firingMtx.Unlock()
	for set := range m.firings {
		for _, fp := range fps {
			(*set)[fp] = true
		}
	}
}

// New opens the store and returns a Manager; its metrics go on reg.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	m := &Manager{logger: logger, timers: map[string]Timer{}, retries: map[string]int{}, openByName: map[string]int{}, reprune: make(chan struct{}, 1)}
	if opts != nil {
		m.opts = *opts
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	m.clock = m.opts.Clock
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.opts.Workers <= 0 {
		m.opts.Workers = DefaultWorkers
	}
	if m.opts.AttemptTimeout <= 0 {
		m.opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if m.opts.DeliveryExpiry <= 0 {
		m.opts.DeliveryExpiry = DefaultDeliveryExpiry
	}
	if m.opts.Reconcile {
		m.held = map[string]bool{}
	}
	m.store = m.opts.Store
	if m.store == nil {
		if m.opts.DataDir == "" {
			return nil, errors.New("notifier: no data directory for the incident store")
		}
		s, err := OpenBoltStore(m.opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("notifier: %w", err)
		}
		m.store, m.ownsDB = s, true
	}
	m.shared = newShared(m)
	m.metrics = newMetrics(reg, m.activeSilences)
	m.queue = newQueue(m.clock)
	if err := m.initGauges(); err != nil {
		if m.ownsDB {
			_ = m.store.Close()
		}
		return nil, err
	}
	return m, nil
}

// initGauges counts the open incidents already in the store.
func (m *Manager) initGauges() error {
	return m.store.View(func(tx Tx) error {
		all, err := tx.Incidents("")
		if err != nil {
			return fmt.Errorf("notifier: read incidents: %w", err)
		}
		for _, inc := range all {
			if inc.State != StateResolved {
				m.metrics.incidents.WithLabelValues(string(inc.State), inc.Priority).Inc()
				if inc.Storm == nil {
					m.openByName[inc.Alert.Name]++
				}
			}
		}
		return nil
	})
}

// ApplyConfig takes a new config: environment, escalation, receivers and
// incident retention. A receiver that fails to build keeps the old config. A
// changed retention is applied at once, not at the next hourly prune.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	rc := &runtimeConfig{
		env:       cfg.Environment,
		service:   cfg.Service,
		esc:       cfg.Escalation,
		levels:    cfg.Escalation.Levels,
		receivers: map[string]Receiver{},
		retention: time.Duration(cfg.Storage.IncidentRetention),
		rto:       newRTOPolicy(cfg.DisasterRecovery),

		resolveTimeout: time.Duration(cfg.Ingest.ResolveTimeout),
	}
	if len(rc.levels) == 0 {
		// Without levels every incident still reaches someone: the log.
		rc.levels = []config.LevelConfig{{Name: "default", Notify: []string{config.ImplicitLogReceiver}}}
	}
	rc.receivers[config.ImplicitLogReceiver] = newLogReceiver(m.logger, "warn")
	for _, r := range cfg.Receivers {
		if r.Log != nil {
			rc.receivers[r.Name] = newLogReceiver(m.logger, r.Log.Level)
		}
	}
	if m.opts.Receivers != nil {
		built, err := m.opts.Receivers(cfg)
		if err != nil {
			return fmt.Errorf("notifier: receivers: %w", err)
		}
		for name, r := range built {
			rc.receivers[name] = r
		}
	}
	m.metrics.initConfig(rc.levels, slices.Collect(maps.Keys(rc.receivers)))
	if m.config() == nil {
		if err := m.adoptOlderIncidents(rc); err != nil {
			// They keep working as they are (MemberList); only a replica
			// firing now would open its group's incident beside them.
			m.logger.Error("cannot key incidents of an older version by their group", "err", err)
		}
	}
	m.cfgMtx.Lock()
	changed := m.cfg != nil && m.cfg.retention != rc.retention
	m.cfg = rc
	m.cfgMtx.Unlock()
	if changed {
		select {
		case m.reprune <- struct{}{}:
		default:
		}
	}
	return nil
}

func (m *Manager) config() *runtimeConfig {
	m.cfgMtx.RLock()
	defer m.cfgMtx.RUnlock()
	return m.cfg
}

func (m *Manager) receiver(name string) Receiver {
	c := m.config()
	if c == nil {
		return nil
	}
	return c.receivers[name]
}

// Run restores pending deliveries, escalation timers and undecided rollbacks
// from the store, then delivers, and prunes resolved incidents past their
// retention at once and every hour, until ctx is done. Attempts in flight when
// ctx ends are abandoned and made again after the next start, with the same
// DeliveryID.
func (m *Manager) Run(ctx context.Context) error {
	var (
		deliveries []Delivery
		deadlines  = map[string]time.Time{}
		rollbacks  []string
	)
	err := m.store.View(func(tx Tx) error {
		var err error
		if deliveries, err = tx.Deliveries(); err != nil {
			return err
		}
		open, err := tx.Incidents("")
		if err != nil {
			return err
		}
		for _, inc := range open {
			if inc.State != StateResolved && !inc.NextDeadline.IsZero() {
				deadlines[inc.ID] = inc.NextDeadline
			}
		}
		rollbacks, err = tx.RollbackPending()
		return err
	})
	if err != nil {
		return fmt.Errorf("notifier: restore: %w", err)
	}
	m.queue.restore(deliveries)
	m.metrics.pending.Set(float64(m.queue.len()))
	for id, at := range deadlines {
		m.arm(id, at)
	}
	if len(deliveries)+len(deadlines) > 0 {
		m.logger.Info("restored from the store", "deliveries", len(deliveries), "deadlines", len(deadlines))
	}
	for _, id := range rollbacks {
		_ = m.decideRollback(ctx, id)
	}

	// Pruning runs beside delivery: a first prune of a big store must not
	// hold back the messages waiting since the restart.
	var retention sync.WaitGroup
	retention.Go(func() { m.runRetention(ctx) })
	retention.Go(func() { m.runIngest(ctx) })
	retention.Go(func() { m.runIngestNotify(ctx) })
	retention.Go(func() { m.runShared(ctx) })
	m.runDelivery(ctx)
	// Close follows Run and closes the store: no prune may be left running.
	retention.Wait()

	m.timerMtx.Lock()
	m.stopped = true
	for id, t := range m.timers {
		t.Stop()
		delete(m.timers, id)
	}
	m.timerMtx.Unlock()
	return nil
}

// Close releases the store. Call it after Run has returned.
func (m *Manager) Close() error {
	m.timerMtx.Lock()
	m.stopped = true
	for _, t := range m.timers {
		t.Stop()
	}
	m.timerMtx.Unlock()
	if m.ownsDB {
		if err := m.store.Close(); err != nil {
			return fmt.Errorf("notifier: close store: %w", err)
		}
	}
	return nil
}

// KV returns a durable key-value space for a receiver or the rollback logic.
func (m *Manager) KV(namespace string) KV { return m.store.KV(namespace) }

// Incidents returns the incidents in a state ("" for all), newest first.
func (m *Manager) Incidents(state State) ([]Incident, error) {
	var out []Incident
	err := m.store.View(func(tx Tx) error {
		var err error
		out, err = tx.Incidents(state)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	for i := range out {
		out[i].Members = MemberList(&out[i])
	}
	return out, nil
}

// Incident returns one incident, or an error wrapping ErrNotFound. The
// incidents it and Incidents return list their members (MemberList) also
// when they were written before grouping.
func (m *Manager) Incident(id string) (Incident, error) {
	var inc Incident
	err := m.store.View(func(tx Tx) error {
		var err error
		inc, err = tx.Incident(id)
		return err
	})
	inc.Members = MemberList(&inc)
	return inc, err
}

// Notify is a rules.NotifyFunc for vigil's own rules. A firing alert joins
// the open incident of its group (escalation.group_by) or opens one, unless
// it is the same firing (same ActiveAt) as a member of an incident resolved
// by hand; a resolved alert resolves its member, and the incident with its
// last member, or, when the incident was resolved by hand, is recorded on
// it (so retention may delete it). Beyond escalation.storm_threshold open
// incidents of an alertname, the alerts of further groups fold into one
// storm incident (see storm.go). The alerts of one call are written
// notifyBatch at a time, each batch one transaction.
func (m *Manager) Notify(ctx context.Context, expr string, alerts ...*rules.Alert) {
	// The rules manager sends its alerts again at its next evaluation:
	// a batch that could not be written is logged and taken then.
	if err := m.notifyAlerts(ctx, SourceRules, expr, alerts); err != nil {
		m.logger.Error("cannot record alerts", "err", err, "alerts", len(alerts))
	}
}

// notifyAlerts is Notify for alerts of any source (Alert.Source): SourceRules
// for vigil's rules, another name for alerts that came in from outside,
// which the restart reconcile leaves alone. For SourceRules expr is the
// rule's expression, linked as the alerts' generator URL; for another
// source it is the generator URL itself ("" for none), and each alert's
// ValidUntil is kept as its EndsAt. It stops at the first batch that
// cannot be written and returns its error: the batches before it were
// written.
func (m *Manager) notifyAlerts(ctx context.Context, source, expr string, alerts []*rules.Alert) error {
	cfg := m.config()
	if cfg == nil {
		return errors.New("notifier: alerts before the first config")
	}
	for len(alerts) > 0 {
		batch := alerts[:min(len(alerts), notifyBatch)]
		alerts = alerts[len(batch):]
		if err := m.notify(ctx, cfg, source, expr, batch); err != nil {
			return err
		}
	}
	return nil
}

// notify records one batch of alerts in one transaction.
func (m *Manager) notify(ctx context.Context, cfg *runtimeConfig, source, expr string, alerts []*rules.Alert) error {
	now := m.clock.Now()
	var eff *effects
	err := m.store.Update(func(stx Tx) error {
		eff = newEffects()
		st := newStorms(cfg.esc.StormThreshold, m.openCount)
		gs := newGroups()
		// Each incident the batch changes is written once, at the end.
		tx := newWriteBack(stx)
		for _, a := range alerts {
			if err := m.notifyAlert(tx, cfg, st, gs, source, expr, a, now, eff); err != nil {
				return err
			}
		}
		if err := m.openGroups(tx, cfg, gs, now, eff); err != nil {
			return err
		}
		if err := m.flush(tx, cfg, st, now, eff); err != nil {
			return err
		}
		return tx.flush()
	})
	if err != nil {
		return fmt.Errorf("notifier: record %d alerts: %w", len(alerts), err)
	}
	m.apply(ctx, eff)
	return nil
}

// Acknowledge stops an incident's escalation and tells every notified level.
func (m *Manager) Acknowledge(id, by, comment string) (Incident, error) {
	return m.change(id, func(tx Tx, cfg *runtimeConfig, inc *Incident, now time.Time, eff *effects) error {
		switch inc.State {
		case StateResolved:
			return fmt.Errorf("acknowledge %s: %w", id, ErrResolved)
		case StateAcknowledged:
			return nil
		}
		return m.acknowledge(tx, cfg, inc, by, comment, now, eff)
	})
}

// Resolve ends an incident by hand and tells every notified level. Resolving
// a resolved incident changes nothing.
func (m *Manager) Resolve(id, by, comment string) (Incident, error) {
	return m.change(id, func(tx Tx, cfg *runtimeConfig, inc *Incident, now time.Time, eff *effects) error {
		if inc.State == StateResolved {
			return nil
		}
		return m.resolve(tx, cfg, inc, by, comment, now, eff)
	})
}

// RequestRollback asks the Rollbacker about an incident by hand (POST
// /api/v1/rollback) in any environment that allows rollbacks, and records
// and delivers what it decides.
func (m *Manager) RequestRollback(ctx context.Context, id string) (Incident, error) {
	if m.opts.Rollback == nil {
		return Incident{}, errors.New("rollback is not configured")
	}
	if err := m.store.Update(func(tx Tx) error { return tx.SetRollbackPending(id, true) }); err != nil {
		return Incident{}, fmt.Errorf("notifier: %w", err)
	}
	if err := m.decideRollback(ctx, id); err != nil {
		return Incident{}, err
	}
	return m.Incident(id)
}

// change runs fn on one incident in one transaction and applies its effects.
func (m *Manager) change(id string, fn func(Tx, *runtimeConfig, *Incident, time.Time, *effects) error) (Incident, error) {
	cfg := m.config()
	if cfg == nil {
		return Incident{}, errors.New("notifier: no config applied")
	}
	now := m.clock.Now()
	var (
		inc Incident
		eff *effects
	)
	err := m.store.Update(func(tx Tx) error {
		eff = newEffects()
		var err error
		if inc, err = tx.Incident(id); err != nil {
			return err
		}
		return fn(tx, cfg, &inc, now, eff)
	})
	if err != nil {
		return Incident{}, fmt.Errorf("notifier: %w", err)
	}
	m.apply(context.Background(), eff)
	return inc, nil
}

// effects are what a committed transaction starts: deliveries to send,
// deadlines to arm, metrics to move and rollbacks to decide. They also keep
// the silences in force that the transaction read, once it needs them.
type effects struct {
	deliveries []Delivery
	deadlines  map[string]time.Time
	after      []func()
	rollbacks  []string
	silences   []activeSilence
}

func newEffects() *effects { return &effects{deadlines: map[string]time.Time{}} }

func (m *Manager) apply(ctx context.Context, eff *effects) {
	if len(eff.deliveries) > 0 {
		m.queue.push(eff.deliveries...)
		m.metrics.pending.Set(float64(m.queue.len()))
	}
	for id, at := range eff.deadlines {
		m.arm(id, at)
	}
	for _, f := range eff.after {
		f()
	}
	for _, id := range eff.rollbacks {
		_ = m.decideRollback(ctx, id)
	}
}

// arm schedules the deadline check of an incident, replacing an earlier one.
// The check rereads the incident, so a stale timer does no harm.
func (m *Manager) arm(id string, at time.Time) {
	m.timerMtx.Lock()
	defer m.timerMtx.Unlock()
	if m.stopped {
		return
	}
	if t, ok := m.timers[id]; ok {
		t.Stop()
		delete(m.timers, id)
	}
	// A new deadline was written: whatever failed before has succeeded.
	delete(m.retries, id)
	if at.IsZero() {
		return
	}
	m.timers[id] = m.clock.AfterFunc(max(at.Sub(m.clock.Now()), 0), func() { m.deadline(id) })
}

// Backoff of a timer-driven step (an escalation deadline, a rollback
// decision) whose store transaction failed, for example on a full disk.
const (
	stepRetryStart = time.Second
	stepRetryCap   = 30 * time.Second
)

// retryLater runs f again after a backoff that doubles with each failure of
// the step named key, up to stepRetryCap, and returns the wait. The step is
// retried until it is written: nothing else would run it again before the
// next start.
func (m *Manager) retryLater(key string, f func()) time.Duration {
	m.timerMtx.Lock()
	defer m.timerMtx.Unlock()
	n := m.retries[key]
	m.retries[key] = n + 1
	d := min(stepRetryStart<<min(n, 16), stepRetryCap)
	if m.stopped {
		return d
	}
	if t, ok := m.timers[key]; ok {
		t.Stop()
	}
	m.timers[key] = m.clock.AfterFunc(d, f)
	return d
}

// retried forgets the failures of the step named key after it succeeded
// and cancels a retry still waiting (the step succeeded another way).
func (m *Manager) retried(key string) {
	m.timerMtx.Lock()
	defer m.timerMtx.Unlock()
	delete(m.retries, key)
	if t, ok := m.timers[key]; ok {
		t.Stop()
		delete(m.timers, key)
	}
}

// forgetRetry forgets the failures of the escalation step of incident id
// and its retry timer, if a retry is what last armed it: an arm since
// (a new deadline written) has cleared them already and its timer is live.
func (m *Manager) forgetRetry(id string) {
	m.timerMtx.Lock()
	defer m.timerMtx.Unlock()
	if _, ok := m.retries[id]; !ok {
		return
	}
	delete(m.retries, id)
	if t, ok := m.timers[id]; ok {
		t.Stop()
		delete(m.timers, id)
	}
}

func fingerprint(ls labels.Labels) string { return fmt.Sprintf("%016x", ls.Hash()) }

func toAlert(a *rules.Alert, fp, source, expr, externalURL string) Alert {
	out := Alert{
		Name:        a.Labels.Get(labels.AlertName),
		Fingerprint: fp,
		Labels:      a.Labels.Map(),
		Annotations: a.Annotations.Map(),
		Value:       a.Value,
		ActiveAt:    a.ActiveAt,
		FiredAt:     a.FiredAt,
		ResolvedAt:  a.ResolvedAt,
		Source:      source,
		EndsAt:      endsAt(a, source),
	}
	if source != SourceRules {
		out.GeneratorURL = expr
		return out
	}
	if expr != "" && externalURL != "" {
		// The link Prometheus itself puts on its alerts.
		out.GeneratorURL = strings.TrimSuffix(externalURL, "/") + "/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1"
	}
	return out
}
