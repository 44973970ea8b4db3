// Package rollback records deploys, decides when an incident means the last
// deploy is bad, and calls the deploy controller's rollback webhook.
//
// The guards (DESIGN.md, Rollback semantics) are applied in this order, and the
// first that fails names the decision counted in
// vigil_rollback_decisions_total: the environment must be production; the
// incident must not have had a rollback already; its alert must match every
// key of rollback.when; there must be a deploy of the service in the
// environment; the alert must have started within rollback.window after that
// deploy; and no rollback (fired or dry run) may have happened within
// rollback.cooldown. Everything that must survive a restart (deploys, the
// last rollback time, which incidents had one) lives in the notifier.KV.
package rollback

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/webhook"
)

// DefaultKeepDeploys is how many deploys the Manager keeps in its KV.
const DefaultKeepDeploys = 100

// Decisions counted in vigil_rollback_decisions_total.
const (
	DecisionFired         = "fired"
	DecisionDryRun        = "dry_run"
	DecisionOutsideWindow = "outside_window"
	DecisionCooldown      = "cooldown"
	DecisionNotMatching   = "not_matching"
	DecisionEnvironment   = "environment"
	DecisionNoDeploy      = "no_deploy"
	DecisionAlreadyFired  = "already_fired"
	// DecisionSuperseded is an analysis failure of a deploy that is no
	// longer the last one: rolling back would undo the newer deploy.
	DecisionSuperseded = "superseded"
)

var decisions = []string{
	DecisionFired, DecisionDryRun, DecisionOutsideWindow, DecisionCooldown,
	DecisionNotMatching, DecisionEnvironment, DecisionNoDeploy, DecisionAlreadyFired,
	DecisionSuperseded,
}

// OutcomeDryRun is the RollbackRecord outcome of a rollback that was only
// recorded because rollback.dry_run is on.
const OutcomeDryRun = "dry_run"

// Errors Manual returns, so the API can answer with the right status.
var (
	ErrNotConfigured = errors.New("rollback.webhook is not configured")
	ErrEnvironment   = errors.New("rollbacks are allowed in production only")
	ErrNoDeploy      = errors.New("no deploy recorded")
	ErrCooldown      = errors.New("a rollback happened within the cooldown")
)

// Options configure the Manager.
type Options struct {
	// KV keeps deploys and rollback state; required.
	KV notifier.KV
	// Clock returns the time; time.Now when nil.
	Clock func() time.Time
	// Client makes the webhook calls; when nil, a client that does not follow
	// redirects (a redirected POST would become a GET).
	Client *http.Client
	// ExternalURL is how users reach vigil, for the incident link in the
	// payload; server.external_url wins when set.
	ExternalURL string
	// KeepDeploys is how many deploys to keep; DefaultKeepDeploys when 0.
	KeepDeploys int
}

var _ notifier.Rollbacker = (*Manager)(nil)

// settings is the part of the config the Manager uses.
type settings struct {
	service     string
	environment string
	webhook     *config.WebhookConfig
	when        map[string]string
	window      time.Duration
	cooldown    time.Duration
	dryRun      bool
	externalURL string
	// app is the app collector's app label, whose *_build_info is watched;
	// empty without an app collector.
	app      string
	interval time.Duration
	// strategy is analysis.strategy, for deploys seen in *_build_info.
	strategy string
	// versionLabel is analysis.version_label, default "version".
	versionLabel string
}

// Manager records deploys and decides and delivers rollbacks. Its methods are
// safe for concurrent use. Gateways sharing a store each have one: the
// cooldown and an incident's decision are claimed in the KV (a
// compare-and-swap, a put-if-absent), not under the Manager's lock, so that
// two gateways, like two incidents on one, cannot both pass the cooldown.
type Manager struct {
	kv     notifier.KV
	now    func() time.Time
	client *http.Client
	logger *slog.Logger
	keep   int
	extURL string

	mtx sync.Mutex
	cfg settings

	decisions *prometheus.CounterVec
	deploys   *prometheus.CounterVec
}

// New returns a Manager; its metrics go on reg when it is not nil.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if opts == nil || opts.KV == nil {
		return nil, errors.New("rollback: Options.KV is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		kv:     opts.KV,
		now:    opts.Clock,
		client: opts.Client,
		logger: logger.With("component", "rollback"),
		keep:   opts.KeepDeploys,
		extURL: opts.ExternalURL,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rollback_decisions_total",
			Help: "Rollback decisions taken for incidents and manual requests, by decision.",
		}, []string{"decision"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_deploys_recorded_total",
			Help: "Deploys recorded, by source (api or build_info).",
		}, []string{"source"}),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.client == nil {
		m.client = &http.Client{
			CheckRedirect: webhook.NoRedirects,
		}
	}
	if m.keep <= 0 {
		m.keep = DefaultKeepDeploys
	}
	for _, d := range decisions {
		m.decisions.WithLabelValues(d)
	}
	m.deploys.WithLabelValues(sourceAPI)
	m.deploys.WithLabelValues(sourceBuildInfo)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.decisions, m.deploys} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("rollback: registering metrics: %w", err)
			}
		}
	}
	m.cfg.externalURL = opts.ExternalURL
	return m, nil
}

// ApplyConfig takes rollback, service and environment from cfg. A webhook URL
// that is not http(s) is an error and the previous settings stay.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	s := settings{
		service:      cfg.Service,
		environment:  cfg.Environment,
		when:         maps.Clone(cfg.Rollback.When),
		window:       time.Duration(cfg.Rollback.Window),
		cooldown:     time.Duration(cfg.Rollback.Cooldown),
		dryRun:       cfg.Rollback.DryRun,
		externalURL:  m.extURL,
		interval:     cfg.Interval(),
		versionLabel: config.DefaultVersionLabel,
	}
	if a := cfg.Analysis; a != nil {
		s.strategy = a.Strategy
		if a.VersionLabel != "" {
			s.versionLabel = a.VersionLabel
		}
	}
	if a := cfg.Collectors.App; a != nil {
		s.app = a.Labels["app"]
		if s.app == "" {
			s.app = "app"
		}
	}
	if cfg.Server.ExternalURL != "" {
		s.externalURL = cfg.Server.ExternalURL
	}
	if w := cfg.Rollback.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("rollback.webhook.url %q is not an http(s) URL", redactURL(w.URL))
		}
		c := *w
		s.webhook = &c
	}
	m.mtx.Lock()
	m.cfg = s
	m.mtx.Unlock()
	return nil
}

func (m *Manager) settings() settings {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return m.cfg
}

// redactURL returns u without user info, query and fragment, which may carry
// credentials; unparsable input is hidden entirely.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	p.User = nil
	p.RawQuery = ""
	p.Fragment = ""
	return p.String()
}
