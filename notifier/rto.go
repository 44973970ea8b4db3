package notifier

import (
	"slices"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// RTO escalation (disaster_recovery.rto): an incident of a down alert
// (disaster_recovery.down_alerts: instance_down, database_down, app_down)
// still open at rto_escalation (default half) of the rto since it opened
// is escalated straight to the ladder's last level, whatever the levels'
// waits say; each incident records its RTO deadline (Incident.RTODeadline)
// so the page shows the time left. Acknowledging stops this step as it
// stops every other (escalation.rearm brings it back); a silence holds it.

// rtoPolicy is the part of disaster_recovery the escalation follows; the
// zero value does nothing.
type rtoPolicy struct {
	rto    time.Duration
	at     float64
	alerts []string
}

func newRTOPolicy(dr *config.DisasterRecoveryConfig) rtoPolicy {
	if dr == nil || dr.RTO <= 0 {
		return rtoPolicy{}
	}
	return rtoPolicy{rto: time.Duration(dr.RTO), at: dr.RTOEscalationFraction(), alerts: dr.DownAlertNames()}
}

// applies reports whether inc counts against the rto.
func (p rtoPolicy) applies(inc *Incident) bool {
	return p.rto > 0 && inc.Storm == nil && slices.Contains(p.alerts, inc.Alert.Name)
}

// escalateAt is when inc goes to the last level.
func (p rtoPolicy) escalateAt(inc *Incident) time.Time {
	return inc.CreatedAt.Add(time.Duration(float64(p.rto) * p.at))
}

// rtoDeadline records inc's RTO deadline and returns its next deadline
// after level was notified: next, or the RTO escalation when that comes
// first and level is not the last.
func (c *runtimeConfig) rtoDeadline(inc *Incident, level int, next time.Time) time.Time {
	p := c.rto
	if !p.applies(inc) {
		return next
	}
	if inc.RTODeadline.IsZero() {
		inc.RTODeadline = inc.CreatedAt.Add(p.rto)
	}
	if level >= len(c.ladder())-1 {
		return next
	}
	if at := p.escalateAt(inc); next.IsZero() || at.Before(next) {
		return at
	}
	return next
}

// rtoDue reports whether inc, below the last level, is due for the RTO
// escalation at now.
func (c *runtimeConfig) rtoDue(inc *Incident, now time.Time) bool {
	p := c.rto
	return p.applies(inc) && !now.Before(p.escalateAt(inc))
}

// escalateForRTO notifies the last level of inc, skipping the levels
// between: the incident is running out of its RTO.
func (m *Manager) escalateForRTO(tx Tx, cfg *runtimeConfig, inc *Incident, now time.Time, eff *effects) error {
	last := len(cfg.ladder()) - 1
	name, id, left := cfg.ladder()[last].Name, inc.ID, inc.RTODeadline.Sub(now)
	eff.after = append(eff.after, func() {
		m.metrics.escalations.WithLabelValues(name).Inc()
		m.logger.Warn("down incident nearing its RTO; escalating to the last level", "incident", id, "level", name, "rto_left", left)
	})
	return m.notifyLevel(tx, cfg, inc, last, KindEscalation, now, eff)
}
