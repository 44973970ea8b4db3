// Package collector scrapes the app's metrics endpoints and vigil's own
// /metrics into the embedded TSDB, with Prometheus's scrape and discovery
// managers. Only static and file service discovery are linked in: the cloud
// discoveries would double the binary and its idle memory.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/file" // file_sd; static is part of discovery itself.
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-sh/vigil/config"
)

// DefaultReloadInterval is how long a change of targets takes at most to
// reach the scrape loops when Options.ReloadInterval is 0. Prometheus waits
// 5s twice (discovery, then scrape manager) to absorb churn from cloud
// discoveries; static and file targets hardly churn, and a sidecar should
// scrape soon after it starts.
const DefaultReloadInterval = time.Second

// Options configure the Manager.
type Options struct {
	// Appendable receives every scraped sample; a *tsdb.DB is one. It is
	// the AppendableV2 interface because that is what Prometheus v0.316's
	// own server hands its scrape manager (storage.Appendable is the older
	// path being migrated away from).
	Appendable storage.AppendableV2
	// SelfTarget is host:port where vigil's own HTTP listener answers;
	// empty disables the self-scrape.
	SelfTarget string
	// SelfMetricsPath is the path of vigil's own metrics; empty means
	// metrics.path from the config, else /metrics.
	SelfMetricsPath string
	// SelfInstance is the instance label of vigil's own series; empty means
	// SelfTarget. It keeps them one series across restarts when SelfTarget
	// is a port the kernel picks (the loopback listener vigil scrapes
	// itself through when its listener speaks TLS).
	SelfInstance string
	// ReloadInterval bounds how often discovered target changes are passed
	// from discovery to the scrape loops; 0 means DefaultReloadInterval.
	ReloadInterval time.Duration
}

// Manager runs the scrape of the app's targets and of vigil itself.
type Manager struct {
	opts   Options
	logger *slog.Logger

	scrape          *scrape.Manager
	discovery       *discovery.Manager
	cancelDiscovery context.CancelFunc
	set             *Set
	// closeSources releases what the running collectors hold (the
	// database pool).
	closeSources func()

	applyMtx sync.Mutex
	started  atomic.Bool
}

// New creates the scrape and discovery managers and registers their metrics
// on reg. Nothing is scraped until ApplyConfig and Run.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if opts == nil || opts.Appendable == nil {
		return nil, errors.New("collector: no appendable to write samples to")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	o := *opts
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = DefaultReloadInterval
	}

	sm, err := scrape.NewManager(
		&scrape.Options{DiscoveryReloadInterval: model.Duration(o.ReloadInterval)},
		logger.With("manager", "scrape"),
		nil, // no scrape failure log files
		nil, batchingAppendable{AppendableV2: o.Appendable, perCommit: newSeriesPerCommit},
		reg,
	)
	if err != nil {
		return nil, fmt.Errorf("collector: create scrape manager: %w", err)
	}

	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		sm.UnregisterMetrics()
		return nil, fmt.Errorf("collector: register service discovery metrics: %w", err)
	}
	// The discovery manager lives until Run's context is done; its own
	// context only exists because discovery.NewManager wants one at birth.
	ctx, cancel := context.WithCancel(context.Background())
	dm := discovery.NewManager(ctx, logger.With("manager", "discovery"), reg, sdMetrics,
		discovery.Name("scrape"), discovery.Updatert(o.ReloadInterval))
	if dm == nil {
		cancel()
		sm.UnregisterMetrics()
		return nil, errors.New("collector: create discovery manager: its metrics could not be registered (is the registerer shared with another collector?)")
	}

	return &Manager{
		opts:            o,
		logger:          logger,
		scrape:          sm,
		discovery:       dm,
		cancelDiscovery: cancel,
		set:             NewSet(logger, reg),
		closeSources:    func() {},
	}, nil
}

// ApplyConfig builds the scrape configs from cfg and applies them to the
// scrape and discovery managers. A config that does not validate returns an
// error and leaves the running config untouched.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	m.applyMtx.Lock()
	defer m.applyMtx.Unlock()

	scfgs, err := scrapeConfigs(cfg, m.opts.SelfTarget, m.opts.SelfMetricsPath)
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if m.opts.SelfInstance != "" {
		for _, sc := range scfgs {
			if sc.JobName == JobSelf {
				setInstance(sc, m.opts.SelfInstance)
			}
		}
	}
	collectors, labels, closeSources, err := buildCollectors(cfg, m.logger)
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if len(collectors) > 0 && m.opts.SelfTarget == "" {
		m.logger.Warn("collectors are served on /metrics but not stored: vigil cannot scrape its own listener (TLS)",
			"collectors", len(collectors))
	}
	// Load of an empty file is the one way to get a Config the scrape
	// manager accepts (it refuses configs that did not go through Load);
	// the scrape configs were validated above as Load would.
	pcfg, err := promconfig.Load("", m.logger)
	if err != nil {
		return fmt.Errorf("collector: prometheus default config: %w", err)
	}
	pcfg.ScrapeConfigs = scfgs

	// Scrape configs first, then discovery, as Prometheus does: targets that
	// discovery sends must find their scrape config.
	// The collectors are in place before the scrapes that read them.
	prevCollectors, prevLabels := m.set.Replace(collectors, labels)
	fail := func(err error) error {
		m.set.Replace(prevCollectors, prevLabels)
		closeSources()
		return err
	}
	if err := m.scrape.ApplyConfig(pcfg); err != nil {
		return fail(fmt.Errorf("collector: apply scrape config: %w", err))
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	if err := m.discovery.ApplyConfig(sd); err != nil {
		return fail(fmt.Errorf("collector: apply discovery config: %w", err))
	}
	m.closeSources()
	m.closeSources = closeSources
	jobs := make([]string, 0, len(scfgs))
	for _, sc := range scfgs {
		jobs = append(jobs, sc.JobName)
	}
	m.logger.Info("scrape config applied", "jobs", jobs)
	return nil
}

// Run runs discovery and scraping until ctx is done. When it returns, every
// scrape loop has stopped and nothing appends any more, so the caller may
// close the storage. Run may be called once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("collector: Run called twice")
	}
	var g run.Group
	{
		// Stop returns only after every scrape loop has returned; run.Group
		// calls it before Run returns, which is what makes closing the TSDB
		// after Run safe. It comes first so that it runs before discovery
		// stops and closes the channel the scrape manager reads.
		g.Add(func() error {
			if err := m.scrape.Run(m.discovery.SyncCh()); err != nil {
				return fmt.Errorf("scrape manager: %w", err)
			}
			return nil
		}, func(error) {
			m.scrape.Stop()
		})
	}
	{
		g.Add(func() error {
			if err := m.discovery.Run(); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("discovery manager: %w", err)
			}
			return nil
		}, func(error) {
			m.cancelDiscovery()
		})
	}
	{
		stop := make(chan struct{})
		g.Add(func() error {
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		}, func(error) {
			close(stop)
		})
	}
	err := g.Run()
	m.applyMtx.Lock()
	m.closeSources()
	m.closeSources = func() {}
	m.applyMtx.Unlock()
	m.logger.Info("scrape stopped")
	return err
}

// Collectors returns the collectors vigil serves under CollectorsPath.
func (m *Manager) Collectors() *Set { return m.set }

// ScrapeManager returns the Prometheus scrape manager, for the targets API.
func (m *Manager) ScrapeManager() *scrape.Manager { return m.scrape }
