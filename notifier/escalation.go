package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// Escalation rules, as implemented here:
//
//   - Priority is escalation.priorities[severity label]; an unmapped severity
//     is PriorityMedium. The response time of a priority missing from
//     escalation.response_times is 24h.
//   - After level i is notified, the next step is due after level i's wait
//     when it has one, else after the priority's response time.
//   - Below the last level, a due step notifies the next level
//     (KindEscalation). At the last level it re-notifies that level
//     (KindRepeat), escalation.repeat_limit times at most.
//   - A step is taken at the time it happens and the next one is counted from
//     then, so a deadline that passed while vigil was down fires once, at
//     start.
//   - Acknowledging stops the steps. With escalation.rearm > 0, an incident
//     still open rearm after its acknowledgement is triggered again: its
//     current level is notified again (KindEscalation) and the steps resume
//     from there.
//   - Acknowledgements and resolutions go to every receiver of every
//     notified level, once per receiver.
//   - development: each level's messages go to the "log" receiver only (one
//     per level); staging: the ladder is level 1 alone, so it is the last
//     level and gets the repeats; production: everything.

// ladder returns the levels the environment uses.
func (c *runtimeConfig) ladder() []config.LevelConfig {
	if c.env == config.EnvStaging {
		return c.levels[:1]
	}
	return c.levels
}

func (c *runtimeConfig) priority(severity string) string {
	if p, ok := c.esc.Priorities[severity]; ok && p != "" {
		return p
	}
	return PriorityMedium
}

func (c *runtimeConfig) responseTime(priority string) time.Duration {
	if d := time.Duration(c.esc.ResponseTimes[priority]); d > 0 {
		return d
	}
	return 24 * time.Hour
}

// step is how long level has before the next step.
func (c *runtimeConfig) step(level int, priority string) time.Duration {
	if w := time.Duration(c.ladder()[level].Wait); w > 0 {
		return w
	}
	return c.responseTime(priority)
}

// routes returns the receivers of a level in this environment.
func (c *runtimeConfig) routes(level int) []string {
	if c.env == config.EnvDevelopment {
		return []string{config.ImplicitLogReceiver}
	}
	return c.ladder()[level].Notify
}

// open starts the incident of group fp for its first alert a and its
// members (or of an alert storm, when storm is not nil), notifies level 1
// and returns the incident's ID.
func (m *Manager) open(tx Tx, cfg *runtimeConfig, fp string, a Alert, ms []Member, storm *Storm, now time.Time, eff *effects) (string, error) {
	inc := Incident{
		ID:            m.ids.next(now),
		Fingerprint:   fp,
		Alert:         a,
		Members:       ms,
		State:         StateTriggered,
		Priority:      cfg.priority(a.Labels["severity"]),
		Level:         -1,
		CreatedAt:     now,
		Notifications: []Notification{},
		Storm:         storm,
	}
	if err := m.notifyLevel(tx, cfg, &inc, 0, KindFiring, now, eff); err != nil {
		return "", err
	}
	if cfg.env == config.EnvProduction && m.opts.Rollback != nil {
		if err := tx.SetRollbackPending(inc.ID, true); err != nil {
			return "", fmt.Errorf("mark rollback decision: %w", err)
		}
		eff.rollbacks = append(eff.rollbacks, inc.ID)
	}
	eff.after = append(eff.after, func() {
		if storm == nil {
			m.countOpen(a.Name, 1)
		}
		m.metrics.incidents.WithLabelValues(string(StateTriggered), inc.Priority).Inc()
		m.logger.Info("incident opened", "incident", inc.ID, "alertname", a.Name, "priority", inc.Priority, "members", len(ms))
	})
	return inc.ID, tx.PutIncident(&inc)
}

// notifyLevel sends kind to a level, records it as reached and sets the next
// deadline.
func (m *Manager) notifyLevel(tx Tx, cfg *runtimeConfig, inc *Incident, level int, kind Kind, now time.Time, eff *effects) error {
	inc.Level = max(inc.Level, level)
	last := len(cfg.ladder()) - 1
	inc.NextDeadline = time.Time{}
	if level < last || inc.Repeats < cfg.esc.RepeatLimit {
		inc.NextDeadline = now.Add(cfg.step(level, inc.Priority))
	}
	inc.NextDeadline = cfg.rtoDeadline(inc, level, inc.NextDeadline)
	eff.deadlines[inc.ID] = inc.NextDeadline
	return m.queueMessages(tx, cfg, inc, kind, []int{level}, now, eff)
}

// notifiedLevels are the levels an incident has reached.
func notifiedLevels(cfg *runtimeConfig, inc *Incident) []int {
	var out []int
	for l := 0; l <= min(inc.Level, len(cfg.ladder())-1); l++ {
		out = append(out, l)
	}
	return out
}

// told reports whether receiver was sent (not silenced) any message about
// inc.
func told(inc *Incident, receiver string) bool {
	for _, n := range inc.Notifications {
		if n.Receiver == receiver && n.Outcome != OutcomeSilenced {
			return true
		}
	}
	return false
}

// queueMessages writes one delivery per receiver of the levels (each
// receiver once) and records them on the incident.
func (m *Manager) queueMessages(tx Tx, cfg *runtimeConfig, inc *Incident, kind Kind, levels []int, now time.Time, eff *effects) error {
	seen := map[string]bool{}
	for _, level := range levels {
		for _, r := range cfg.routes(level) {
			if seen[r] {
				continue
			}
			seen[r] = true
			if (kind == KindAcknowledged || kind == KindResolved) && !told(inc, r) {
				// Nobody tells a receiver about the end of what it never
				// heard of (its messages were silenced).
				continue
			}
			msg := &Message{
				DeliveryID:  m.ids.next(now),
				Kind:        kind,
				Level:       level,
				LevelName:   cfg.ladder()[level].Name,
				Service:     cfg.service,
				Environment: cfg.env,
				ExternalURL: m.opts.ExternalURL,
				CreatedAt:   now,
			}
			if err := m.enqueue(tx, inc, msg, r, now, eff); err != nil {
				return err
			}
		}
	}
	return nil
}

// enqueue stores msg for receiver and records the notification. The
// message's incident is a snapshot without the notification list, which
// keeps changing as deliveries finish. A message muted by an active silence
// is recorded as silenced and not stored; the rollback webhook is never
// muted.
func (m *Manager) enqueue(tx Tx, inc *Incident, msg *Message, receiver string, now time.Time, eff *effects) error {
	if msg.Kind != KindRollback {
		silence, err := m.incidentSilencedBy(tx, inc, now, eff)
		if err != nil {
			return err
		}
		if silence != "" {
			inc.Notifications = append(inc.Notifications, Notification{
				DeliveryID: msg.DeliveryID,
				Receiver:   receiver,
				Level:      msg.Level,
				Kind:       msg.Kind,
				QueuedAt:   now,
				Outcome:    OutcomeSilenced,
				DoneAt:     now,
				SilenceID:  silence,
			})
			id, kind := inc.ID, msg.Kind
			eff.after = append(eff.after, func() {
				m.metrics.notifications.WithLabelValues(receiver, OutcomeSilenced).Inc()
				m.logger.Debug("notification silenced", "incident", id, "receiver", receiver, "kind", kind, "silence", silence)
			})
			return nil
		}
	}
	msg.Incident = *inc
	msg.Incident.Notifications = nil
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	d := Delivery{
		ID:          msg.DeliveryID,
		IncidentID:  inc.ID,
		Receiver:    receiver,
		Message:     body,
		NextAttempt: now,
		QueuedAt:    now,
	}
	if err := tx.PutDelivery(&d); err != nil {
		return err
	}
	inc.Notifications = append(inc.Notifications, Notification{
		DeliveryID: d.ID,
		Receiver:   receiver,
		Level:      msg.Level,
		Kind:       msg.Kind,
		QueuedAt:   now,
		Outcome:    OutcomePending,
	})
	eff.deliveries = append(eff.deliveries, d)
	return nil
}

func (m *Manager) acknowledge(tx Tx, cfg *runtimeConfig, inc *Incident, by, comment string, now time.Time, eff *effects) error {
	first := inc.AcknowledgedAt.IsZero()
	inc.State = StateAcknowledged
	inc.AcknowledgedAt, inc.AcknowledgedBy = now, by
	inc.NextDeadline = time.Time{}
	if r := time.Duration(cfg.esc.Rearm); r > 0 {
		inc.NextDeadline = now.Add(r)
	}
	eff.deadlines[inc.ID] = inc.NextDeadline
	if comment != "" {
		inc.Comments = append(inc.Comments, Comment{At: now, By: by, Text: comment})
	}
	if err := m.queueMessages(tx, cfg, inc, KindAcknowledged, notifiedLevels(cfg, inc), now, eff); err != nil {
		return err
	}
	prio, created := inc.Priority, inc.CreatedAt
	eff.after = append(eff.after, func() {
		m.metrics.incidents.WithLabelValues(string(StateTriggered), prio).Dec()
		m.metrics.incidents.WithLabelValues(string(StateAcknowledged), prio).Inc()
		if first {
			m.metrics.timeToAck.WithLabelValues(prio).Observe(now.Sub(created).Seconds())
		}
	})
	return tx.PutIncident(inc)
}

func (m *Manager) resolve(tx Tx, cfg *runtimeConfig, inc *Incident, by, comment string, now time.Time, eff *effects) error {
	prev := inc.State
	inc.State = StateResolved
	inc.ResolvedAt, inc.ResolvedBy = now, by
	inc.NextDeadline = time.Time{}
	eff.deadlines[inc.ID] = time.Time{}
	if comment != "" {
		inc.Comments = append(inc.Comments, Comment{At: now, By: by, Text: comment})
	}
	if err := m.queueMessages(tx, cfg, inc, KindResolved, notifiedLevels(cfg, inc), now, eff); err != nil {
		return err
	}
	prio, created, id, name, storm := inc.Priority, inc.CreatedAt, inc.ID, inc.Alert.Name, inc.Storm != nil
	eff.after = append(eff.after, func() {
		if !storm {
			m.countOpen(name, -1)
		}
		m.metrics.incidents.WithLabelValues(string(prev), prio).Dec()
		m.metrics.resolved.WithLabelValues(prio).Inc()
		m.metrics.timeToResolve.WithLabelValues(prio).Observe(now.Sub(created).Seconds())
		m.logger.Info("incident resolved", "incident", id, "by", by)
	})
	return tx.PutIncident(inc)
}

// deadline runs when an incident's NextDeadline is due: the next step of
// its escalation, or its re-arming after an acknowledgement.
func (m *Manager) deadline(id string) {
	cfg := m.config()
	if cfg == nil || m.hold(id) || !m.claimDeadline(id) {
		return
	}
	defer m.releaseDeadline(id)
	now := m.clock.Now()
	var eff *effects
	idle := false
	err := m.store.Update(func(tx Tx) error {
		eff = newEffects()
		inc, err := tx.Incident(id)
		if err != nil {
			return err
		}
		if inc.State == StateResolved || inc.NextDeadline.IsZero() {
			idle = true
			return nil
		}
		if now.Before(inc.NextDeadline) {
			eff.deadlines[id] = inc.NextDeadline // a stale timer
			return nil
		}
		last := len(cfg.ladder()) - 1
		current := min(inc.Level, last)
		// A silence holds the escalation where it is: no level is passed
		// over or repeat used up while nobody can be told, so when the
		// silence ends the next deadline tells the next level.
		silence, err := m.incidentSilencedBy(tx, &inc, now, eff)
		if err != nil {
			return err
		}
		if silence != "" {
			inc.NextDeadline = now.Add(cfg.step(current, inc.Priority))
			eff.deadlines[id] = inc.NextDeadline
			return tx.PutIncident(&inc)
		}
		switch {
		case inc.State == StateAcknowledged:
			inc.State = StateTriggered
			prio := inc.Priority
			eff.after = append(eff.after, func() {
				m.metrics.incidents.WithLabelValues(string(StateAcknowledged), prio).Dec()
				m.metrics.incidents.WithLabelValues(string(StateTriggered), prio).Inc()
				m.logger.Info("acknowledged incident still firing; escalating again", "incident", id)
			})
			err = m.notifyLevel(tx, cfg, &inc, current, KindEscalation, now, eff)
		case current < last && cfg.rtoDue(&inc, now):
			err = m.escalateForRTO(tx, cfg, &inc, now, eff)
		case current < last:
			name := cfg.ladder()[current+1].Name
			eff.after = append(eff.after, func() { m.metrics.escalations.WithLabelValues(name).Inc() })
			err = m.notifyLevel(tx, cfg, &inc, current+1, KindEscalation, now, eff)
		case inc.Repeats < cfg.esc.RepeatLimit:
			inc.Repeats++
			name := cfg.ladder()[last].Name
			eff.after = append(eff.after, func() { m.metrics.escalations.WithLabelValues(name).Inc() })
			err = m.notifyLevel(tx, cfg, &inc, last, KindRepeat, now, eff)
		default:
			inc.NextDeadline = time.Time{}
			eff.deadlines[id] = time.Time{}
		}
		if err != nil {
			return err
		}
		return tx.PutIncident(&inc)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			m.forgetRetry(id)
			return // pruned meanwhile: nothing left to escalate
		}
		d := m.retryLater(id, func() { m.deadline(id) })
		m.logger.Error("escalation step failed; retrying", "incident", id, "err", err, "retry_in", d)
		return
	}
	if idle {
		// A retried step found nothing left to do (resolved meanwhile, or
		// no further deadline): nothing arms the incident again to clear
		// its retry count and spent timer.
		m.forgetRetry(id)
	}
	m.apply(context.Background(), eff)
}

// decideRollback asks the Rollbacker about an incident and records and
// queues what it decides, clearing the incident's pending mark.
func (m *Manager) decideRollback(ctx context.Context, id string) error {
	cfg := m.config()
	if m.opts.Rollback == nil || cfg == nil || !m.claimRollback(id) {
		return nil
	}
	defer m.releaseRollback(id)
	key := rollbackTimerKey(id)
	retry := func() { _ = m.decideRollback(context.Background(), id) }
	inc, err := m.Incident(id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			m.retried(key) // nothing left to retry
			m.logger.Error("rollback decision: incident gone", "incident", id, "err", err)
			return err
		}
		d := m.retryLater(key, retry)
		m.logger.Error("rollback decision: incident unreadable; retrying", "incident", id, "err", err, "retry_in", d)
		return err
	}
	msg, rec, derr := m.opts.Rollback.Decide(ctx, &inc, cfg.env)
	if derr != nil {
		m.logger.Error("rollback decision failed", "incident", id, "err", derr)
		m.metrics.rollbacks.WithLabelValues("error").Inc()
	}
	now := m.clock.Now()
	var eff *effects
	err = m.store.Update(func(tx Tx) error {
		eff = newEffects()
		if err := tx.SetRollbackPending(id, false); err != nil {
			return err
		}
		if derr != nil || rec == nil {
			return nil
		}
		inc, err := tx.Incident(id)
		if err != nil {
			return err
		}
		if inc.Rollback != nil {
			return nil // decided meanwhile, by another gateway of a shared store
		}
		r := *rec
		if r.At.IsZero() {
			r.At = now
		}
		if msg == nil {
			switch {
			case r.DryRun:
				r.Outcome = "dry_run"
			case r.Outcome == "":
				r.Outcome = "skipped"
			}
			eff.after = append(eff.after, func() { m.metrics.rollbacks.WithLabelValues(r.Outcome).Inc() })
		} else {
			mm := *msg
			if mm.DeliveryID == "" {
				mm.DeliveryID = m.ids.next(now)
			}
			mm.Kind = KindRollback
			mm.Level = max(inc.Level, 0)
			mm.Service = orDefault(mm.Service, cfg.service)
			mm.Environment = orDefault(mm.Environment, cfg.env)
			mm.ExternalURL = orDefault(mm.ExternalURL, m.opts.ExternalURL)
			if mm.CreatedAt.IsZero() {
				mm.CreatedAt = now
			}
			r.DeliveryID, r.Outcome, r.Attempts = mm.DeliveryID, OutcomePending, 0
			if err := m.enqueue(tx, &inc, &mm, RollbackReceiver, now, eff); err != nil {
				return err
			}
		}
		inc.Rollback = &r
		return tx.PutIncident(&inc)
	})
	if err != nil {
		// The pending mark is still in the store (the transaction did not
		// commit), so a restart would decide again too.
		d := m.retryLater(key, retry)
		m.logger.Error("cannot record rollback decision; retrying", "incident", id, "err", err, "retry_in", d)
		return fmt.Errorf("notifier: record rollback: %w", err)
	}
	m.retried(key)
	m.apply(ctx, eff)
	return derr
}

// rollbackTimerKey names the retry timer of an incident's rollback decision
// among the escalation timers (which are keyed by incident ID).
func rollbackTimerKey(id string) string { return "rollback\x00" + id }

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
