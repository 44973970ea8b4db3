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
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
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
)

// Collector reads one PostgreSQL server. It is safe for concurrent use;
// concurrent Updates share the pool and wait for a free connection.
type Collector struct {
	logger  *slog.Logger
	timeout time.Duration
	address string
	redact  *redactor
	pool    *pool
}

// New returns a Collector for cfg.DSN, a postgres:// or postgresql:// URL
// or a key=value string. It does not connect: a server that is down at
// start is reported by Update. The DSN's password appears in no message.
func New(cfg *config.DatabaseCollectorConfig, logger *slog.Logger) (*Collector, error) {
	dsn := cfg.DSN.Value()
	r := newRedactor(dsn, "")
	if dsn == "" {
		return nil, errors.New("database collector: dsn is empty (set collectors.database.dsn or dsn_file)")
	}
	pcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database collector: parse dsn: %w", r.wrap(err))
	}
	r = newRedactor(dsn, pcfg.Password)

	timeout := time.Duration(cfg.Timeout)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	pcfg.ConnectTimeout = timeout
	pcfg.RuntimeParams["application_name"] = ApplicationName
	// The server gives up on a statement when the collector would, so an
	// abandoned query does not keep running there.
	pcfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	pcfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)

	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		logger:  logger,
		timeout: timeout,
		address: net.JoinHostPort(pcfg.Host, strconv.Itoa(int(pcfg.Port))),
		redact:  r,
		pool:    newPool(pcfg, maxConns, idleTimeout, maxLifetime),
	}
	c.logger.Debug("database collector configured", "address", c.address, "database", pcfg.Database,
		"user", pcfg.User, "max_conns", maxConns, "timeout", timeout)
	return c, nil
}

// Address returns the server's host:port, for the `instance` label.
func (c *Collector) Address() string { return c.address }

// Close closes the pool's connections. Update fails after Close.
func (c *Collector) Close() { c.pool.close() }

// Update sends the server's metrics to ch. It fails, and the scrape's `up`
// becomes 0, when the server does not answer `SELECT 1` within the timeout.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pc, err := c.ready(ctx)
	if err != nil {
		return fmt.Errorf("database collector: %s: %w", c.address, c.redact.wrap(err))
	}
	err = c.collect(ctx, pc.conn, ch)
	c.pool.release(pc, err != nil && !isServerError(err))
	if err != nil {
		return fmt.Errorf("database collector: %s: %w", c.address, c.redact.wrap(err))
	}
	return nil
}

// ready returns a connection that has just answered `SELECT 1`. An idle
// connection can be dead (the server restarted since); then the next one
// is tried, ending with a fresh dial, whose error is the answer.
func (c *Collector) ready(ctx context.Context) (*poolConn, error) {
	for {
		pc, reused, err := c.pool.acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		var one int
		err = pc.conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		if err == nil {
			return pc, nil
		}
		c.pool.release(pc, true)
		if !reused || ctx.Err() != nil {
			return nil, fmt.Errorf("SELECT 1: %w", err)
		}
		c.logger.Debug("idle database connection failed, trying another", "err", c.redact.wrap(err))
	}
}

// isServerError reports whether err is an error the server sent (a failed
// statement), after which the connection is still good.
func isServerError(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr)
}
