package pgstore

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Incr implements notifier.AtomicKV in one statement: the row lock of the
// upsert makes concurrent increments from other gateways wait, not lose.
// A value that is not a decimal integer fails the cast, and the statement.
func (kv *pgKV) Incr(key string, delta int64) (int64, error) {
	ctx, cancel := kv.ctx()
	defer cancel()
	var v []byte
	err := kv.s.pool.QueryRow(ctx, kv.s.q.expand(`INSERT INTO {kv} AS t (namespace, key, value) VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'))
		ON CONFLICT (namespace, key) DO UPDATE
		SET value = convert_to((coalesce(nullif(convert_from(t.value, 'UTF8'), ''), '0')::bigint + $3::bigint)::text, 'UTF8')
		RETURNING value`), kv.ns, key, delta).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("kv %s incr %s: %w", kv.ns, key, err)
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("kv %s incr %s: %q: %w", kv.ns, key, v, err)
	}
	return n, nil
}

// PutIfAbsent implements notifier.AtomicKV: the primary key lets one
// insert of a key win.
func (kv *pgKV) PutIfAbsent(key string, value []byte) (bool, error) {
	if value == nil {
		value = []byte{}
	}
	return kv.claim("put if absent", key, `INSERT INTO {kv} (namespace, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (namespace, key) DO NOTHING RETURNING true`, kv.ns, key, value)
}

// CompareAndSwap implements notifier.AtomicKV: the update rechecks the
// value under the row lock, so of two gateways swapping from the same
// value, one does.
func (kv *pgKV) CompareAndSwap(key string, old, value []byte) (bool, error) {
	if value == nil {
		value = []byte{}
	}
	if old == nil {
		old = []byte{}
	}
	return kv.claim("compare and swap", key, `UPDATE {kv} SET value = $4
		WHERE namespace = $1 AND key = $2 AND value = $3 RETURNING true`, kv.ns, key, old, value)
}

// claim runs a statement that returns a row when it wrote.
func (kv *pgKV) claim(op, key, sql string, args ...any) (bool, error) {
	ctx, cancel := kv.ctx()
	defer cancel()
	var done bool
	err := kv.s.pool.QueryRow(ctx, kv.s.q.expand(sql), args...).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kv %s %s %s: %w", kv.ns, op, key, err)
	}
	return done, nil
}
