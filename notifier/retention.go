package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// Retention of resolved incidents (storage.incident_retention), as
// implemented here:
//
//   - A resolved incident is deleted once its ResolvedAt is older than the
//     retention; 0 keeps every incident. Open incidents are kept however old.
//   - An incident with a delivery still queued or a rollback decision still
//     pending is kept until they are done: both read it back.
//   - Notify compares a firing with the newest incident of its fingerprint.
//     When that incident's alert has cleared (Alert.ResolvedAt set), it goes
//     with its fingerprint entry and the next firing opens a new incident, as
//     it would have anyway. When it was resolved by hand and its alert has
//     not been seen to clear, it stays: deleting it would reopen the firing
//     that someone closed.
//   - Deletions are chosen in a read-only pass over at most pruneBatch
//     incidents and made in one write transaction per pass, each incident
//     checked again there, so a first prune of a big store never holds the
//     store's one writer for long.

// Retention pacing.
const (
	// pruneBatch bounds the incidents read, and so deleted, per transaction.
	pruneBatch = 1000
	// pruneInterval is how often Run prunes after the first time.
	pruneInterval = time.Hour
)

// PruneIncidents deletes the resolved incidents that
// storage.incident_retention no longer keeps at now and returns how many it
// deleted. Run calls it at start and every hour; it is exported so that
// tests and tools can prune at a time of their choosing.
func (m *Manager) PruneIncidents(now time.Time) (int, error) {
	return m.prune(context.Background(), now)
}

// runRetention prunes at once, then every pruneInterval and whenever a
// reload changes the retention, until ctx is done.
func (m *Manager) runRetention(ctx context.Context) {
	tick := make(chan struct{}, 1)
	for {
		// This prune covers any request that is already waiting.
		drain(tick)
		drain(m.reprune)
		m.pruneAndLog(ctx)
		t := m.clock.AfterFunc(pruneInterval, func() {
			select {
			case tick <- struct{}{}:
			default:
			}
		})
		select {
		case <-tick:
		case <-m.reprune:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

func drain(c chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func (m *Manager) pruneAndLog(ctx context.Context) {
	// Silences are kept a fixed time, whatever the incident retention.
	if n, err := m.pruneSilences(m.clock.Now()); err != nil {
		m.logger.Error("cannot prune expired silences", "err", err)
	} else if n > 0 {
		m.logger.Info("pruned silences expired for over a week", "silences", n)
	}
	n, err := m.prune(ctx, m.clock.Now())
	if n > 0 {
		retention := ""
		if cfg := m.config(); cfg != nil {
			retention = config.Duration(cfg.retention).String()
		}
		m.logger.Info("pruned resolved incidents past their retention", "incidents", n, "retention", retention)
	}
	if err != nil && ctx.Err() == nil {
		m.logger.Error("cannot prune resolved incidents", "err", err)
	}
}

// prune deletes, pass by pass, the incidents that the retention no longer
// keeps at now. It stops early, with ctx's error, when ctx ends.
func (m *Manager) prune(ctx context.Context, now time.Time) (int, error) {
	cfg := m.config()
	if cfg == nil || cfg.retention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-cfg.retention)
	pruned := 0
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return pruned, fmt.Errorf("notifier: prune incidents: %w", err)
		}
		ids, next, err := m.pruneCandidates(cutoff, after)
		if err != nil {
			return pruned, err
		}
		if len(ids) > 0 {
			n, err := m.deleteIncidents(ids, cutoff)
			pruned += n
			m.metrics.pruned.Add(float64(n))
			if err != nil {
				return pruned, err
			}
		}
		if next == "" {
			return pruned, nil
		}
		after = next
	}
}

// pruneCandidates reads up to pruneBatch incidents after the ID after and
// returns those old enough to delete, and the ID to continue after: "" when
// no later incident can be old enough.
func (m *Manager) pruneCandidates(cutoff time.Time, after string) (ids []string, next string, err error) {
	err = m.store.View(func(tx Tx) error {
		ids, next = nil, ""
		page, err := tx.IncidentsAfter(after, pruneBatch)
		if err != nil {
			return err
		}
		for _, inc := range page {
			// IDs sort by creation and nothing resolves before it opens, so
			// no incident from here on is old enough.
			if inc.CreatedAt.After(cutoff) {
				return nil
			}
			if expired(&inc, cutoff) {
				ids = append(ids, inc.ID)
			}
		}
		if len(page) == pruneBatch {
			next = page[len(page)-1].ID
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("notifier: read incidents to prune: %w", err)
	}
	return ids, next, nil
}

// deleteIncidents deletes, in one transaction, those of ids that may still
// go, and returns how many it deleted.
func (m *Manager) deleteIncidents(ids []string, cutoff time.Time) (int, error) {
	n := 0
	err := m.store.Update(func(tx Tx) error {
		n = 0
		busy := map[string]bool{}
		queued, err := tx.Deliveries()
		if err != nil {
			return err
		}
		for _, d := range queued {
			busy[d.IncidentID] = true
		}
		pending, err := tx.RollbackPending()
		if err != nil {
			return err
		}
		for _, id := range pending {
			busy[id] = true
		}
		for _, id := range ids {
			if busy[id] {
				continue
			}
			inc, err := tx.Incident(id)
			if errors.Is(err, ErrNotFound) {
				continue // deleted by a prune running beside this one
			}
			if err != nil {
				return err
			}
			if !expired(&inc, cutoff) {
				continue
			}
			if inc.Alert.ResolvedAt.IsZero() {
				latest, found, err := tx.LatestIncident(inc.Fingerprint)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				if found && latest.ID == inc.ID {
					continue // resolved by hand; its firing may go on
				}
			}
			if err := tx.DeleteIncident(id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("notifier: prune incidents: %w", err)
	}
	return n, nil
}

// expired reports whether an incident is resolved and was resolved before
// cutoff.
func expired(inc *Incident, cutoff time.Time) bool {
	return inc.State == StateResolved && !inc.ResolvedAt.IsZero() && inc.ResolvedAt.Before(cutoff)
}
