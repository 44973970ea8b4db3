package pgstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-sh/vigil/notifier"
)

// KV implements notifier.Store: each call is its own statement.
func (s *Store) KV(namespace string) notifier.KV { return &pgKV{s: s, ns: namespace} }

type pgKV struct {
	s  *Store
	ns string
}

func (kv *pgKV) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), kv.s.opts.TxTimeout)
}

func (kv *pgKV) Get(key string) ([]byte, bool, error) {
	ctx, cancel := kv.ctx()
	defer cancel()
	var v []byte
	err := kv.s.pool.QueryRow(ctx, kv.s.q.expand(`SELECT value FROM {kv} WHERE namespace = $1 AND key = $2`), kv.ns, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv %s get: %w", kv.ns, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

func (kv *pgKV) Put(key string, value []byte) error {
	ctx, cancel := kv.ctx()
	defer cancel()
	if value == nil {
		value = []byte{}
	}
	if _, err := kv.s.pool.Exec(ctx, kv.s.q.expand(`INSERT INTO {kv} (namespace, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`), kv.ns, key, value); err != nil {
		return fmt.Errorf("kv %s put: %w", kv.ns, err)
	}
	return nil
}

func (kv *pgKV) Delete(key string) error {
	ctx, cancel := kv.ctx()
	defer cancel()
	if _, err := kv.s.pool.Exec(ctx, kv.s.q.expand(`DELETE FROM {kv} WHERE namespace = $1 AND key = $2`), kv.ns, key); err != nil {
		return fmt.Errorf("kv %s delete: %w", kv.ns, err)
	}
	return nil
}

func (kv *pgKV) List(prefix string) (map[string][]byte, error) {
	ctx, cancel := kv.ctx()
	defer cancel()
	rows, err := kv.s.pool.Query(ctx, kv.s.q.expand(`SELECT key, value FROM {kv} WHERE namespace = $1 AND starts_with(key, $2)`), kv.ns, prefix)
	if err != nil {
		return nil, fmt.Errorf("kv %s list: %w", kv.ns, err)
	}
	out := map[string][]byte{}
	var (
		k string
		v []byte
	)
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		out[k] = append([]byte{}, v...)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("kv %s list: %w", kv.ns, err)
	}
	return out, nil
}

// Write puts and deletes many keys in one round trip and one implicit
// transaction: an upsert of all the puts and a delete of all the dels, one
// statement each (the notifier writes the records of a whole post of
// alerts this way). A record upsert needs no serializable transaction. The
// keys are sorted so that two gateways writing the same keys lock them in
// the same order and never deadlock.
func (kv *pgKV) Write(put map[string][]byte, del []string) error {
	if len(put)+len(del) == 0 {
		return nil
	}
	ctx, cancel := kv.ctx()
	defer cancel()
	b := &pgx.Batch{}
	if len(put) > 0 {
		keys, values := sortedPairs(put)
		b.Queue(kv.s.q.expand(`INSERT INTO {kv} (namespace, key, value)
			SELECT $1, k, v FROM unnest($2::text[], $3::bytea[]) AS w(k, v)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`), kv.ns, keys, values)
	}
	if len(del) > 0 {
		b.Queue(kv.s.q.expand(`DELETE FROM {kv} WHERE namespace = $1 AND key = ANY($2::text[])`), kv.ns, slices.Sorted(slices.Values(del)))
	}
	if err := kv.s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("kv %s write: %w", kv.ns, err)
	}
	return nil
}

// DeleteUnchanged deletes each key of want that still holds its value
// there, in one statement, and returns the keys it kept (another value, or
// none): another gateway may have written one since it was read.
func (kv *pgKV) DeleteUnchanged(want map[string][]byte) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	ctx, cancel := kv.ctx()
	defer cancel()
	keys, values := sortedPairs(want)
	rows, err := kv.s.pool.Query(ctx, kv.s.q.expand(`DELETE FROM {kv} AS t
		USING unnest($2::text[], $3::bytea[]) AS w(k, v)
		WHERE t.namespace = $1 AND t.key = w.k AND t.value = w.v
		RETURNING t.key`), kv.ns, keys, values)
	if err != nil {
		return nil, fmt.Errorf("kv %s delete: %w", kv.ns, err)
	}
	deleted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("kv %s delete: %w", kv.ns, err)
	}
	gone := make(map[string]bool, len(deleted))
	for _, k := range deleted {
		gone[k] = true
	}
	var kept []string
	for _, k := range keys {
		if !gone[k] {
			kept = append(kept, k)
		}
	}
	return kept, nil
}

// sortedPairs returns the keys of kv sorted (two gateways writing the same
// keys lock them in the same order) and their values, nil as empty (the
// column is NOT NULL).
func sortedPairs(kv map[string][]byte) ([]string, [][]byte) {
	keys := slices.Sorted(maps.Keys(kv))
	values := make([][]byte, len(keys))
	for i, k := range keys {
		if values[i] = kv[k]; values[i] == nil {
			values[i] = []byte{}
		}
	}
	return keys, values
}
