package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// errPoolClosed is returned by acquire after Close.
var errPoolClosed = errors.New("connection pool is closed")

// pool is a small connection pool with a hard limit on open connections
// (idle and in use together), so the collector never holds more than its
// share of max_connections. pgxpool would do, but it needs
// github.com/jackc/puddle/v2, which the module does not require; the
// collector needs only acquire, release and idle expiry.
type pool struct {
	cfg         *pgx.ConnConfig
	idleTimeout time.Duration
	maxLifetime time.Duration

	// slots holds one token per open or opening connection.
	slots chan struct{}

	mtx    sync.Mutex
	idle   []*poolConn // most recently used last
	closed bool
	stats  poolStats

	stop chan struct{}
	done chan struct{}
}

// poolConn is one connection and its bookkeeping.
type poolConn struct {
	conn      *pgx.Conn
	created   time.Time
	idleSince time.Time
}

// poolStats are counters for tests and benchmarks.
type poolStats struct {
	dials   int // connections opened
	open    int // connections open now
	maxOpen int // high-water mark of open
}

func newPool(cfg *pgx.ConnConfig, maxConns int, idleTimeout, maxLifetime time.Duration) *pool {
	p := &pool{
		cfg:         cfg,
		idleTimeout: idleTimeout,
		maxLifetime: maxLifetime,
		slots:       make(chan struct{}, maxConns),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	go p.reapLoop()
	return p
}

// acquire returns an idle connection or dials a new one when fewer than
// the limit are open; otherwise it waits for a release or ctx. reused
// says whether the connection was idle in the pool: it may have died
// since (the server restarted), so the caller retries once on a fresh one.
func (p *pool) acquire(ctx context.Context) (pc *poolConn, reused bool, err error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	// Stale connections are closed one at a time while this caller holds a
	// slot, so a close in progress still counts against the limit.
	for {
		c, err := p.popIdle()
		if err != nil {
			<-p.slots
			return nil, false, err
		}
		if c == nil {
			break
		}
		if !p.expired(c, time.Now()) && !c.conn.IsClosed() {
			return c, true, nil
		}
		p.closeConn(c)
	}
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	p.mtx.Lock()
	p.stats.dials++
	p.stats.open++
	p.stats.maxOpen = max(p.stats.maxOpen, p.stats.open)
	p.mtx.Unlock()
	return &poolConn{conn: conn, created: time.Now()}, false, nil
}

// release returns a connection to the pool, or closes it when it is broken,
// too old, or the pool is closed. The slot is freed only after the close,
// so the limit holds for connections the server still sees.
func (p *pool) release(pc *poolConn, broken bool) {
	now := time.Now()
	p.mtx.Lock()
	keep := !broken && !p.closed && !pc.conn.IsClosed() && now.Sub(pc.created) < p.maxLifetime
	if keep {
		pc.idleSince = now
		p.idle = append(p.idle, pc)
	}
	p.mtx.Unlock()
	if !keep {
		p.closeConn(pc)
	}
	<-p.slots
}

// popIdle takes the most recently used idle connection, or nil.
func (p *pool) popIdle() (*poolConn, error) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	if len(p.idle) == 0 {
		return nil, nil
	}
	c := p.idle[len(p.idle)-1]
	p.idle = p.idle[:len(p.idle)-1]
	return c, nil
}

// expired reports whether an idle connection should be closed.
func (p *pool) expired(c *poolConn, now time.Time) bool {
	return now.Sub(c.idleSince) >= p.idleTimeout || now.Sub(c.created) >= p.maxLifetime
}

// closeConn says goodbye to the server, briefly: a dead server must not
// hold up the caller.
func (p *pool) closeConn(c *poolConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.conn.Close(ctx) // the connection is gone either way
	p.mtx.Lock()
	p.stats.open--
	p.mtx.Unlock()
}

// reapLoop closes idle connections that outlived idleTimeout, so a
// collector that is no longer scraped lets its connections go.
func (p *pool) reapLoop() {
	defer close(p.done)
	t := time.NewTicker(max(p.idleTimeout/2, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.reap()
		}
	}
}

// reap closes expired idle connections. It holds a slot while it closes
// them, as acquire does; when every slot is in use there is nothing idle
// worth reaping.
func (p *pool) reap() {
	select {
	case p.slots <- struct{}{}:
	default:
		return
	}
	defer func() { <-p.slots }()
	for {
		p.mtx.Lock()
		var stale *poolConn
		now := time.Now()
		for i, c := range p.idle {
			if p.expired(c, now) {
				stale = c
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
		p.mtx.Unlock()
		if stale == nil {
			return
		}
		p.closeConn(stale)
	}
}

// snapshot returns the pool's counters.
func (p *pool) snapshot() poolStats {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	return p.stats
}

// close closes the idle connections and makes acquire fail; connections in
// use are closed when they are released.
func (p *pool) close() {
	p.mtx.Lock()
	if p.closed {
		p.mtx.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mtx.Unlock()
	close(p.stop)
	<-p.done
	for _, c := range idle {
		p.closeConn(c)
	}
}
