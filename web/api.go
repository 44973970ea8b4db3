package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grafana/regexp"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	promroute "github.com/prometheus/common/route"
	"github.com/prometheus/common/version"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/notifications"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// prometheusCompatVersion is the Prometheus release whose API vigil serves: the
// module github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.0. Grafana
// picks its Prometheus features by the version in buildinfo, so buildinfo
// reports this version, with vigil's own version as semver build metadata.
const prometheusCompatVersion = "3.16.0"

// Limits as Prometheus's defaults; the remote read endpoint is not routed, but
// the API builds its handler.
const (
	remoteReadSampleLimit      = 5e7
	remoteReadConcurrencyLimit = 10
	remoteReadMaxBytesInFrame  = 1 << 20
	defaultLookbackDelta       = 5 * time.Minute
	defaultQueryTimeout        = 2 * time.Minute
	defaultMaxSamples          = 50_000_000
)

// corsOrigin is Prometheus's default: any origin may read the API, as Grafana
// in browser access mode does.
var corsOrigin = regexp.MustCompile(`^(?s:.*)$`)

// newPrometheusAPI builds Prometheus's own API handler on vigil's components and
// returns the router that serves it under /api/v1.
func (h *Handler) newPrometheusAPI() http.Handler {
	var qe promql.QueryEngine
	if h.opts.QueryEngine != nil {
		qe = h.opts.QueryEngine
	} else {
		qe = promql.NewEngine(promql.EngineOpts{
			Logger:        h.logger,
			MaxSamples:    defaultMaxSamples,
			Timeout:       defaultQueryTimeout,
			LookbackDelta: defaultLookbackDelta,
		})
	}
	h.queryEngine = qe
	var rr apiv1.RulesRetriever = noRules{}
	if h.opts.Rules != nil {
		rr = h.opts.Rules
	}
	tr := targetRetriever{TargetRetriever: noTargets{}}
	if h.opts.Targets != nil {
		tr.TargetRetriever = h.opts.Targets
	}
	dbDir := ""
	if h.opts.DB != nil {
		dbDir = h.opts.DB.Dir()
	}
	listen := h.listenAddress()

	api := apiv1.NewAPI(
		qe,
		h.storage,
		nil, // no remote write or OTLP receiver
		h.storage,
		func(context.Context) apiv1.ScrapePoolsRetriever { return tr },
		func(context.Context) apiv1.TargetRetriever { return tr },
		func(context.Context) apiv1.AlertmanagerRetriever { return noAlertmanagers{} },
		h.prometheusConfig,
		map[string]string{
			"web.listen-address": listen,
			"web.external-url":   h.opts.ExternalURL.String(),
			"storage.tsdb.path":  dbDir,
		},
		apiv1.GlobalURLOptions{
			ListenAddress: listen,
			Host:          h.opts.ExternalURL.Host,
			Scheme:        h.opts.ExternalURL.Scheme,
		},
		h.testReady,
		h.storage,
		dbDir,
		false, // admin API disabled
		// The experimental /api/v1/search/* endpoints (v0.316) stay off:
		// they answer 503 "search API disabled".
		false, 0,
		h.logger,
		func(context.Context) apiv1.RulesRetriever { return rr },
		remoteReadSampleLimit,
		remoteReadConcurrencyLimit,
		remoteReadMaxBytesInFrame,
		false, // not agent mode
		corsOrigin,
		h.runtimeInfo,
		h.buildInfo(),
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		h.opts.Gatherer,
		nil, // the remote read handler's metrics would only count an unrouted endpoint
		nil,
		false, remoteapi.MessageTypes{},
		false, false, false,
		defaultLookbackDelta,
		false,
		false,
		nil,
		nil,
		// Prometheus renders its whole OpenAPI document at start-up and keeps
		// it (about 7 MB of heap); vigil does not route /openapi.yaml, so the
		// filter matches no path and the document stays empty.
		apiv1.OpenAPIOptions{IncludePaths: []string{"/vigil-serves-no-openapi-document"}},
		promqlparse.Parser,
		// The experimental query-cost limits and /query_cost endpoints stay
		// off; the timeout is only read by them.
		false, defaultQueryTimeout,
	)
	r := promroute.New().WithPrefix(apiPrefix)
	api.Register(r)
	return r
}

// testReady answers 503 in the API's own envelope until vigil is ready and
// its TSDB is open. (Past this gate, Prometheus's API would answer a closed
// TSDB with 500.)
func (h *Handler) testReady(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg := ""
		switch {
		case !h.ready.Load():
			msg = "vigil is not ready"
		case h.storage.db.Load() == nil:
			msg = tsdb.ErrNotReady.Error()
		default:
			f(w, r)
			return
		}
		body, _ := json.Marshal(apiv1.Response{Status: "error", ErrorType: "unavailable", Error: msg})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(body)
	}
}

// vigilVersion is vigil's version: the option, else the linked build version.
func (h *Handler) vigilVersion() string {
	if h.opts.Version != "" {
		return h.opts.Version
	}
	return version.Version
}

// buildInfo reports the Prometheus version vigil is compatible with, tagged
// with vigil's version, so Grafana treats vigil as that Prometheus.
func (h *Handler) buildInfo() *apiv1.PrometheusVersion {
	v := prometheusCompatVersion + "+vigil"
	if meta := semverBuildMetadata(h.vigilVersion()); meta != "" {
		v += "." + meta
	}
	return &apiv1.PrometheusVersion{
		Version:   v,
		Revision:  version.GetRevision(),
		Branch:    version.Branch,
		BuildUser: version.BuildUser,
		BuildDate: version.BuildDate,
		GoVersion: version.GoVersion,
	}
}

// semverBuildMetadata turns a version such as v0.3.0-2-gabc/dirty into
// dot-separated identifiers of [0-9A-Za-z-], as semver build metadata must be.
func semverBuildMetadata(v string) string {
	mapped := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.':
			return r
		}
		return '-'
	}, v)
	parts := strings.Split(mapped, ".")
	parts = slices.DeleteFunc(parts, func(s string) bool { return s == "" })
	return strings.Join(parts, ".")
}

// runtimeInfo fills /api/v1/status/runtimeinfo.
func (h *Handler) runtimeInfo() (apiv1.RuntimeInfo, error) {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "<error retrieving current working directory: " + err.Error() + ">"
	}
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "<error retrieving hostname: " + err.Error() + ">"
	}
	h.reloadMtx.Lock()
	success, last := h.reloadSuccess, h.lastConfigTime
	h.reloadMtx.Unlock()
	retention := ""
	if cfg := h.cfg.Load(); cfg != nil && cfg.Storage.Retention > 0 {
		retention = cfg.Storage.Retention.String()
	}
	return apiv1.RuntimeInfo{
		StartTime:           h.startTime,
		CWD:                 cwd,
		Hostname:            hostname,
		ServerTime:          time.Now().UTC(),
		ReloadConfigSuccess: success,
		LastConfigTime:      last,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    retention,
	}, nil
}

// prometheusConfig is the Prometheus-shaped view of vigil's config that
// /api/v1/status/config shows: the global intervals and the rule files.
func (h *Handler) prometheusConfig() promconfig.Config {
	c := promconfig.Config{GlobalConfig: promconfig.DefaultGlobalConfig}
	cfg := h.cfg.Load()
	if cfg == nil {
		return c
	}
	if iv := cfg.Interval(); iv > 0 {
		c.GlobalConfig.ScrapeInterval = model.Duration(iv)
		c.GlobalConfig.EvaluationInterval = model.Duration(cfg.EvaluationInterval())
		if time.Duration(c.GlobalConfig.ScrapeTimeout) > iv {
			c.GlobalConfig.ScrapeTimeout = model.Duration(iv)
		}
	}
	c.RuleFiles = slices.Clone(cfg.RuleFiles)
	return c
}

// localStorage is the TSDB as the API sees it: it may open after the API is
// built, and until then every call says tsdb.ErrNotReady, which the API turns
// into 503 "unavailable".
type localStorage struct {
	db    atomic.Pointer[tsdb.DB]
	stats *tsdb.DBStats
}

func (s *localStorage) set(db *tsdb.DB) { s.db.Store(db) }

// Querier implements storage.Queryable.
func (s *localStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	db := s.db.Load()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.Querier(mint, maxt)
}

// ChunkQuerier implements storage.ChunkQueryable.
func (s *localStorage) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	db := s.db.Load()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.ChunkQuerier(mint, maxt)
}

// ExemplarQuerier implements storage.ExemplarQueryable.
func (s *localStorage) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	db := s.db.Load()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.ExemplarQuerier(ctx)
}

// CleanTombstones implements apiv1.TSDBAdminStats.
func (s *localStorage) CleanTombstones() error {
	db := s.db.Load()
	if db == nil {
		return tsdb.ErrNotReady
	}
	return db.CleanTombstones()
}

// Delete implements apiv1.TSDBAdminStats.
func (s *localStorage) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	db := s.db.Load()
	if db == nil {
		return tsdb.ErrNotReady
	}
	return db.Delete(ctx, mint, maxt, ms...)
}

// Snapshot implements apiv1.TSDBAdminStats.
func (s *localStorage) Snapshot(dir string, withHead bool) error {
	db := s.db.Load()
	if db == nil {
		return tsdb.ErrNotReady
	}
	return db.Snapshot(dir, withHead)
}

// Stats implements apiv1.TSDBAdminStats.
func (s *localStorage) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	db := s.db.Load()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.Head().Stats(statsByLabelName, limit), nil
}

// WALReplayStatus implements apiv1.TSDBAdminStats. Progress is known only from
// the stats given to tsdb.Open; without them it reads zero, as before a replay.
func (s *localStorage) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	if s.stats != nil && s.stats.Head != nil && s.stats.Head.WALReplayStatus != nil {
		return s.stats.Head.WALReplayStatus.GetWALReplayStatus(), nil
	}
	return tsdb.WALReplayStatus{}, nil
}

// BlockMetas implements apiv1.TSDBAdminStats.
func (s *localStorage) BlockMetas() ([]tsdb.BlockMeta, error) {
	db := s.db.Load()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.BlockMetas(), nil
}

// targetRetriever adds what the API asks of a scrape manager beyond vigil's
// TargetRetriever, using the retriever's own methods when it has them.
type targetRetriever struct {
	TargetRetriever
}

// ScrapePoolConfig implements apiv1.TargetRetriever.
func (t targetRetriever) ScrapePoolConfig(pool string) (*promconfig.ScrapeConfig, error) {
	if r, ok := t.TargetRetriever.(interface {
		ScrapePoolConfig(string) (*promconfig.ScrapeConfig, error)
	}); ok {
		return r.ScrapePoolConfig(pool)
	}
	return nil, fmt.Errorf("scrape pool %q: its configuration is not available", pool)
}

// ScrapePools implements apiv1.ScrapePoolsRetriever.
func (t targetRetriever) ScrapePools() []string {
	if r, ok := t.TargetRetriever.(apiv1.ScrapePoolsRetriever); ok {
		return r.ScrapePools()
	}
	var pools []string
	for p := range t.TargetsActive() {
		pools = append(pools, p)
	}
	for p := range t.TargetsDropped() {
		if !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	return pools
}

// noTargets stands in when vigil scrapes nothing.
type noTargets struct{}

// TargetsActive implements TargetRetriever.
func (noTargets) TargetsActive() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }

// TargetsDropped implements TargetRetriever.
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }

// TargetsDroppedCounts implements TargetRetriever.
func (noTargets) TargetsDroppedCounts() map[string]int { return map[string]int{} }

// noRules stands in until a rules manager is given.
type noRules struct{}

// RuleGroups implements RulesRetriever.
func (noRules) RuleGroups() []*rules.Group { return nil }

// AlertingRules implements RulesRetriever.
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

// noAlertmanagers stands for the Alertmanagers vigil does not have: it
// notifies by itself.
type noAlertmanagers struct{}

// Alertmanagers implements apiv1.AlertmanagerRetriever.
func (noAlertmanagers) Alertmanagers() []*url.URL { return nil }

// DroppedAlertmanagers implements apiv1.AlertmanagerRetriever.
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }
