package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-sh/vigil/notifier"
)

// View implements notifier.Store: a read-only snapshot.
func (s *Store) View(fn func(tx notifier.Tx) error) error {
	return s.run(pgx.RepeatableRead, true, func(t *pgTx) error { return fn(t) })
}

// Update implements notifier.Store: SERIALIZABLE, rerun after a conflict.
func (s *Store) Update(fn func(tx notifier.Tx) error) error {
	return s.run(pgx.Serializable, false, func(t *pgTx) error { return fn(t) })
}

// pgTx is one transaction attempt. failed keeps the first statement
// error: after it PostgreSQL refuses the rest of the transaction.
type pgTx struct {
	ctx    context.Context
	tx     pgx.Tx
	q      *queries
	failed error
}

func (t *pgTx) fail(err error) error {
	if err != nil && t.failed == nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			t.failed = err
		}
	}
	return err
}

func (t *pgTx) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.tx.Exec(t.ctx, t.q.expand(sql), args...)
	return tag, t.fail(err)
}

// one reads one JSON body into v; false when there is no row.
func (t *pgTx) one(v any, sql string, args ...any) (bool, error) {
	var b []byte
	err := t.tx.QueryRow(t.ctx, t.q.expand(sql), args...).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, t.fail(err)
	}
	return true, json.Unmarshal(b, v)
}

// all reads JSON bodies into a slice.
func all[T any](t *pgTx, what, sql string, args ...any) ([]T, error) {
	rows, err := t.tx.Query(t.ctx, t.q.expand(sql), args...)
	if err != nil {
		return nil, t.fail(fmt.Errorf("read %s: %w", what, err))
	}
	out := []T{}
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decode %s: %w", what, err)
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, t.fail(fmt.Errorf("read %s: %w", what, err))
	}
	return out, nil
}

func (t *pgTx) Incident(id string) (notifier.Incident, error) {
	var inc notifier.Incident
	ok, err := t.one(&inc, `SELECT body FROM {incidents} WHERE id = $1`, id)
	if err != nil {
		return notifier.Incident{}, fmt.Errorf("incident %q: %w", id, err)
	}
	if !ok {
		return notifier.Incident{}, fmt.Errorf("incident %q: %w", id, notifier.ErrNotFound)
	}
	return inc, nil
}

func (t *pgTx) LatestIncident(fp string) (notifier.Incident, bool, error) {
	var inc notifier.Incident
	ok, err := t.one(&inc, `SELECT i.body FROM {fingerprints} f JOIN {incidents} i ON i.id = f.incident_id
		WHERE f.fingerprint = $1`, fp)
	if err != nil {
		return notifier.Incident{}, false, fmt.Errorf("latest incident of %q: %w", fp, err)
	}
	return inc, ok, nil
}

func (t *pgTx) Incidents(state notifier.State) ([]notifier.Incident, error) {
	if state == "" {
		return all[notifier.Incident](t, "incidents", `SELECT body FROM {incidents} ORDER BY id DESC`)
	}
	return all[notifier.Incident](t, "incidents", `SELECT body FROM {incidents} WHERE state = $1 ORDER BY id DESC`, string(state))
}

// OpenDeadlines lists the open incidents' escalation deadlines, read in
// the server from the bodies: the notifier's poll of a shared store runs
// every lease/3 and must not decode every open incident each time.
func (t *pgTx) OpenDeadlines() (map[string]time.Time, error) {
	rows, err := t.tx.Query(t.ctx, t.q.expand(`SELECT id, body->>'nextDeadline' FROM {incidents}
		WHERE state <> 'resolved' AND body ? 'nextDeadline'`))
	if err != nil {
		return nil, t.fail(fmt.Errorf("open deadlines: %w", err))
	}
	out := map[string]time.Time{}
	var id, at string
	if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		ts, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return fmt.Errorf("incident %q: nextDeadline %q: %w", id, at, err)
		}
		if !ts.IsZero() {
			out[id] = ts
		}
		return nil
	}); err != nil {
		return nil, t.fail(fmt.Errorf("open deadlines: %w", err))
	}
	return out, nil
}

// DeliveryIDs lists the queued deliveries' IDs, oldest first.
func (t *pgTx) DeliveryIDs() ([]string, error) {
	rows, err := t.tx.Query(t.ctx, t.q.expand(`SELECT id FROM {deliveries} ORDER BY id`))
	if err != nil {
		return nil, t.fail(fmt.Errorf("delivery ids: %w", err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, t.fail(fmt.Errorf("delivery ids: %w", err))
	}
	return ids, nil
}

func (t *pgTx) PutIncident(inc *notifier.Incident) error {
	b, err := json.Marshal(inc)
	if err != nil {
		return fmt.Errorf("encode incident %q: %w", inc.ID, err)
	}
	if _, err := t.exec(`INSERT INTO {incidents} (id, fingerprint, state, body) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, state = excluded.state, body = excluded.body`,
		inc.ID, inc.Fingerprint, string(inc.State), b); err != nil {
		return fmt.Errorf("write incident %q: %w", inc.ID, err)
	}
	if _, err := t.exec(`INSERT INTO {fingerprints} (fingerprint, incident_id) VALUES ($1, $2)
		ON CONFLICT (fingerprint) DO UPDATE SET incident_id = excluded.incident_id
		WHERE {fingerprints}.incident_id < excluded.incident_id`, inc.Fingerprint, inc.ID); err != nil {
		return fmt.Errorf("index incident %q: %w", inc.ID, err)
	}
	if rb := inc.Rollback; rb != nil && rb.DeliveryID != "" {
		// One rollback per incident: a second decision with another
		// delivery fails the transaction instead of calling twice.
		var cur string
		err := t.tx.QueryRow(t.ctx, t.q.expand(`INSERT INTO {rollbacks} (incident_id, delivery_id) VALUES ($1, $2)
			ON CONFLICT (incident_id) DO UPDATE SET delivery_id = {rollbacks}.delivery_id
			RETURNING delivery_id`), inc.ID, rb.DeliveryID).Scan(&cur)
		if err != nil {
			return t.fail(fmt.Errorf("record rollback of incident %q: %w", inc.ID, err))
		}
		if cur != rb.DeliveryID {
			return fmt.Errorf("incident %q: rollback %q recorded already; refusing a second one (%q)", inc.ID, cur, rb.DeliveryID)
		}
	}
	return nil
}

func (t *pgTx) IncidentsAfter(after string, limit int) ([]notifier.Incident, error) {
	if limit <= 0 {
		return all[notifier.Incident](t, "incidents", `SELECT body FROM {incidents} WHERE id > $1 ORDER BY id`, after)
	}
	return all[notifier.Incident](t, "incidents", `SELECT body FROM {incidents} WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
}

func (t *pgTx) DeleteIncident(id string) error {
	// Every index entry that names the incident goes with it: its group
	// key's, and those of its members and folded alerts (FoldAlert).
	if _, err := t.exec(`DELETE FROM {incidents} WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete incident %q: %w", id, err)
	}
	if _, err := t.exec(`DELETE FROM {fingerprints} WHERE incident_id = $1`, id); err != nil {
		return fmt.Errorf("delete incident %q: %w", id, err)
	}
	if _, err := t.exec(`DELETE FROM {rollbacks} WHERE incident_id = $1`, id); err != nil {
		return fmt.Errorf("delete incident %q: %w", id, err)
	}
	return nil
}

func (t *pgTx) FoldAlert(fp, id string) error {
	if _, err := t.exec(`INSERT INTO {fingerprints} (fingerprint, incident_id) VALUES ($1, $2)
		ON CONFLICT (fingerprint) DO UPDATE SET incident_id = excluded.incident_id`, fp, id); err != nil {
		return fmt.Errorf("fold alert %q into incident %q: %w", fp, id, err)
	}
	return nil
}

func (t *pgTx) UnfoldAlert(fp, id string) error {
	if _, err := t.exec(`DELETE FROM {fingerprints} WHERE fingerprint = $1 AND incident_id = $2`, fp, id); err != nil {
		return fmt.Errorf("unfold alert %q from incident %q: %w", fp, id, err)
	}
	return nil
}

func (t *pgTx) Delivery(id string) (notifier.Delivery, bool, error) {
	var d notifier.Delivery
	ok, err := t.one(&d, `SELECT body FROM {deliveries} WHERE id = $1`, id)
	if err != nil {
		return notifier.Delivery{}, false, fmt.Errorf("delivery %q: %w", id, err)
	}
	return d, ok, nil
}

func (t *pgTx) Deliveries() ([]notifier.Delivery, error) {
	out, err := all[notifier.Delivery](t, "deliveries", `SELECT body FROM {deliveries} ORDER BY id`)
	if len(out) == 0 {
		return nil, err // as bbolt: nil when empty
	}
	return out, err
}

func (t *pgTx) PutDelivery(d *notifier.Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery %q: %w", d.ID, err)
	}
	if _, err := t.exec(`INSERT INTO {deliveries} (id, incident_id, body) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET incident_id = excluded.incident_id, body = excluded.body`, d.ID, d.IncidentID, b); err != nil {
		return fmt.Errorf("write delivery %q: %w", d.ID, err)
	}
	return nil
}

func (t *pgTx) DeleteDelivery(id string) error {
	if _, err := t.exec(`DELETE FROM {deliveries} WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete delivery %q: %w", id, err)
	}
	return nil
}

func (t *pgTx) SetRollbackPending(id string, pending bool) error {
	var err error
	if pending {
		_, err = t.exec(`INSERT INTO {rollback_pending} (incident_id) VALUES ($1) ON CONFLICT DO NOTHING`, id)
	} else {
		_, err = t.exec(`DELETE FROM {rollback_pending} WHERE incident_id = $1`, id)
	}
	if err != nil {
		return fmt.Errorf("mark rollback of %q: %w", id, err)
	}
	return nil
}

func (t *pgTx) RollbackPending() ([]string, error) {
	rows, err := t.tx.Query(t.ctx, t.q.expand(`SELECT incident_id FROM {rollback_pending} ORDER BY incident_id`))
	if err != nil {
		return nil, t.fail(fmt.Errorf("read pending rollbacks: %w", err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, t.fail(fmt.Errorf("read pending rollbacks: %w", err))
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

func (t *pgTx) Silence(id string) (notifier.Silence, error) {
	var s notifier.Silence
	ok, err := t.one(&s, `SELECT body FROM {silences} WHERE id = $1`, id)
	if err != nil {
		return notifier.Silence{}, fmt.Errorf("silence %q: %w", id, err)
	}
	if !ok {
		return notifier.Silence{}, fmt.Errorf("silence %q: %w", id, notifier.ErrNotFound)
	}
	return s, nil
}

func (t *pgTx) Silences() ([]notifier.Silence, error) {
	return all[notifier.Silence](t, "silences", `SELECT body FROM {silences} ORDER BY id DESC`)
}

func (t *pgTx) PutSilence(s *notifier.Silence) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode silence %q: %w", s.ID, err)
	}
	if _, err := t.exec(`INSERT INTO {silences} (id, body) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body`, s.ID, b); err != nil {
		return fmt.Errorf("write silence %q: %w", s.ID, err)
	}
	return nil
}

func (t *pgTx) DeleteSilence(id string) error {
	if _, err := t.exec(`DELETE FROM {silences} WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete silence %q: %w", id, err)
	}
	return nil
}
