// Package pgstore is a notifier.Store on PostgreSQL, so that two or more
// gateways share incidents, deliveries, silences and the key-value spaces
// (runtime users and roles, the audit log, deploys), and one of them sends
// each delivery: it implements notifier.Leaser with claims taken by
// FOR UPDATE SKIP LOCKED and kept by a lease.
//
// Every object lives in one schema (Options.Schema, default "vigil"),
// created and migrated at Open under the table vigil_schema_version.
// Incidents, deliveries and silences are stored whole as JSONB, so new
// fields need no migration. Update runs SERIALIZABLE and retries on a
// serialization failure or a deadlock (and on a violation of the open
// incident key, which a concurrent writer of the same alert causes): the
// second gateway to record an alert finds the first's incident.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/notifier"
)

// Defaults of Options.
const (
	DefaultSchema     = "vigil"
	DefaultMaxRetries = 30
	DefaultTxTimeout  = 30 * time.Second
	// DefaultMaxConns bounds the pool; the notifier's workers, committer,
	// API and poll loop share it.
	DefaultMaxConns = 10
)

// Options configure a Store.
type Options struct {
	// Schema holds every table (default "vigil"); created when missing.
	Schema string
	// MaxRetries bounds the reruns of a transaction that lost a conflict
	// (default 30).
	MaxRetries int
	// TxTimeout bounds one transaction attempt (default 30s).
	TxTimeout time.Duration
	// MaxConns bounds the connection pool (default 10).
	MaxConns int32
}

// Store is the PostgreSQL notifier.Store. Open it with Open.
type Store struct {
	pool    *pgxpool.Pool
	opts    Options
	logger  *slog.Logger
	q       queries
	metrics *notifier.StoreMetrics
	desc    string
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to dsn, creates or migrates the schema and returns the
// Store; its metrics go on reg (when not nil).
func Open(ctx context.Context, dsn string, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if !schemaName.MatchString(opts.Schema) {
		return nil, fmt.Errorf("pgstore: schema %q: lower-case letters, digits and _ only", opts.Schema)
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.TxTimeout <= 0 {
		opts.TxTimeout = DefaultTxTimeout
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: name the problem, not the value.
		return nil, errors.New("pgstore: cannot parse the DSN (postgres://user@host:port/database?...)")
	}
	cfg.MaxConns = opts.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := &Store{
		pool:    pool,
		opts:    opts,
		logger:  logger,
		q:       newQueries(opts.Schema),
		metrics: notifier.NewStoreMetrics(reg),
		desc:    describe(cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, opts.Schema),
	}
	pctx, cancel := context.WithTimeout(ctx, opts.TxTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connect to %s: %w", s.desc, err)
	}
	if err := s.migrate(pctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func describe(host string, port uint16, db, schema string) string {
	u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", host, port), Path: "/" + db}
	return u.String() + " (schema " + schema + ")"
}

// Describe implements notifier.Leaser.
func (s *Store) Describe() string { return s.desc }

// Close implements notifier.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// PostgreSQL error codes a transaction is rerun on.
const (
	codeSerialization   = "40001"
	codeDeadlock        = "40P01"
	codeUniqueViolation = "23505"
)

// retryable returns the code of an error that a rerun of the transaction
// may not meet again, or "".
func retryable(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return ""
	}
	switch pe.Code {
	case codeSerialization, codeDeadlock:
		return pe.Code
	case codeUniqueViolation:
		// Two gateways opened an incident for one alert at once: the
		// rerun finds the other's.
		if pe.ConstraintName == "incidents_open_key" {
			return pe.Code
		}
	}
	return ""
}

// run runs fn in a transaction at iso, rerunning it when it lost a
// conflict with another transaction.
func (s *Store) run(iso pgx.TxIsoLevel, readOnly bool, fn func(t *pgTx) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = s.once(iso, readOnly, fn)
		code := retryable(err)
		if code == "" {
			return err
		}
		s.metrics.Retries.WithLabelValues(code).Inc()
		if attempt >= s.opts.MaxRetries {
			return fmt.Errorf("pgstore: transaction lost %d conflicts in a row: %w", attempt+1, err)
		}
		// A little jitter so that the two losers of a conflict do not
		// meet again.
		time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) * int64(2+min(attempt, 20)))))
	}
}

func (s *Store) once(iso pgx.TxIsoLevel, readOnly bool, fn func(t *pgTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.TxTimeout)
	defer cancel()
	mode := pgx.ReadWrite
	if readOnly {
		mode = pgx.ReadOnly
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso, AccessMode: mode})
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	t := &pgTx{ctx: ctx, tx: tx, q: &s.q}
	ferr := fn(t)
	if ferr == nil && t.failed != nil {
		// fn went on after a failed statement: the transaction is
		// aborted anyway.
		ferr = t.failed
	}
	if ferr != nil {
		_ = tx.Rollback(ctx)
		if t.failed != nil && retryable(t.failed) != "" && retryable(ferr) == "" {
			// fn replaced the cause; rerun on the first failure.
			return t.failed
		}
		return ferr
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return nil
}

// sanitize quotes a schema-qualified name.
func sanitize(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

// queries are the statements, with the schema filled in.
type queries struct {
	schema                                                        string
	version, incidents, fingerprints, deliveries, rollbackPending string
	rollbacks, silences, kv, claims, peers                        string
}

func newQueries(schema string) queries {
	return queries{
		schema:          pgx.Identifier{schema}.Sanitize(),
		version:         sanitize(schema, "vigil_schema_version"),
		incidents:       sanitize(schema, "incidents"),
		fingerprints:    sanitize(schema, "fingerprints"),
		deliveries:      sanitize(schema, "deliveries"),
		rollbackPending: sanitize(schema, "rollback_pending"),
		rollbacks:       sanitize(schema, "rollbacks"),
		silences:        sanitize(schema, "silences"),
		kv:              sanitize(schema, "kv"),
		claims:          sanitize(schema, "claims"),
		peers:           sanitize(schema, "peers"),
	}
}

// expand replaces {name} with the quoted table names.
func (q *queries) expand(sql string) string {
	return strings.NewReplacer(
		"{schema}", q.schema,
		"{version}", q.version,
		"{incidents}", q.incidents,
		"{fingerprints}", q.fingerprints,
		"{deliveries}", q.deliveries,
		"{rollback_pending}", q.rollbackPending,
		"{rollbacks}", q.rollbacks,
		"{silences}", q.silences,
		"{kv}", q.kv,
		"{claims}", q.claims,
		"{peers}", q.peers,
	).Replace(sql)
}
