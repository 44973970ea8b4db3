// Package postgres is the database collector: it reads PostgreSQL's
// statistics views into the seed's signals (connections, query_duration)
// and a few more, over a small pool with a hard connection limit so that
// vigil never becomes the database's problem.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
)

const (
	// DefaultTimeout bounds one collection, and the connect within it.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxConns is the pool's limit when the config sets none.
	DefaultMaxConns = 2
	// ApplicationName is what the server shows for vigil's connections.
	ApplicationName = "vigil"

	// idleTimeout is short: a scrape every interval reuses the connection,
	// a collector nobody scrapes lets it go.
	idleTimeout = time.Minute
	maxLifetime = 30 * time.Minute
	// healthCheckPeriod is how often the pool closes idle connections that
	// outlived idleTimeout or maxLifetime.
	healthCheckPeriod = 30 * time.Second
)

// errPoolClosed is returned by Update after Close.
var errPoolClosed = errors.New("connection pool is closed")

// Collector reads one PostgreSQL server. It is safe for concurrent use;
// concurrent Updates share the pool and wait for a free connection.
type Collector struct {
	logger  *slog.Logger
	timeout time.Duration
	address string
	redact  *redactor
	pool    *pgxpool.Pool
	closed  atomic.Bool
}

// New returns a Collector for cfg.DSN, a postgres:// or postgresql:// URL
// or a key=value string. It does not connect: a server that is down at
// start is reported by Update. The DSN's password appears in no message.
func New(cfg *config.DatabaseCollectorConfig, logger *slog.Logger) (*Collector, error) {
	return newCollector(cfg, logger, nil)
}

// newCollector is New; tune, if not nil, adjusts the pool's settings
// before the pool is made (tests shorten the idle timeout with it).
func newCollector(cfg *config.DatabaseCollectorConfig, logger *slog.Logger, tune func(*pgxpool.Config)) (*Collector, error) {
	dsn := cfg.DSN.Value()
	r := newRedactor(dsn, "")
	if dsn == "" {
		return nil, errors.New("database collector: dsn is empty (set collectors.database.dsn or dsn_file)")
	}
	// The parse error can quote the DSN; it goes through the redactor,
	// which does not unwrap to it.
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database collector: parse dsn: %w", r.wrap(err))
	}
	cc := pcfg.ConnConfig
	r = newRedactor(dsn, cc.Password)

	timeout := time.Duration(cfg.Timeout)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	cc.ConnectTimeout = timeout
	cc.RuntimeParams["application_name"] = ApplicationName
	// The server gives up on a statement when the collector would, so an
	// abandoned query does not keep running there.
	cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	cc.RuntimeParams["lock_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)

	// The pool's limit counts idle, in-use, opening and closing connections
	// alike, so the collector never holds more than its share of the
	// server's max_connections. pool_* parameters in the DSN are overridden.
	pcfg.MaxConns = int32(min(maxConns, math.MaxInt32))
	pcfg.MinConns = 0
	pcfg.MinIdleConns = 0
	pcfg.MaxConnIdleTime = idleTimeout
	pcfg.MaxConnLifetime = maxLifetime
	pcfg.MaxConnLifetimeJitter = 0
	pcfg.HealthCheckPeriod = healthCheckPeriod
	// Every acquire pings the connection, as the `SELECT 1` Update is
	// documented to run: an idle connection can be dead (the server
	// restarted since), and then the pool closes it and tries the next,
	// ending with a fresh dial whose error is the answer.
	pcfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return true }
	if tune != nil {
		tune(pcfg)
	}

	// NewWithConfig does not connect (MinConns is 0); it fails only on a
	// config it rejects, which could still quote the DSN.
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("database collector: %w", r.wrap(err))
	}

	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		logger:  logger,
		timeout: timeout,
		address: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))),
		redact:  r,
		pool:    pool,
	}
	c.logger.Debug("database collector configured", "address", c.address, "database", cc.Database,
		"user", cc.User, "max_conns", pcfg.MaxConns, "timeout", timeout)
	return c, nil
}

// Address returns the server's host:port, for the `instance` label.
func (c *Collector) Address() string { return c.address }

// Close closes the pool's connections; Update fails after Close. It waits
// for Updates in progress to return their connections, which takes at
// most the collector's timeout.
func (c *Collector) Close() {
	c.closed.Store(true)
	c.pool.Close()
}

// Update sends the server's metrics to ch. It fails, and the scrape's `up`
// becomes 0, when the server does not answer a ping within the timeout.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	if c.closed.Load() {
		return fmt.Errorf("database collector: %s: %w", c.address, errPoolClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		if c.closed.Load() {
			err = errPoolClosed
		}
		return fmt.Errorf("database collector: %s: connect: %w", c.address, c.redact.wrap(err))
	}
	err = c.collect(ctx, conn.Conn(), ch)
	if err != nil && !isServerError(err) && !conn.Conn().IsClosed() {
		// The connection may be in a state the pool cannot see (a failed
		// decode mid-result); closing it makes Release discard it. The
		// pool still counts it until then, so the limit holds.
		closeCtx, closeCancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Conn().Close(closeCtx) // the connection is gone either way
		closeCancel()
	}
	conn.Release()
	if err != nil {
		return fmt.Errorf("database collector: %s: %w", c.address, c.redact.wrap(err))
	}
	return nil
}

// isServerError reports whether err is an error the server sent (a failed
// statement), after which the connection is still good.
func isServerError(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr)
}
