package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// keep is how many analyses the KV holds.
const keep = 100

// keyAnalysis prefixes an analysis in the KV: analysis/<deploy id, 20
// digits>.
const keyAnalysis = "analysis/"

// tickEvery is how often Run looks for a step that came due.
const tickEvery = time.Second

// Deploys is what the Manager needs of the rollback logic's deploys.
type Deploys interface {
	// LastDeploy is the newest deploy of the configured service and
	// environment.
	LastDeploy() (rollback.Deploy, bool, error)
	// NoteAnalysisFailure keeps a failure's figures for the rollback
	// payload.
	NoteAnalysisFailure(deployID string, figures json.RawMessage) error
}

// Incidents opens the incident of a failed analysis.
type Incidents interface {
	Raise(ctx context.Context, a notifier.Alert) (notifier.Incident, error)
}

// Options configure the Manager.
type Options struct {
	// Queryable and Engine read the local TSDB, as the rules do; required.
	Queryable storage.Queryable
	Engine    promql.QueryEngine
	// KV keeps the analyses; required.
	KV notifier.KV
	// Deploys are the recorded deploys; required.
	Deploys Deploys
	// Incidents opens the incident of a failure; nil opens none (and so
	// rolls nothing back).
	Incidents Incidents
	// Clock returns the time; time.Now when nil.
	Clock func() time.Time
}

// settings is the part of the config the Manager uses.
type settings struct {
	// cfg is nil when the config has no analysis block.
	cfg         *config.AnalysisConfig
	app         string
	service     string
	environment string
}

// Manager starts an analysis for each deploy that carries a strategy, takes
// its steps as they come due and acts on its verdict.
type Manager struct {
	opts      Options
	engine    promql.QueryEngine
	queryable storage.Queryable
	kv        notifier.KV
	now       func() time.Time
	logger    *slog.Logger

	mtx sync.Mutex
	s   settings
	// tickMtx serialises Tick and guards settled.
	tickMtx sync.Mutex
	// settled is the last deploy's ID once a Tick found every analysis
	// decided and every failure's incident open: until another deploy (or
	// config) comes, a Tick has nothing to do and reads no analysis.
	settled string

	metrics *metrics
}

// New returns a Manager; its metrics go on reg when it is not nil.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if opts == nil || opts.Queryable == nil || opts.Engine == nil || opts.KV == nil || opts.Deploys == nil {
		return nil, errors.New("analysis: Options.Queryable, Engine, KV and Deploys are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts:      *opts,
		engine:    opts.Engine,
		queryable: opts.Queryable,
		kv:        opts.KV,
		now:       opts.Clock,
		logger:    logger.With("component", "analysis"),
		metrics:   newMetrics(),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if reg != nil {
		if err := m.metrics.register(reg); err != nil {
			return nil, fmt.Errorf("analysis: registering metrics: %w", err)
		}
	}
	return m, nil
}

// ApplyConfig takes the analysis block, the app collector's app label, the
// service and the environment from cfg.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	s := settings{service: cfg.Service, environment: cfg.Environment, app: "app"}
	if a := cfg.Collectors.App; a != nil && a.Labels["app"] != "" {
		s.app = a.Labels["app"]
	}
	if cfg.Analysis != nil {
		a := cfg.Analysis.WithDefaults()
		s.cfg = &a
	}
	m.mtx.Lock()
	m.s = s
	m.mtx.Unlock()
	m.tickMtx.Lock()
	m.settled = ""
	m.tickMtx.Unlock()
	return nil
}

func (m *Manager) settings() settings {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return m.s
}

// Run takes the steps as they come due until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.Tick(ctx); err != nil {
			m.logger.Warn("deploy analysis", "err", err)
		}
	}
}

// Tick starts the analysis of a new deploy, takes every step that has come
// due (each at its own time, so a restart catches up on the steps it
// missed) and acts on a failure. It is what Run calls each second; tests
// call it with a fixed clock.
func (m *Manager) Tick(ctx context.Context) error {
	m.tickMtx.Lock()
	defer m.tickMtx.Unlock()
	s := m.settings()
	if s.cfg == nil {
		return nil
	}
	now := m.now()
	last, haveLast, err := m.opts.Deploys.LastDeploy()
	if err != nil {
		return fmt.Errorf("reading the last deploy: %w", err)
	}
	if haveLast && last.ID != "" && last.ID == m.settled {
		return nil
	}
	if haveLast {
		if err := m.start(s, last, now); err != nil {
			return err
		}
	}
	all, raws, err := m.list()
	if err != nil {
		return err
	}
	var errs []error
	settled := haveLast
	for i := range all {
		a := &all[i]
		var err error
		if !a.Done() {
			err = m.step(ctx, s, a, last, now, &raws[i])
		}
		if err == nil && a.Verdict == VerdictFail && a.IncidentID == "" {
			err = m.raise(ctx, s, a, &raws[i])
		}
		if errors.Is(err, errMoved) {
			// The other gateway took this step first: its record stands,
			// and the next tick reads it.
			m.logger.Debug("deploy analysis moved on by another gateway; skipped this tick", "deploy", a.DeployID)
			settled = false
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
		settled = settled && a.Done() && (a.Verdict != VerdictFail || a.IncidentID != "" || m.opts.Incidents == nil)
	}
	if len(all) > 0 {
		m.metrics.show(&all[len(all)-1])
	}
	if settled && len(errs) == 0 {
		m.settled = last.ID
	}
	return errors.Join(errs...)
}

// start begins the analysis of d when it carries a strategy, has none yet
// and its analysis is not over already (a deploy recorded long after the
// fact, or a restart long after it, is not judged on old data).
func (m *Manager) start(s settings, d rollback.Deploy, now time.Time) error {
	if d.Strategy == "" || d.ID == "" {
		return nil
	}
	if _, ok, err := m.get(d.ID); err != nil || ok {
		return err
	}
	c := s.cfg
	interval := time.Duration(c.Interval)
	if now.After(d.At.Add(time.Duration(c.Steps+1) * interval)) {
		return nil
	}
	a := &Analysis{
		DeployID: d.ID, Service: d.Service, Environment: d.Environment, Strategy: d.Strategy,
		Version: d.Version, DeployedAt: d.At,
		Interval: interval, Steps: c.Steps, MinRequests: c.MinRequests,
		Thresholds: maps.Clone(c.Thresholds), Results: []Step{},
	}
	if d.Strategy != config.StrategyRolling {
		a.BaselineVersion = d.PreviousVersion
		if a.BaselineVersion == "" || a.BaselineVersion == a.Version {
			a.decide(VerdictInconclusive, "no previous version to compare with", now)
		}
	}
	m.logger.Info("deploy analysis started", "deploy", d.ID, "version", d.Version, "baseline", a.BaselineVersion,
		"strategy", d.Strategy, "steps", a.Steps, "interval", interval)
	var absent []byte
	if err := m.put(a, &absent); err != nil && !errors.Is(err, errMoved) {
		return err
	}
	return nil
}

// step takes a's steps that are due and stores the result after each, each
// from the record before it (prev, see put).
func (m *Manager) step(ctx context.Context, s settings, a *Analysis, last rollback.Deploy, now time.Time, prev *[]byte) error {
	if last.ID != a.DeployID {
		a.decide(VerdictInconclusive, fmt.Sprintf("deploy %s (%s) replaced it before its analysis ended", last.ID, last.Version), now)
		return m.put(a, prev)
	}
	split := a.Strategy != config.StrategyRolling
	qs := newQueries(*s.cfg, s.app, split)
	label := s.cfg.VersionLabel
	if !split {
		label = "\x00" // no label: every series is the whole app
	}
	for !a.Done() {
		n := len(a.Results) + 1
		at := a.DeployedAt.Add(time.Duration(n) * a.Interval)
		if at.After(now) {
			return nil
		}
		figs, err := m.measure(ctx, qs, label, at, a.Interval)
		if err != nil {
			return fmt.Errorf("deploy %s step %d: %w", a.DeployID, n, err)
		}
		st := Step{Step: n, At: at}
		if split {
			st.Canary, st.Baseline = pick(figs, a.Version), pick(figs, a.BaselineVersion)
		} else {
			st.Canary = pick(figs, "")
			// The interval before the rollout is the same for every
			// step: measured once, at the first, and kept in its result.
			if len(a.Results) > 0 {
				st.Baseline = a.Results[0].Baseline
			} else {
				base, err := m.measure(ctx, qs, label, a.DeployedAt, a.Interval)
				if err != nil {
					return fmt.Errorf("deploy %s before the rollout: %w", a.DeployID, err)
				}
				st.Baseline = pick(base, "")
				st.Baseline.Failures = 0
			}
		}
		a.advance(st, now)
		taken := a.Results[len(a.Results)-1]
		m.logger.Debug("deploy analysis step", "deploy", a.DeployID, "step", n, "judged", taken.Judged,
			"breaches", len(taken.Breaches), "verdict", a.Verdict)
		if err := m.put(a, prev); err != nil {
			return err
		}
		if a.Done() {
			m.metrics.verdicts.WithLabelValues(a.Verdict).Inc()
			m.logger.Info("deploy analysis decided", "deploy", a.DeployID, "version", a.Version,
				"verdict", a.Verdict, "reason", a.Reason)
		}
	}
	return nil
}

// pick returns the figures of version (a copy with Version set even when
// there were none).
func pick(figs map[string]*Figures, version string) Figures {
	if f, ok := figs[version]; ok {
		return *f
	}
	return Figures{Version: version, Signals: map[string]float64{}}
}

// raise hands a failure to the rollback logic and opens its incident; both
// are idempotent, so a crash in between is mended at the next tick.
func (m *Manager) raise(ctx context.Context, s settings, a *Analysis, prev *[]byte) error {
	if m.opts.Incidents == nil {
		return nil
	}
	figures, err := json.Marshal(struct {
		DeployID        string  `json:"deploy_id"`
		Strategy        string  `json:"strategy"`
		Version         string  `json:"version"`
		BaselineVersion string  `json:"baseline_version,omitempty"`
		Step            int     `json:"step"`
		Steps           int     `json:"steps"`
		Failure         *Breach `json:"failure"`
		Result          Step    `json:"result"`
	}{a.DeployID, a.Strategy, a.Version, a.BaselineVersion, a.FailedStep, a.Steps, a.Failure, a.Results[len(a.Results)-1]})
	if err != nil {
		return err
	}
	if err := m.opts.Deploys.NoteAnalysisFailure(a.DeployID, figures); err != nil {
		return err
	}
	labels := map[string]string{
		"alertname":            AlertName,
		"severity":             "critical",
		"app":                  s.app,
		"service":              a.Service,
		"environment":          a.Environment,
		"version":              a.Version,
		rollback.LabelDeployID: a.DeployID,
	}
	inc, err := m.opts.Incidents.Raise(ctx, notifier.Alert{
		Labels: labels,
		Annotations: map[string]string{
			"summary":     fmt.Sprintf("%s %s failed its %s analysis at step %d of %d", a.Service, a.Version, a.Strategy, a.FailedStep, a.Steps),
			"description": a.Failure.Detail + "; baseline " + orNone(a.BaselineVersion),
		},
		Value:    a.Failure.Canary,
		ActiveAt: a.DecidedAt,
		FiredAt:  a.DecidedAt,
		Source:   rollback.SourceAnalysis,
	})
	if err != nil {
		return fmt.Errorf("opening the incident of deploy %s: %w", a.DeployID, err)
	}
	a.IncidentID = inc.ID
	m.logger.Warn("deploy failed its analysis; incident opened", "deploy", a.DeployID, "version", a.Version, "incident", inc.ID, "reason", a.Reason)
	return m.put(a, prev)
}

func orNone(s string) string {
	if s == "" {
		return "the app before the deploy"
	}
	return s
}

// Analysis returns the analysis of a deploy.
func (m *Manager) Analysis(deployID string) (*Analysis, bool, error) {
	a, ok, err := m.get(deployID)
	if err != nil || !ok {
		return nil, ok, err
	}
	return &a, true, nil
}

// Analyses returns up to limit analyses, newest deploy first.
func (m *Manager) Analyses(limit int) ([]Analysis, error) {
	all, _, err := m.list()
	if err != nil {
		return nil, err
	}
	slices.Reverse(all)
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

func key(deployID string) (string, bool) {
	n, err := strconv.ParseUint(deployID, 10, 64)
	if err != nil {
		return "", false
	}
	return fmt.Sprintf("%s%020d", keyAnalysis, n), true
}

func (m *Manager) get(deployID string) (Analysis, bool, error) {
	k, ok := key(deployID)
	if !ok {
		return Analysis{}, false, nil
	}
	b, ok, err := m.kv.Get(k)
	if err != nil || !ok {
		return Analysis{}, false, err
	}
	var a Analysis
	if err := json.Unmarshal(b, &a); err != nil {
		return Analysis{}, false, fmt.Errorf("decoding the analysis of deploy %s: %w", deployID, err)
	}
	return a, true, nil
}

// errMoved is why put did not write: the stored record is no longer the
// one read, another gateway sharing the store wrote it in between.
var errMoved = errors.New("analysis: the record was changed by another gateway")

// put stores a when the stored record is still *prev (absent when *prev is
// nil), in one compare-and-swap, and makes *prev what it wrote. Two
// gateways tick the same analyses: the one that read a record another has
// moved on since gets errMoved and writes nothing, so a stale step never
// overwrites a newer one.
func (m *Manager) put(a *Analysis, prev *[]byte) error {
	k, ok := key(a.DeployID)
	if !ok {
		return fmt.Errorf("deploy ID %q is not a number", a.DeployID)
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	swapped, err := notifier.Swap(m.kv, k, *prev, b)
	if err != nil {
		return fmt.Errorf("storing the analysis of deploy %s: %w", a.DeployID, err)
	}
	if !swapped {
		return fmt.Errorf("deploy %s: %w", a.DeployID, errMoved)
	}
	*prev = b
	return nil
}

// list returns the kept analyses, oldest deploy first, each with the
// stored bytes it was read from (for put), and trims the oldest beyond
// keep.
func (m *Manager) list() ([]Analysis, [][]byte, error) {
	all, err := m.kv.List(keyAnalysis)
	if err != nil {
		return nil, nil, fmt.Errorf("listing analyses: %w", err)
	}
	keys := slices.Sorted(maps.Keys(all))
	for len(keys) > keep {
		if err := m.kv.Delete(keys[0]); err != nil {
			return nil, nil, fmt.Errorf("trimming analyses: %w", err)
		}
		keys = keys[1:]
	}
	out := make([]Analysis, 0, len(keys))
	raws := make([][]byte, 0, len(keys))
	for _, k := range keys {
		var a Analysis
		if err := json.Unmarshal(all[k], &a); err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", k, err)
		}
		out = append(out, a)
		raws = append(raws, all[k])
	}
	return out, raws, nil
}
