package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-sh/vigil/notifier"
)

var _ notifier.Leaser = (*Store)(nil)

const (
	claimWon      = notifier.ClaimWon
	claimLost     = notifier.ClaimLost
	claimTakeover = notifier.ClaimTakeover
)

func (s *Store) short() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.TxTimeout)
}

// Claim implements notifier.Leaser. The claim row is locked with
// FOR UPDATE SKIP LOCKED: a row another gateway is claiming right now is
// skipped, and the insert that follows finds it there, so the claim is
// lost without waiting.
func (s *Store) Claim(kind, id, owner string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.short()
	defer cancel()
	result := claimLost
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			cur     string
			expired bool
		)
		err := tx.QueryRow(ctx, s.q.expand(`SELECT owner, expires_at <= now() FROM {claims}
			WHERE kind = $1 AND id = $2 FOR UPDATE SKIP LOCKED`), kind, id).Scan(&cur, &expired)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			tag, err := tx.Exec(ctx, s.q.expand(`INSERT INTO {claims} (kind, id, owner, expires_at)
				VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') ON CONFLICT DO NOTHING`), kind, id, owner, ttl.Milliseconds())
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				result = claimWon
			}
			return nil
		case err != nil:
			return err
		case cur != owner && !expired:
			return nil
		}
		if _, err := tx.Exec(ctx, s.q.expand(`UPDATE {claims} SET owner = $3, expires_at = now() + $4 * interval '1 millisecond'
			WHERE kind = $1 AND id = $2`), kind, id, owner, ttl.Milliseconds()); err != nil {
			return err
		}
		result = claimWon
		if cur != owner {
			result = claimTakeover
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: claim %s %s: %w", kind, id, err)
	}
	s.metrics.Claims.WithLabelValues(kind, result).Inc()
	if result == claimTakeover {
		s.metrics.Failovers.WithLabelValues(kind).Inc()
	}
	return result != claimLost, nil
}

// Release implements notifier.Leaser.
func (s *Store) Release(kind, id, owner string) error {
	ctx, cancel := s.short()
	defer cancel()
	if _, err := s.pool.Exec(ctx, s.q.expand(`DELETE FROM {claims} WHERE kind = $1 AND id = $2 AND owner = $3`), kind, id, owner); err != nil {
		return fmt.Errorf("pgstore: release %s %s: %w", kind, id, err)
	}
	return nil
}

// Renew implements notifier.Leaser. It also forgets claims and peers whose
// lease ended long ago (ten leases).
func (s *Store) Renew(owner string, ttl time.Duration) (int, error) {
	ctx, cancel := s.short()
	defer cancel()
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.q.expand(`UPDATE {claims} SET expires_at = now() + $2 * interval '1 millisecond' WHERE owner = $1`), owner, ttl.Milliseconds())
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, s.q.expand(`INSERT INTO {peers} (owner, renewed_at, expires_at) VALUES ($1, now(), now() + $2 * interval '1 millisecond')
			ON CONFLICT (owner) DO UPDATE SET renewed_at = excluded.renewed_at, expires_at = excluded.expires_at`), owner, ttl.Milliseconds()); err != nil {
			return err
		}
		gc := 10 * ttl
		if _, err := tx.Exec(ctx, s.q.expand(`DELETE FROM {claims} WHERE expires_at < now() - $1 * interval '1 millisecond'`), gc.Milliseconds()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, s.q.expand(`DELETE FROM {peers} WHERE expires_at < now() - $1 * interval '1 millisecond'`), gc.Milliseconds())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: renew lease of %s: %w", owner, err)
	}
	s.metrics.Renewals.Inc()
	return int(n), nil
}

// Peers implements notifier.Leaser.
func (s *Store) Peers() ([]notifier.Peer, error) {
	ctx, cancel := s.short()
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.expand(`SELECT p.owner, p.renewed_at, p.expires_at,
			(SELECT count(*) FROM {claims} c WHERE c.owner = p.owner AND c.expires_at > now())
		FROM {peers} p WHERE p.expires_at > now() ORDER BY p.owner`))
	if err != nil {
		return nil, fmt.Errorf("pgstore: peers: %w", err)
	}
	var (
		out []notifier.Peer
		p   notifier.Peer
		n   int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&p.Owner, &p.RenewedAt, &p.ExpiresAt, &n}, func() error {
		p.Claims = int(n)
		out = append(out, p)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("pgstore: peers: %w", err)
	}
	return out, nil
}
