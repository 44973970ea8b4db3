package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// Defaults for Options and the config.
const (
	// DefaultInterval is the evaluation interval when the config has none.
	DefaultInterval = 15 * time.Second
	// DefaultOutageTolerance is how long vigil may be down and still restore
	// the `for` state of its alerts.
	DefaultOutageTolerance = time.Hour
	// DefaultResendDelay is how often a still-firing alert is sent again.
	DefaultResendDelay = time.Minute
	// DefaultHealthInterval is how often rules are checked for dead inputs.
	DefaultHealthInterval = 15 * time.Second
	// minForGracePeriod is the smallest default grace period.
	minForGracePeriod = 10 * time.Second
)

// Options are the Manager's dependencies and tunables.
type Options struct {
	// Queryable is read by rule expressions and by the `for` restore.
	Queryable storage.Queryable
	// Appendable receives recording rule results, ALERTS and ALERTS_FOR_STATE.
	Appendable storage.AppendableV2
	// Engine evaluates rule expressions.
	Engine *promql.Engine
	// ExternalURL goes into alert links; server.external_url wins when set.
	ExternalURL *url.URL
	// NotifyFunc receives firing and resolved alerts. When nil, they are
	// only logged at debug level.
	NotifyFunc promrules.NotifyFunc
	// ForGracePeriod is the least time an alert restored after a restart
	// waits before it fires again; rules whose `for` is shorter are not
	// restored. Default: 3 evaluation intervals of the first config, at
	// least 10s (Prometheus's 10m would leave the seed's durations
	// unrestored).
	ForGracePeriod time.Duration
	// OutageTolerance is the longest downtime after which `for` state is
	// still restored. Default 1h.
	OutageTolerance time.Duration
	// ResendDelay is how often NotifyFunc sees a still-firing alert again.
	// Default 1m.
	ResendDelay time.Duration
	// HealthInterval is how often the rules are checked for inputs that
	// match no series (alerts.absent_after). Default 15s.
	HealthInterval time.Duration
	// Now is the health check's clock; default time.Now.
	Now func() time.Time
}

// Manager runs vigil's alerting and recording rules on Prometheus's rules
// manager: the main config's seed rules (translated and scoped, served
// under SeedIdentifier in one group named SeedGroupName) and the rule_files.
type Manager struct {
	opts     *Options
	logger   *slog.Logger
	loader   *Loader
	promOpts *promrules.ManagerOptions
	prom     *promrules.Manager
	cancel   context.CancelFunc
	health   *health

	// mtx serialises ApplyConfig and the start of Run.
	mtx      sync.Mutex
	graceSet bool    // the first good config fixed the grace period
	started  bool    // Run was called
	pending  *update // the last config applied before Run

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge
}

// New returns a Manager that evaluates nothing until ApplyConfig loads rules
// and Run starts it. Metrics of Prometheus's rules manager
// (prometheus_rule_*) and vigil's own are registered on reg, which may be nil.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if opts == nil || opts.Engine == nil || opts.Queryable == nil || opts.Appendable == nil {
		return nil, errors.New("rules: Engine, Queryable and Appendable must be set")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := *opts
	if o.OutageTolerance <= 0 {
		o.OutageTolerance = DefaultOutageTolerance
	}
	if o.ResendDelay <= 0 {
		o.ResendDelay = DefaultResendDelay
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}

	m := &Manager{
		opts:   &o,
		logger: logger,
		loader: NewLoader(),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_successful",
			Help: "Whether the last rules reload succeeded (1) or kept the previous rules (0).",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful rules reload.",
		}),
	}
	m.health = newHealth(o.Queryable, m.RuleGroups, o.Now, logger)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reloadSuccess, m.reloadTimestamp, m.health} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("rules: register metrics: %w", err)
			}
		}
	}

	notify := o.NotifyFunc
	if notify == nil {
		notify = m.logAlerts
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.promOpts = &promrules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          o.ExternalURL,
		QueryFunc:            promrules.EngineQueryFunc(o.Engine, o.Queryable),
		NotifyFunc:           notify,
		Context:              ctx,
		AppendableV2:         o.Appendable,
		Queryable:            o.Queryable,
		Logger:               logger,
		Registerer:           reg,
		OutageTolerance:      o.OutageTolerance,
		ForGracePeriod:       o.ForGracePeriod,
		ResendDelay:          o.ResendDelay,
		GroupLoader:          m.loader,
		Parser:               promqlparse.Parser,
	}
	m.prom = promrules.NewManager(m.promOpts)
	return m, nil
}

// logAlerts is the NotifyFunc used when Options.NotifyFunc is nil.
func (m *Manager) logAlerts(_ context.Context, expr string, alerts ...*promrules.Alert) {
	for _, a := range alerts {
		state := "firing"
		if !a.ResolvedAt.IsZero() {
			state = "resolved"
		}
		m.logger.Debug("alert", "state", state, "labels", a.Labels.String(), "active_at", a.ActiveAt, "expr", expr)
	}
}

// ApplyConfig translates the config's seed rules, loads its rule_files
// (globs, relative to the config file's directory) and hands them to the
// rules manager at cfg.EvaluationInterval(). Unchanged groups keep their state; a
// changed group takes over the state of the group it replaces. When
// anything fails to load, the rules stay as they were and the error names
// every file or rule at fault.
//
// Before Run, the rules are checked and kept for Run to load: Prometheus's
// manager cannot replace groups that have not started (its Update would
// wait for them forever), so RuleGroups and AlertingRules are empty until
// Run.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	m.mtx.Lock()
	defer m.mtx.Unlock()

	err := m.applyConfig(cfg)
	if err != nil {
		m.reloadSuccess.Set(0)
		return err
	}
	m.reloadSuccess.Set(1)
	m.reloadTimestamp.SetToCurrentTime()
	return nil
}

// update is a checked config, ready for the rules manager.
type update struct {
	interval    time.Duration
	absentAfter time.Duration
	ids         []string
	virtual     map[string]*rulefmt.RuleGroups
	ext         labels.Labels
	url         string
}

func (m *Manager) applyConfig(cfg *config.Config) error {
	u := &update{interval: cfg.EvaluationInterval(), absentAfter: time.Duration(cfg.Alerts.AbsentAfter)}
	if u.interval <= 0 {
		u.interval = DefaultInterval
	}
	var err error
	u.ids, u.virtual, err = m.prepare(cfg)
	if err != nil {
		return err
	}
	if extMap := externalLabels(cfg); len(extMap) > 0 {
		u.ext = labels.FromMap(extMap)
	}
	if m.opts.ExternalURL != nil {
		u.url = m.opts.ExternalURL.String()
	}
	if cfg.Server.ExternalURL != "" {
		u.url = cfg.Server.ExternalURL
	}

	if !m.graceSet {
		if m.opts.ForGracePeriod <= 0 {
			// Safe to write: no group exists yet, so none reads the options.
			m.promOpts.ForGracePeriod = max(3*u.interval, minForGracePeriod)
		}
		m.graceSet = true
	}
	if !m.started {
		m.pending = u
		m.logger.Info("rules checked, loading them when evaluation starts", "sources", len(u.ids))
		return nil
	}
	return m.update(u)
}

// update hands a checked config to the rules manager; m.mtx is held.
func (m *Manager) update(u *update) error {
	m.loader.SetVirtual(u.virtual)
	if err := m.prom.Update(u.interval, u.ids, u.ext, u.url, nil); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	m.health.setAbsentAfter(u.absentAfter)
	m.logger.Info("rules loaded", "sources", len(u.ids), "interval", u.interval, "for_grace_period", m.promOpts.ForGracePeriod)
	return nil
}

// prepare loads and validates every rule source of cfg, so that Update
// cannot fail half way. Loaded files are served to Update from memory: it
// sees exactly what was checked.
func (m *Manager) prepare(cfg *config.Config) ([]string, map[string]*rulefmt.RuleGroups, error) {
	return loadSources(cfg, m.logger)
}

// CheckConfig loads every rule of cfg, its seed rules and its rule_files,
// and returns every problem found, each with its file and line. It is what
// ApplyConfig checks, without a Manager: `vigil check config` and the start
// of vigil use it.
func CheckConfig(cfg *config.Config) error {
	_, _, err := loadSources(cfg, slog.New(slog.DiscardHandler))
	return err
}

// loadSources loads and validates every rule source of cfg (rulefmt and
// TranslateRule parse every expression).
func loadSources(cfg *config.Config, logger *slog.Logger) ([]string, map[string]*rulefmt.RuleGroups, error) {
	var (
		errs    []error
		ids     []string
		virtual = map[string]*rulefmt.RuleGroups{}
	)
	if len(cfg.Alerts.Rules) > 0 {
		id := SeedIdentifier(cfg)
		name := cfg.File
		if name == "" {
			name = "built-in config"
		}
		rgs, serrs := SeedGroups(SeedGroupName, cfg.Alerts.Rules, func(i int) string {
			path := fmt.Sprintf("alerts.rules[%d]", i)
			loc := name
			if n := cfg.Line(path + ".condition"); n > 0 {
				loc = fmt.Sprintf("%s:%d", name, n)
			} else if n := cfg.Line(path); n > 0 {
				loc = fmt.Sprintf("%s:%d", name, n)
			}
			return fmt.Sprintf("%s: %s %q", loc, path, cfg.Alerts.Rules[i].Name)
		})
		errs = append(errs, serrs...)
		withLimit(rgs, cfg.Alerts.Limit)
		virtual[id] = rgs
		ids = append(ids, id)
	}
	// vigil's own rules, a group apart from the seed's (config.OwnRules).
	if len(cfg.OwnRules) > 0 {
		rgs, serrs := SeedGroups(OwnGroupName, cfg.OwnRules, func(i int) string {
			return fmt.Sprintf("vigil's own rules: %q", cfg.OwnRules[i].Name)
		})
		errs = append(errs, serrs...)
		id := OwnIdentifier(cfg)
		virtual[id] = rgs
		ids = append(ids, id)
	}
	// The app's derived signals are recorded before any rule file reads them.
	if rgs, err := signalGroups(cfg); err != nil {
		errs = append(errs, err)
	} else if rgs != nil {
		withLimit(rgs, cfg.Alerts.Limit)
		id := SignalsIdentifier(cfg)
		virtual[id] = rgs
		ids = append(ids, id)
	}

	dir := ""
	if cfg.File != "" {
		dir = filepath.Dir(cfg.File)
	}
	files, unmatched, gerr := expandRuleFiles(dir, cfg.RuleFiles)
	if gerr != nil {
		errs = append(errs, gerr)
	}
	for _, p := range unmatched {
		logger.Warn("rule_files pattern matches no file", "pattern", p)
	}
	for _, f := range files {
		rgs, ferrs := LoadFile(f, false, model.UTF8Validation)
		errs = append(errs, ferrs...)
		if len(ferrs) == 0 {
			withLimit(rgs, cfg.Alerts.Limit)
			virtual[f] = rgs
			ids = append(ids, f)
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("rules: loading rules failed, previous rules kept: %w", errors.Join(errs...))
	}
	return ids, virtual, nil
}

// withLimit gives every group of rgs without a limit of its own the
// config's alerts.limit: the number of series a recording rule, or alerts
// an alerting rule, may produce in one evaluation. A rule over it fails
// that evaluation, as in Prometheus; vigil_rule_limit_exceeded says which.
func withLimit(rgs *rulefmt.RuleGroups, limit int) {
	if rgs == nil {
		return
	}
	for i := range rgs.Groups {
		if rgs.Groups[i].Limit == 0 {
			rgs.Groups[i].Limit = limit
		}
	}
}

// externalLabels are the labels templates see as $externalLabels.
func externalLabels(cfg *config.Config) map[string]string {
	out := map[string]string{}
	if cfg.Service != "" {
		out["service"] = cfg.Service
	}
	if cfg.Environment != "" {
		out[EnvironmentLabel] = cfg.Environment
	}
	return out
}

// Run loads the rules of the last ApplyConfig, starts evaluating them and
// blocks until ctx is done, then stops every group. The first evaluations
// of the first rules restore the `for` state of alerts from
// ALERTS_FOR_STATE. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	m.mtx.Lock()
	if m.started {
		m.mtx.Unlock()
		return errors.New("rules: Run called twice")
	}
	m.started = true
	var err error
	if m.pending != nil {
		err = m.update(m.pending)
		m.pending = nil
	}
	m.mtx.Unlock()
	if err != nil {
		// Cannot happen after prepare succeeded; run without rules rather
		// than not at all, a reload can still fix it.
		m.logger.Error("loading rules failed", "err", err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		m.prom.Run()
	}()
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		t := time.NewTimer(m.health.interval(m.opts.HealthInterval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.health.check(ctx)
				t.Reset(m.health.interval(m.opts.HealthInterval))
			}
		}
	}()
	<-ctx.Done()
	<-healthDone
	m.prom.Stop()
	<-done
	m.cancel()
	return nil
}

// RuleGroups returns the loaded rule groups, sorted by file and name.
func (m *Manager) RuleGroups() []*promrules.Group { return m.prom.RuleGroups() }

// DeadRules returns the rule inputs that have matched no series for
// alerts.absent_after: rules that cannot fire. It is empty in the first
// absent_after after start and when the check is off.
func (m *Manager) DeadRules() []DeadRule { return m.health.dead() }

// CheckHealth runs the dead-input and limit check once, now; Run does it
// every HealthInterval.
func (m *Manager) CheckHealth(ctx context.Context) { m.health.check(ctx) }

// OverLimit reports whether an alerting rule named name is over its
// limit now: its last evaluation produced more alerts than the limit, and
// Prometheus dropped them all without resolving them.
func (m *Manager) OverLimit(name string) bool { return m.health.overLimit(name) }

// OnLimitCleared sets f, called with a rule's group and name when the
// health check finds the rule back under its limit (so that its incidents,
// whose alerts were dropped unresolved, can be reconciled). f must not
// block. Call it before Run.
func (m *Manager) OnLimitCleared(f func(group, rule string)) {
	m.health.mtx.Lock()
	defer m.health.mtx.Unlock()
	m.health.onLimitCleared = f
}

// AlertingRules returns the loaded alerting rules.
func (m *Manager) AlertingRules() []*promrules.AlertingRule { return m.prom.AlertingRules() }
