package web

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of the listener's connections. A client that sends its headers or
// its body slowly, or not at all, holds a connection (and a goroutine) only
// until readHeaderTimeout or readTimeout; one address holds at most
// maxConnsPerClient connections at once, so that it cannot take them all.
const (
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds the reading of a whole request, body included;
	// bodies are small (64 KiB, or query.max_form_size).
	readTimeout = 20 * time.Second
	// writeMargin is added to query.timeout for the write deadline: a
	// query may run until its timeout and still be answered, while a client
	// that does not read its answer lets go of it then.
	writeMargin = 30 * time.Second
	// idleTimeout closes keep-alive connections nobody uses.
	idleTimeout = 2 * time.Minute
	// maxConnsPerClient bounds one address's open connections. Grafana
	// behind an ingress is one address: it needs a connection per query
	// in flight, far fewer than this.
	maxConnsPerClient = 128
)

// serverLimits are the listener's bounds; tests shorten them.
type serverLimits struct {
	readHeaderTimeout, readTimeout, idleTimeout time.Duration
	// writeTimeout is computed from query.timeout when zero.
	writeTimeout      time.Duration
	maxConnsPerClient int
}

func defaultServerLimits() serverLimits {
	return serverLimits{
		readHeaderTimeout: readHeaderTimeout,
		readTimeout:       readTimeout,
		idleTimeout:       idleTimeout,
		maxConnsPerClient: maxConnsPerClient,
	}
}

// clientLimitListener closes, as soon as they are accepted, connections of
// an address that already holds max.
type clientLimitListener struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mtx  sync.Mutex
	open map[string]int
}

func newClientLimitListener(ln net.Listener, max int, refused prometheus.Counter) *clientLimitListener {
	return &clientLimitListener{Listener: ln, max: max, refused: refused, open: map[string]int{}}
}

// Accept implements net.Listener.
func (l *clientLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mtx.Lock()
		if l.open[host] >= l.max {
			l.mtx.Unlock()
			l.refused.Inc()
			_ = c.Close()
			continue
		}
		l.open[host]++
		l.mtx.Unlock()
		return &countedConn{Conn: c, release: sync.OnceFunc(func() { l.release(host) })}, nil
	}
}

func (l *clientLimitListener) release(host string) {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// countedConn gives its place back once closed.
type countedConn struct {
	net.Conn
	release func()
}

// Close implements net.Conn.
func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
