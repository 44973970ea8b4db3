package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-sh/vigil/collector"
)

// loopbackMetrics is where vigil scrapes itself when its listener speaks
// TLS: the scrape manager would need the server's CA and name to scrape
// https://127.0.0.1, and without the self-scrape neither vigil's own metrics
// nor the host, database and probe collectors (served on
// /metrics/collectors/<name> and scraped from there) would be stored. It is
// plain HTTP on 127.0.0.1 with a port the kernel picks, and serves only the
// metrics path and the collectors' paths, which the main listener serves to
// anyone without a token as well.
type loopbackMetrics struct {
	ln   net.Listener
	path atomic.Pointer[string] // the configured metrics path
}

func newLoopbackMetrics(metricsPath string) (*loopbackMetrics, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on 127.0.0.1 for the self-scrape: %w", err)
	}
	l := &loopbackMetrics{ln: ln}
	l.setPath(metricsPath)
	return l, nil
}

// addr is the self-scrape target.
func (l *loopbackMetrics) addr() string { return l.ln.Addr().String() }

// setPath follows metrics.path across reloads.
func (l *loopbackMetrics) setPath(p string) {
	if p == "" {
		p = "/metrics"
	}
	l.path.Store(&p)
}

// handler passes GET and HEAD of the metrics path and the collectors' paths
// to h and answers 404 to everything else.
func (l *loopbackMetrics) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			(r.URL.Path == *l.path.Load() || strings.HasPrefix(r.URL.Path, collector.CollectorsPath))
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serve serves h's metrics until ctx ends.
func (l *loopbackMetrics) serve(ctx context.Context, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           l.handler(h),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("self-scrape listener %s: %w", l.addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
