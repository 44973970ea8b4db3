package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are applied in order; migrations[i] takes the schema from
// version i to i+1. Append only: a released migration never changes.
//
// Text keys use the "C" collation so that IDs sort by their bytes, as in
// bbolt. The open incident key (incidents_open_key) is the unique index
// that makes the second gateway to record an alert join the first's
// incident; rollbacks is keyed by incident so that an incident's rollback
// is recorded once.
var migrations = []string{
	`CREATE TABLE {incidents} (
		id text COLLATE "C" PRIMARY KEY,
		fingerprint text COLLATE "C" NOT NULL,
		state text NOT NULL,
		body jsonb NOT NULL
	);
	CREATE UNIQUE INDEX incidents_open_key ON {incidents} (fingerprint) WHERE state <> 'resolved';
	CREATE INDEX incidents_state ON {incidents} (state, id);
	CREATE TABLE {fingerprints} (
		fingerprint text COLLATE "C" PRIMARY KEY,
		incident_id text COLLATE "C" NOT NULL
	);
	CREATE TABLE {deliveries} (
		id text COLLATE "C" PRIMARY KEY,
		incident_id text COLLATE "C" NOT NULL,
		body jsonb NOT NULL
	);
	CREATE TABLE {rollback_pending} (
		incident_id text COLLATE "C" PRIMARY KEY
	);
	CREATE TABLE {rollbacks} (
		incident_id text COLLATE "C" PRIMARY KEY,
		delivery_id text COLLATE "C" NOT NULL
	);
	CREATE TABLE {silences} (
		id text COLLATE "C" PRIMARY KEY,
		body jsonb NOT NULL
	);
	CREATE TABLE {kv} (
		namespace text COLLATE "C" NOT NULL,
		key text COLLATE "C" NOT NULL,
		value bytea NOT NULL,
		PRIMARY KEY (namespace, key)
	);
	CREATE TABLE {claims} (
		kind text COLLATE "C" NOT NULL,
		id text COLLATE "C" NOT NULL,
		owner text COLLATE "C" NOT NULL,
		expires_at timestamptz NOT NULL,
		PRIMARY KEY (kind, id)
	);
	CREATE INDEX claims_owner ON {claims} (owner);
	CREATE TABLE {peers} (
		owner text COLLATE "C" PRIMARY KEY,
		renewed_at timestamptz NOT NULL,
		expires_at timestamptz NOT NULL
	);`,
}

// SchemaVersion is the version this build migrates to.
var SchemaVersion = len(migrations)

// migrate creates the schema and applies the missing migrations, one
// gateway at a time (an advisory lock), in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "vigil-migrate:"+s.opts.Schema); err != nil {
		return fmt.Errorf("pgstore: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, s.q.expand(`CREATE SCHEMA IF NOT EXISTS {schema};
		CREATE TABLE IF NOT EXISTS {version} (version integer NOT NULL)`)); err != nil {
		return fmt.Errorf("pgstore: migrate: create schema %s: %w", s.opts.Schema, err)
	}
	var version int
	err = tx.QueryRow(ctx, s.q.expand(`SELECT version FROM {version}`)).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, s.q.expand(`INSERT INTO {version} VALUES (0)`)); err != nil {
			return fmt.Errorf("pgstore: migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("pgstore: migrate: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("pgstore: schema %s is at version %d, newer than this vigil's %d: upgrade vigil",
			s.opts.Schema, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, s.q.expand(migrations[v])); err != nil {
			return fmt.Errorf("pgstore: migrate schema %s to version %d: %w", s.opts.Schema, v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, s.q.expand(`UPDATE {version} SET version = $1`), len(migrations)); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate: commit: %w", err)
	}
	if version < len(migrations) {
		s.logger.Info("incident store schema migrated", "schema", s.opts.Schema, "from", version, "to", len(migrations))
	}
	return nil
}
