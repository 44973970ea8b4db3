package notifier

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// Raise opens an incident for an alert that does not come from vigil's rules
// (deploy analysis, for one): a.Source must say where it comes from, so that
// the restart reconcile leaves the incident alone (nothing but a person ends
// it). The fingerprint is made from a.Labels. When an incident of that
// fingerprint is open, or one was opened for the same firing (same
// ActiveAt), Raise opens nothing and returns that incident: a caller that
// crashed before it noted the incident may call again. A new incident is
// escalated and, in production, asked about a rollback like any other.
func (m *Manager) Raise(ctx context.Context, a Alert) (Incident, error) {
	if a.Source == "" || a.Source == SourceRules {
		return Incident{}, errors.New("notifier: Raise needs an alert source other than the rules")
	}
	cfg := m.config()
	if cfg == nil {
		return Incident{}, errors.New("notifier: no config applied")
	}
	a.Fingerprint = fingerprint(labels.FromMap(a.Labels))
	if a.Name == "" {
		a.Name = a.Labels[labels.AlertName]
	}
	now := m.clock.Now()
	var (
		eff *effects
		id  string
	)
	err := m.store.Update(func(tx Tx) error {
		eff = newEffects()
		latest, found, err := tx.LatestIncident(a.Fingerprint)
		if err != nil {
			return err
		}
		if found && (latest.State != StateResolved || latest.Alert.ActiveAt.Equal(a.ActiveAt)) {
			id = latest.ID
			return nil
		}
		// One incident per raised alert: group_by is for alerts of the rules
		// and of senders, which have replicas.
		id, err = m.open(tx, cfg, a.Fingerprint, a, []Member{memberOf(a)}, nil, now, eff)
		return err
	})
	if err != nil {
		return Incident{}, fmt.Errorf("notifier: raise %s: %w", a.Name, err)
	}
	m.apply(ctx, eff)
	return m.Incident(id)
}
