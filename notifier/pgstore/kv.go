package pgstore

import (
	"context"
	"errors"
	"fmt"

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

// Write puts and deletes many keys in one transaction and one round trip
// (the notifier writes the records of a whole post of alerts this way).
func (kv *pgKV) Write(put map[string][]byte, del []string) error {
	if len(put)+len(del) == 0 {
		return nil
	}
	ctx, cancel := kv.ctx()
	defer cancel()
	b := &pgx.Batch{}
	upsert := kv.s.q.expand(`INSERT INTO {kv} (namespace, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`)
	for k, v := range put {
		if v == nil {
			v = []byte{}
		}
		b.Queue(upsert, kv.ns, k, v)
	}
	remove := kv.s.q.expand(`DELETE FROM {kv} WHERE namespace = $1 AND key = $2`)
	for _, k := range del {
		b.Queue(remove, kv.ns, k)
	}
	err := pgx.BeginFunc(ctx, kv.s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("kv %s write: %w", kv.ns, err)
	}
	return nil
}
