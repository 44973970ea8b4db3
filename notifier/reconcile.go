package notifier

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// SourceRules is Alert.Source of the alerts of vigil's own rules. Incidents
// written before Source existed have it empty and count as from the rules:
// those were the only alerts there were.
const SourceRules = "rules"

// fromRules reports whether an incident's alert comes from vigil's own
// rules, so that the reconcile may judge it: an alert that came in from
// outside (a gateway's Alertmanager API) is not the rules' to end.
// An incident of a group is judged when any member comes from the rules,
// and only by those members.
func fromRules(inc *Incident) bool {
	if inc.Storm != nil {
		return inc.Alert.Source == "" || inc.Alert.Source == SourceRules
	}
	return slices.ContainsFunc(MemberList(inc), memberFromRules)
}

// memberFromRules reports whether a member is an alert of vigil's rules.
func memberFromRules(mb Member) bool { return mb.Source == "" || mb.Source == SourceRules }

// reconcileBatch bounds how many incidents one reconcile transaction
// resolves.
const reconcileBatch = 256

// LocalRules is vigil's rule engine as the restart reconcile sees it.
type LocalRules interface {
	// Fresh reports whether every group of alerting rules has finished an
	// evaluation on samples scraped after vigil started (so that nothing
	// it says rests on data from before the restart, or on data missing
	// because nothing was scraped yet).
	Fresh() bool
	// ForEachActiveAlert calls f with the labels and state of every
	// pending and firing alert of the rules.
	ForEachActiveAlert(f func(ls labels.Labels, state rules.AlertState))
	// OverLimit reports whether an alerting rule of this name is over its
	// limit: Prometheus dropped its alerts, so that they are not active
	// says nothing about whether they ended.
	OverLimit(alertname string) bool
}

// Reconcile ends what the rules engine cannot: after a restart it knows
// only the alerts it sees firing now, so an alert that cleared while vigil
// was down is never sent as resolved and its incident would stay open and
// escalate for ever. Reconcile waits until the rules are fresh (checking
// every second), then resolves every open incident from the rules whose
// alert is neither pending nor firing, and tells the levels that were told.
// A pending alert may yet be dropped without a word (Prometheus does not
// resolve what never fired), so while an open incident rests on a pending
// alert only, Reconcile checks again every interval. It returns when no
// incident is left to judge, or when ctx is done.
// The incidents of a rule over its limit are not judged (their alerts are
// unknown); ReconcileRule judges them once the rule is back under it.
func (m *Manager) Reconcile(ctx context.Context, src LocalRules, interval time.Duration) error {
	return m.reconcileLoop(ctx, src, interval, "")
}

// ReconcileRule is Reconcile for the incidents of one alerting rule, run
// when the rule comes back under its limit: over it, Prometheus dropped
// the rule's alerts without resolving them, so an incident whose alert
// ended meanwhile would stay open for ever. It does not release the
// deadlines held until the restart's Reconcile.
func (m *Manager) ReconcileRule(ctx context.Context, src LocalRules, interval time.Duration, alertname string) error {
	m.logger.Info("reconciling the incidents of a rule back under its limit", "rule", alertname)
	return m.reconcileLoop(ctx, src, interval, alertname)
}

// reconcileLoop is Reconcile for the incidents of the alertname only
// when it is not empty.
func (m *Manager) reconcileLoop(ctx context.Context, src LocalRules, interval time.Duration, alertname string) error {
	if interval <= 0 {
		interval = time.Second
	}
	tick := make(chan struct{}, 1)
	for {
		wait := time.Second
		if src.Fresh() {
			wait = interval
			waiting, err := m.reconcile(ctx, src, alertname)
			if err == nil && alertname == "" {
				m.release()
			}
			switch {
			case err != nil:
				m.logger.Error("reconcile with the rules failed; retrying", "err", err)
			case waiting == 0:
				m.logger.Info("incidents reconciled with the rules", "rule", alertname)
				return nil
			}
		}
		t := m.clock.AfterFunc(wait, func() { tick <- struct{}{} })
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-tick:
		}
	}
}

// reconcile resolves the open incidents from the rules (of alertname
// only, unless empty) none of whose members is active, and marks resolved
// the members of open incidents that are not; it returns how many
// incidents rest on pending alerts only. Those of a rule over its limit
// are left alone.
func (m *Manager) reconcile(ctx context.Context, src LocalRules, alertname string) (int, error) {
	cfg := m.config()
	if cfg == nil {
		return 0, fmt.Errorf("notifier: no config applied")
	}
	// An incident opened after this instant may be for an alert that was
	// not active yet when the rules were read below.
	seen := m.clock.Now()
	fired, stop := m.watchFirings()
	defer stop()
	type activeAlert struct {
		fp, group, name string
		state           rules.AlertState
	}
	var alerts []activeAlert
	src.ForEachActiveAlert(func(ls labels.Labels, state rules.AlertState) {
		alerts = append(alerts, activeAlert{fingerprint(ls), cfg.groupKey(ls), ls.Get(labels.AlertName), state})
	})
	// settle are the incidents to write: true for those whose alerts are
	// all gone, false for those with members that ended.
	var settle map[string]bool
	var waiting []string
	// activeFP are the fingerprints of the active alerts themselves.
	activeFP := map[string]bool{}
	for _, a := range alerts {
		activeFP[a.fp] = true
	}
	// recount holds the open storm incidents whose folded alerts fire
	// fewer than they count: those that ended while vigil was down will
	// never be sent as resolved.
	var recount map[string]int
	err := m.store.View(func(tx Tx) error {
		settle, waiting, recount = map[string]bool{}, nil, map[string]int{}
		active := map[string]rules.AlertState{}
		mark := func(fp string, state rules.AlertState) {
			if state > active[fp] {
				active[fp] = state
			}
		}
		// A storm incident is judged by the alerts it folds, and by the
		// alerts of its name not recorded yet (they may fold into it);
		// not by those with an incident of their own. A group's incident
		// by its members and the alerts of its group not recorded yet
		// (they join it).
		firing := map[string]int{}
		for _, a := range alerts {
			mark(a.fp, a.state)
			latest, found, err := tx.LatestIncident(a.fp)
			switch {
			case err != nil:
				return err
			case !found:
				mark(stormFingerprint(a.name), a.state)
				mark(a.group, a.state)
			case latest.Storm != nil && latest.State != StateResolved:
				mark(latest.Fingerprint, a.state)
				// A folded alert may be pending again after a start,
				// until its for state is restored: still one of those
				// the storm counts as firing.
				firing[latest.ID]++
			case latest.State != StateResolved:
				mark(latest.Fingerprint, a.state) // the incident it joined
			default:
				mark(a.group, a.state) // its next firing joins its group's
			}
		}
		all, err := tx.Incidents("")
		if err != nil {
			return err
		}
		// OverLimit walks every rule: asked once per name, not per incident.
		over := map[string]bool{}
		overLimit := func(name string) bool {
			o, ok := over[name]
			if !ok {
				o = src.OverLimit(name)
				over[name] = o
			}
			return o
		}
		for _, inc := range all {
			if inc.State == StateResolved || !fromRules(&inc) || !inc.CreatedAt.Before(seen) ||
				(alertname != "" && inc.Alert.Name != alertname) || overLimit(inc.Alert.Name) {
				continue
			}
			state, ok := active[inc.Fingerprint]
			ended := false
			for _, mb := range MemberList(&inc) {
				if s, in := active[mb.Fingerprint]; in {
					ok, state = true, max(state, s)
				}
				ended = ended || (mb.State != MemberResolved && memberFromRules(mb) && !activeFP[mb.Fingerprint])
			}
			switch {
			case !ok:
				settle[inc.ID] = true
				continue
			case state == rules.StatePending:
				waiting = append(waiting, inc.ID)
			case inc.Storm != nil && firing[inc.ID] < inc.Storm.Firing:
				recount[inc.ID] = firing[inc.ID]
			}
			if ended {
				settle[inc.ID] = false
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("notifier: read open incidents: %w", err)
	}
	if len(recount) > 0 {
		if err := m.store.Update(func(tx Tx) error {
			for id, n := range recount {
				inc, err := tx.Incident(id)
				if err != nil {
					return err
				}
				if inc.State == StateResolved || inc.Storm == nil || n >= inc.Storm.Firing {
					continue
				}
				inc.Storm.Firing = n
				describe(&inc)
				if err := tx.PutIncident(&inc); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("notifier: recount storm incidents: %w", err)
		}
	}
	ids := make([]string, 0, len(settle))
	for id := range settle {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for len(ids) > 0 {
		batch := ids[:min(len(ids), reconcileBatch)]
		ids = ids[len(batch):]
		if err := m.resolveGone(ctx, cfg, batch, settle, activeFP, seen, fired); err != nil {
			return 0, err
		}
	}
	return len(waiting), nil
}

// resolveGone marks resolved the members from the rules of the incidents
// of ids that were not active when the rules were read (activeFP), and
// resolves the incidents still open whose alerts were all gone then (gone)
// once every member has resolved. Members notified firing since (fired)
// are left firing, and an incident whose group fired since is left open:
// it fires again.
func (m *Manager) resolveGone(ctx context.Context, cfg *runtimeConfig, ids []string, gone, activeFP map[string]bool, seen time.Time, fired func(fp string) bool) error {
	now := m.clock.Now()
	var eff *effects
	resolved, ended := 0, 0
	err := m.store.Update(func(tx Tx) error {
		eff, resolved, ended = newEffects(), 0, 0
		for _, id := range ids {
			inc, err := tx.Incident(id)
			if err != nil {
				return err
			}
			if inc.State == StateResolved {
				continue
			}
			if inc.Storm != nil {
				if !gone[id] || fired(inc.Fingerprint) {
					continue
				}
				if inc.Alert.ResolvedAt.IsZero() {
					inc.Alert.ResolvedAt = seen
				}
				if err := m.resolve(tx, cfg, &inc, ResolvedByAlert, "", now, eff); err != nil {
					return err
				}
				resolved++
				continue
			}
			changed := false
			ms := members(&inc)
			for i := range ms {
				mb := &ms[i]
				if mb.State == MemberResolved || !memberFromRules(*mb) || activeFP[mb.Fingerprint] || fired(mb.Fingerprint) {
					continue
				}
				mb.State, mb.ResolvedAt, changed = MemberResolved, seen, true
				if inc.Alert.Fingerprint == mb.Fingerprint && inc.Alert.ResolvedAt.IsZero() {
					inc.Alert.ResolvedAt = seen
				}
				if err := tx.UnfoldAlert(mb.Fingerprint, inc.ID); err != nil {
					return err
				}
				ended++
			}
			if done, last := allResolved(&inc); done && gone[id] && !fired(inc.Fingerprint) {
				if inc.Alert.ResolvedAt.IsZero() {
					inc.Alert.ResolvedAt = last
				}
				if err := m.resolve(tx, cfg, &inc, ResolvedByAlert, "", now, eff); err != nil {
					return err
				}
				resolved++
				continue
			}
			if changed {
				if err := tx.PutIncident(&inc); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notifier: resolve incidents whose alerts are gone: %w", err)
	}
	m.logger.Info("resolved incidents whose alerts ended while vigil was down", "incidents", resolved, "alerts", ended)
	m.apply(ctx, eff)
	return nil
}

// hold keeps a due deadline back until the first reconcile after the
// start, reporting whether it did.
func (m *Manager) hold(id string) bool {
	m.heldMtx.Lock()
	defer m.heldMtx.Unlock()
	if m.held == nil {
		return false
	}
	m.held[id] = true
	return true
}

// release takes the deadlines held back until the first reconcile, now:
// the incidents it resolved have none left.
func (m *Manager) release() {
	m.heldMtx.Lock()
	held := m.held
	m.held = nil
	m.heldMtx.Unlock()
	if len(held) > 0 {
		m.logger.Info("escalation deadlines held until the reconcile are due now", "incidents", len(held))
	}
	now := m.clock.Now()
	for id := range held {
		m.arm(id, now)
	}
}
