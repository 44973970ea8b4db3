// Package web is vigil's one HTTP listener: liveness and readiness, vigil's own
// metrics, the list of active alerts, Prometheus's HTTP API for Grafana,
// incidents, deploys and rollbacks, users and roles, the audit log, the
// operator page and the reload endpoint. Every route is listed in one table
// with the permission it needs, so authentication wraps routes by that table.
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/collector/logs"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	vigilrules "github.com/vigil-sh/vigil/rules"
	"github.com/vigil-sh/vigil/storage"
)

const (
	defaultMetricsPath = "/metrics"
	defaultListen      = ":9090"
	shutdownTimeout    = 10 * time.Second
	apiPrefix          = "/api/v1"
)

// RulesRetriever is satisfied by vigil's rules.Manager and by prometheus's rules.Manager.
type RulesRetriever interface {
	RuleGroups() []*rules.Group
	AlertingRules() []*rules.AlertingRule
}

// TargetRetriever lists scrape targets by scrape pool; prometheus's
// scrape.Manager satisfies it.
type TargetRetriever interface {
	TargetsActive() map[string][]*scrape.Target
	TargetsDropped() map[string][]*scrape.Target
	TargetsDroppedCounts() map[string]int
}

// Options are the handler's collaborators. Only ListenAddress is needed to serve
// /health; the others may be nil and their endpoints then answer empty.
type Options struct {
	// ListenAddress is host:port; empty means the config's listen address.
	ListenAddress string
	// ExternalURL is how users reach vigil; it goes into target global URLs.
	ExternalURL *url.URL
	// DB is the embedded TSDB. It may be nil until storage opens: SetDB hands it
	// over later, and queries answer "unavailable" until then.
	DB *tsdb.DB
	// DBStats are the stats given to tsdb.Open, if any: they show the WAL
	// replay's progress on /api/v1/status/walreplay while the TSDB opens.
	DBStats *tsdb.DBStats
	// QueryEngine runs PromQL for /api/v1/query and /api/v1/query_range.
	QueryEngine *promql.Engine
	// QueryMaxSamples and QueryNoStepSubqueryInterval are QueryEngine's
	// MaxSamples and the step it gives a subquery written without one. The
	// engine keeps them until a restart, and the web layer bounds a
	// query's subquery steps by them (0: the config's query.max_samples and
	// scrape interval).
	QueryMaxSamples             int
	QueryNoStepSubqueryInterval time.Duration
	// Rules lists rule groups and alerting rules for /alerts and /api/v1/rules.
	Rules RulesRetriever
	// DeadRules lists rule inputs that match no series (rules that cannot
	// fire) for the operator page and /api/v1/rules/dead; nil lists none.
	DeadRules func() []vigilrules.DeadRule
	// Targets lists scrape targets for /api/v1/targets and metadata.
	Targets TargetRetriever
	// Gatherer is vigil's own registry, served on the metrics path.
	Gatherer prometheus.Gatherer
	// Collectors serves each collector's metrics for vigil's own scrape and
	// adds them to the metrics path; nil serves none.
	Collectors Collectors
	// LogLines returns the last lines of a tailed log for /api/v1/logs; nil
	// answers 404 for every log.
	LogLines func(log string, limit int) (any, error)
	// LogStatus says how each tailed log is followed and shipped, for the
	// operator page; nil shows no logs.
	LogStatus func() []logs.LogStatus
	// Silences adds, lists and expires silences; nil answers 404 there.
	Silences Silences
	// Alertmanager takes and lists the alerts of the Alertmanager API v2
	// (amv2.go); nil answers 404 on /api/v2/alerts.
	Alertmanager Alertmanager
	// Incidents lists, acknowledges and resolves incidents.
	Incidents Incidents
	// Deploys records and lists deploys; Rollback fires the rollback webhook
	// by hand.
	Deploys Deploys
	// Analyses serves deploy analyses; nil answers 404 there.
	Analyses Analyses
	// Backups records and lists the backup job's backups (backups.go).
	Backups Backups
	// SlackInteractions answers Slack's interaction requests (it verifies
	// Slack's signature itself); nil answers 404.
	SlackInteractions http.Handler
	// Reload re-reads the configuration; POST /-/reload calls it.
	Reload func() error
	// Version is vigil's version; empty means github.com/prometheus/common/version.Version.
	Version string
	// Auth returns the authenticator in force: main passes
	// auth.Directory.Authenticator, rebuilt from the config and the runtime
	// users on every reload and every change through /api/v1/users, so
	// neither needs a restart. A nil Auth turns authentication off
	// altogether (every route lets every request in, the page's forms still
	// need their CSRF token), so vigil's main must set it. A non-nil Auth
	// that returns nil refuses every guarded route with 503.
	Auth func() *auth.Authenticator
	// Directory manages users and roles at runtime for /api/v1/users and
	// /api/v1/roles; nil answers 404 there.
	Directory Directory
	// AuditStore keeps the audit log across restarts; nil keeps it in
	// memory only.
	AuditStore AuditStore
	// RemoteWrite returns the state of each remote_write queue, shown on
	// /ready; nil shows none.
	RemoteWrite func() []storage.QueueStatus
	// Forward returns the state of alerts.forward (nil when the alerts
	// are not forwarded), shown on /ready and the page.
	Forward func() *ForwardStatus
	// Store says which incident store is used and, for one shared by
	// gateways (PostgreSQL), which peers hold leases; shown on /ready and
	// the page. nil shows nothing.
	Store func() notifier.StoreStatus
}

// Collectors is what the web layer needs of the collector set.
type Collectors interface {
	// ServeCollector answers a scrape of one collector.
	ServeCollector(w http.ResponseWriter, r *http.Request, name string)
	// Gatherer gathers every collector's metrics with their labels.
	Gatherer() prometheus.Gatherer
}

// Handler serves vigil's HTTP API.
type Handler struct {
	opts    Options
	logger  *slog.Logger
	metrics *metrics

	engine *gin.Engine
	routes []route
	// access is the failed-authentication limiter and the audit log.
	access  *access
	storage *localStorage
	promAPI http.Handler
	// queryGate bounds how many API queries run at once (query block).
	queryGate *queryGate
	// server are the listener's timeouts and per-client bound.
	server serverLimits
	// connsRefused counts connections closed by the per-client bound.
	connsRefused prometheus.Counter

	// queryEngine is the API's PromQL engine, which the page's graphs use too.
	queryEngine promql.QueryEngine

	cfg   atomic.Pointer[config.Config]
	ready atomic.Bool
	// listenerTLS is the served certificate, swapped on every reload.
	listenerTLS listenerTLS

	startTime time.Time

	// reloadMtx guards the runtime info that reloads change.
	reloadMtx      sync.Mutex
	reloadSuccess  bool
	lastConfigTime time.Time
}

var setGinMode sync.Once

// New returns a handler that serves once Run is called. Routes answer from the
// start; /ready says 503 until SetReady(true).
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) *Handler {
	setGinMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	if opts == nil {
		opts = &Options{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		opts:          *opts,
		logger:        logger,
		metrics:       newMetrics(reg),
		storage:       &localStorage{stats: opts.DBStats},
		startTime:     time.Now(),
		access:        newAccess(time.Now),
		reloadSuccess: true,
	}
	if h.opts.Gatherer == nil {
		h.opts.Gatherer = prometheus.Gatherers{}
	}
	if h.opts.ExternalURL == nil {
		h.opts.ExternalURL = &url.URL{Scheme: "http", Host: "localhost:9090"}
	}
	if h.opts.DB != nil {
		h.storage.set(h.opts.DB)
	}
	h.queryGate = newQueryGate(reg)
	h.server = defaultServerLimits()
	h.connsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_http_connections_refused_total",
		Help: "Connections closed at once because their address already held the most connections one client may hold.",
	})
	if reg != nil {
		reg.MustRegister(h.connsRefused)
	}
	h.promAPI = h.limitQueries(h.newPrometheusAPI())
	h.engine = h.newEngine()
	if h.opts.AuditStore != nil {
		if err := h.access.audit.useStore(h.opts.AuditStore); err != nil {
			h.logger.Error("The audit log is kept in memory only", "err", err)
		}
	}
	return h
}

// ApplyConfig keeps cfg for the metrics path and labels, the listener's TLS and
// the runtime info. Once the listener serves HTTPS, it re-reads the
// certificate and key, so a renewed certificate is served to new connections
// without a restart; when they cannot be loaded it returns an error that names
// both files and nothing changes. Turning TLS on or off needs a restart: it
// logs a warning and the listener keeps its scheme.
func (h *Handler) ApplyConfig(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("web: nil config")
	}
	// Under the lock, Run cannot fix the listener's scheme between the TLS
	// check and the store of cfg, which it reads.
	h.listenerTLS.mtx.Lock()
	if err := h.applyTLS(cfg); err != nil {
		h.listenerTLS.mtx.Unlock()
		return err
	}
	if old := h.cfg.Load(); old != nil && engineBoundsChanged(old.Query, cfg.Query) {
		h.logger.Warn("query.max_samples, query.timeout and query.lookback_delta take effect when vigil restarts; "+
			"the query engine keeps the old values until then", "max_samples", old.Query.MaxSamples,
			"timeout", old.Query.Timeout, "lookback_delta", old.Query.LookbackDelta)
	}
	h.cfg.Store(cfg)
	h.listenerTLS.mtx.Unlock()
	h.reloadMtx.Lock()
	h.reloadSuccess = true
	h.lastConfigTime = time.Now()
	h.reloadMtx.Unlock()
	return nil
}

// SetReady says whether vigil is ready to serve queries: /ready and the
// Prometheus API answer 503 until it is true.
func (h *Handler) SetReady(ready bool) {
	h.ready.Store(ready)
	if ready {
		h.metrics.ready.Set(1)
	} else {
		h.metrics.ready.Set(0)
	}
}

// SetDB hands over the TSDB once storage has opened it.
func (h *Handler) SetDB(db *tsdb.DB) {
	h.storage.set(db)
}

// Router returns the handler of every route, for Run and for tests.
func (h *Handler) Router() http.Handler { return h }

// ServeHTTP serves the configured metrics path through the table's /metrics
// route, so that a changed path needs no new route and keeps its permission.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := h.metricsPath(); p != defaultMetricsPath {
		switch r.URL.Path {
		case p:
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path, u.RawPath = defaultMetricsPath, ""
			r2.URL = &u
			r = r2
		case defaultMetricsPath:
			// The metrics moved: the old path is as unknown as any other.
			writeNotFound(w)
			return
		}
	}
	h.engine.ServeHTTP(w, r)
}

// Run listens on the listen address and serves until ctx is done, then shuts
// down gracefully. It returns at once with the address in the error when the
// address cannot be listened on.
func (h *Handler) Run(ctx context.Context) error {
	tlsCfg, err := h.tlsConfig()
	if err != nil {
		return err
	}
	addr := h.listenAddress()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w", addr, err)
	}
	return h.serve(ctx, ln, tlsCfg)
}

// serve serves on ln, with TLS when tlsCfg is not nil, until ctx is done; it
// closes ln.
func (h *Handler) serve(ctx context.Context, ln net.Listener, tlsCfg *tls.Config) error {
	addr := ln.Addr().String()
	// Counted below TLS, so a client cannot hold connections in handshakes.
	ln = newClientLimitListener(ln, h.server.maxConnsPerClient, h.connsRefused)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	writeTimeout := h.server.writeTimeout
	if writeTimeout == 0 {
		writeTimeout = h.queryLimits().timeout + writeMargin
	}
	srv := &http.Server{
		Handler: h,
		// Headers and bodies arrive in time or the connection closes; the
		// answer may take as long as a query may run.
		ReadHeaderTimeout: h.server.readHeaderTimeout,
		ReadTimeout:       h.server.readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       h.server.idleTimeout,
		ErrorLog:          slog.NewLogLogger(h.logger.Handler(), slog.LevelError),
	}
	h.logger.Info("Listening", "address", addr, "tls", tlsCfg != nil)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("web: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	// Requests in flight may finish, for at most shutdownTimeout.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-errc
		return fmt.Errorf("web: shut down %s: %w", addr, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web: serve on %s: %w", addr, err)
	}
	h.logger.Info("Stopped listening", "address", addr)
	return nil
}

func (h *Handler) listenAddress() string {
	if h.opts.ListenAddress != "" {
		return h.opts.ListenAddress
	}
	if cfg := h.cfg.Load(); cfg != nil {
		return cfg.ListenAddress()
	}
	return defaultListen
}

func (h *Handler) metricsPath() string {
	if cfg := h.cfg.Load(); cfg != nil && cfg.Metrics.Path != "" {
		return cfg.Metrics.Path
	}
	return defaultMetricsPath
}
