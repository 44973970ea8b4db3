package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/scrape"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-sh/vigil/analysis"
	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/collector"
	"github.com/vigil-sh/vigil/collector/host"
	"github.com/vigil-sh/vigil/collector/logs"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/backup"
	"github.com/vigil-sh/vigil/notifier/rollback"
	"github.com/vigil-sh/vigil/rules"
	"github.com/vigil-sh/vigil/storage"
	"github.com/vigil-sh/vigil/web"
)

// sidecarGCPercent is vigil's default GOGC.
const sidecarGCPercent = 50

// startupPagesAfter is how long after start vigil releases its start-up
// pages (see releaseStartupPages).
const startupPagesAfter = 30 * time.Second

// reloader is one subsystem that takes a new config.
type reloader struct {
	name  string
	apply func(*config.Config) error
}

// serve runs vigil until SIGTERM or SIGINT and returns the exit code.
func serve(configFile string, stderr io.Writer) int {
	cfg, err := loadConfig(configFile)
	if err != nil {
		fmt.Fprintf(stderr, "vigil: cannot load config:\n")
		printErrors(stderr, err)
		return 1
	}
	level := new(slog.LevelVar)
	logger, logCloser, err := newLogger(cfg.Logging, level)
	if err != nil {
		fmt.Fprintf(stderr, "vigil: %s\n", err)
		return 1
	}
	defer logCloser.Close()
	if err := serveWith(configFile, cfg, logger, level); err != nil {
		logger.Error("vigil stopped", "err", err)
		return 1
	}
	return 0
}

func loadConfig(file string) (*config.Config, error) {
	var (
		cfg *config.Config
		err error
	)
	if file == "" {
		cfg = config.Default()
	} else if cfg, err = config.Load(file); err != nil {
		return nil, err
	}
	if err := rules.CheckConfig(cfg); err != nil {
		return nil, err
	}
	// Staging and production refuse to run without users.
	if err := auth.Check(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func serveWith(configFile string, cfg *config.Config, logger *slog.Logger, level *slog.LevelVar) error {
	// A sidecar's heap is small and steady: collect at 50% growth rather than
	// Go's 100% (Prometheus 3 uses 75%), and at a bounded growth once the
	// heap is large (tuneGC). This keeps vigil's resident memory near its
	// live heap for little CPU; GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(sidecarGCPercent)
		defer tuneGC(logger)()
	}
	// A container's memory limit is where the kernel kills vigil: Go's
	// collector should try hard to stay under it first.
	setMemoryLimit(logger, host.MemoryLimit)
	logger.Info("starting vigil", "version", versionString(), "config", orDefault(configFile, "built-in default"),
		"environment", cfg.Environment, "service", cfg.Service)
	if configFile == "" {
		logger.Warn("no --config given: running the built-in default config (development environment, data in ./data, notifications to the log)")
	}
	for _, w := range cfg.Warnings {
		logger.Warn("config", "warning", w)
	}

	// Only main touches a registry; every subsystem gets this one.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("vigil"),
	)
	reloadOK := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_config_last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful.",
	})
	reloadTime := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_config_last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration reload.",
	})
	reg.MustRegister(reloadOK, reloadTime)

	db, err := storage.Open(&storage.Options{
		Dir:       cfg.DataDir,
		Retention: time.Duration(cfg.Storage.Retention),
	}, logger.With("component", "storage"), reg)
	if err != nil {
		return fmt.Errorf("opening storage in %s: %w", cfg.DataDir, err)
	}
	// Every manager below stops before this runs: the group returns only after
	// all of its actors have returned.
	defer func() {
		if err := db.Close(); err != nil {
			logger.Error("closing storage", "err", err)
		}
	}()

	interval := cfg.Interval()
	// Rules and the HTTP API get an engine each, told apart by an engine
	// label on their metrics: the API's is bounded by the query block (its
	// concurrency by the web handler), so no caller of the API can hold
	// what rule evaluation needs. Rules are the operator's own and keep
	// Prometheus's bounds.
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               logger.With("component", "query engine", "engine", "rules"),
		Reg:                  prometheus.WrapRegistererWith(prometheus.Labels{"engine": "rules"}, reg),
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Subqueries without a step use the evaluation interval, as in Prometheus.
		NoStepSubqueryIntervalFn: func(int64) int64 { return interval.Milliseconds() },
	})
	queryEngine := promql.NewEngine(promql.EngineOpts{
		Logger:                   logger.With("component", "query engine", "engine", "api"),
		Reg:                      prometheus.WrapRegistererWith(prometheus.Labels{"engine": "api"}, reg),
		MaxSamples:               cfg.Query.MaxSamples,
		Timeout:                  time.Duration(cfg.Query.Timeout),
		LookbackDelta:            time.Duration(cfg.Query.LookbackDelta),
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return interval.Milliseconds() },
	})

	externalURL, err := externalURL(cfg)
	if err != nil {
		return err
	}

	self := selfTarget(cfg)
	// With TLS, vigil scrapes itself over a loopback-only plain listener.
	var loopback *loopbackMetrics
	selfInstance := ""
	if tlsConfigured(cfg) {
		if loopback, err = newLoopbackMetrics(cfg.Metrics.Path); err != nil {
			return err
		}
		defer loopback.ln.Close()
		self = loopback.addr()
		// vigil's own series keep one instance across restarts: the
		// listen address, not the loopback port of the day.
		selfInstance = cfg.ListenAddress()
	}
	// Remote write tails the TSDB's WAL; the fanout only tells it the
	// timestamps appended, so it knows how far behind its queues are.
	var scrapes *collector.Manager
	remoteWrite := storage.NewRemote(cfg.DataDir, func() *scrape.Manager {
		if scrapes == nil {
			return nil
		}
		return scrapes.ScrapeManager()
	}, logger.With("component", "remote"), reg)
	// After every appender has stopped, before the TSDB closes: queues get
	// storage.RemoteFlushDeadline to send what they hold.
	defer func() {
		if err := remoteWrite.Close(); err != nil {
			logger.Error("closing remote write", "err", err)
		}
	}()
	db.SetWriteNotified(remoteWrite)
	appendable := promstorage.NewFanout(logger.With("component", "fanout"), db, remoteWrite)
	scrapes, err = collector.New(&collector.Options{
		Appendable:      appendable,
		SelfTarget:      self,
		SelfMetricsPath: cfg.Metrics.Path,
		SelfInstance:    selfInstance,
	}, logger.With("component", "scrape"), reg)
	if err != nil {
		return err
	}
	logManager, err := logs.New(&logs.Options{DataDir: cfg.DataDir}, logger.With("component", "logs"), reg)
	if err != nil {
		return err
	}
	// One incident store: the notifier's incidents and deliveries, the
	// rollback logic's deploys and cooldowns, the receivers' own state.
	store, err := openIncidentStore(cfg, logger, reg)
	if err != nil {
		return err
	}
	defer store.Close()
	// Users and roles added at runtime live in the same store; the config
	// seeds them and wins.
	directory, err := auth.NewDirectory(store.KV("auth"), logger.With("component", "auth"))
	if err != nil {
		return err
	}
	rollbacks, err := rollback.New(&rollback.Options{KV: store.KV("rollback"), ExternalURL: externalURL.String()},
		logger.With("component", "rollback"), reg)
	if err != nil {
		return err
	}
	// The backup job's reports (POST /api/v1/backups), for the DR watch rules.
	backups, err := backup.New(&backup.Options{KV: store.KV("backup")}, logger.With("component", "backup"), reg)
	if err != nil {
		return err
	}
	notifications, err := notifier.New(&notifier.Options{
		Store:       store,
		Receivers:   receivers(rollbacks, store, logger.With("component", "notifier"), reg),
		Rollback:    rollbacks,
		ExternalURL: externalURL.String(),
		// The reconcile actor below runs Reconcile.
		Reconcile: true,
		Lease:     time.Duration(cfg.Storage.Lease),
	}, logger.With("component", "notifier"), reg)
	if err != nil {
		return err
	}
	// After every actor has returned: no delivery is in flight any more.
	defer notifications.Close()
	// alerts.forward: the rules' alerts go to the gateways, and to the
	// local notifier only without forwarding or with notify_locally.
	forward := newForwarder(cfg, notifications.Notify, externalURL, logger.With("component", "forward"))
	// Deploy analysis reads the TSDB with the rules' engine and hands a
	// failed deploy to the notifier, whose incident asks the rollback logic.
	analyses, err := analysis.New(&analysis.Options{
		Queryable: db,
		Engine:    engine,
		KV:        store.KV("analysis"),
		Deploys:   rollbacks,
		Incidents: notifications,
	}, logger, reg)
	if err != nil {
		return err
	}
	slackButtons := &slackInteractions{incidents: notifications, logger: logger.With("component", "slack")}
	ruleManager, err := rules.New(&rules.Options{
		Queryable:   db,
		Appendable:  appendable,
		Engine:      engine,
		ExternalURL: externalURL,
		NotifyFunc:  forward.Notify,
	}, logger.With("component", "rules"), reg)
	if err != nil {
		return err
	}

	reloadRequests := make(chan chan error)
	webHandler := web.New(&web.Options{
		ListenAddress: cfg.ListenAddress(),
		ExternalURL:   externalURL,
		DB:            db,
		QueryEngine:   queryEngine,
		// The engine's own bounds, which it keeps until a restart.
		QueryMaxSamples:             cfg.Query.MaxSamples,
		QueryNoStepSubqueryInterval: interval,
		Rules:                       ruleManager,
		DeadRules:                   ruleManager.DeadRules,
		Targets:                     scrapes.ScrapeManager(),
		Gatherer:                    prometheus.Gatherers{reg, forward.Gatherer()},
		Collectors:                  scrapes.Collectors(),
		LogLines:                    func(log string, limit int) (any, error) { return logManager.Lines(log, limit) },
		LogStatus:                   logManager.Status,
		Incidents:                   notifications,
		Silences:                    notifications,
		Alertmanager:                notifications,
		Deploys:                     rollbacks,
		Analyses:                    analyses,
		Backups:                     backups,
		SlackInteractions:           slackButtons,
		Auth:                        directory.Authenticator,
		Directory:                   directory,
		AuditStore:                  store.KV("audit"),
		RemoteWrite:                 remoteWrite.Status,
		Forward:                     forward.Status,
		Store:                       notifications.StoreStatus,
		Reload: func() error {
			done := make(chan error, 1)
			select {
			case reloadRequests <- done:
			case <-time.After(time.Minute):
				return errors.New("reload is busy")
			}
			return <-done
		},
	}, logger.With("component", "web"), reg)
	// Slack's buttons ask the route table's permissions, as the API does.
	slackButtons.authorize = webHandler.AuthorizeIncidentAction

	reloaders := []reloader{
		// Who may call what comes first: a config whose users are bad is
		// refused before anything else changes.
		{"auth", func(c *config.Config) error {
			if err := directory.ApplyConfig(c); err != nil {
				return err
			}
			// Runtime users turn authentication on even when the config has none.
			if w := auth.Warning(c); w != "" && directory.Authenticator().Open() {
				logger.Warn(w)
			}
			if w := openListenWarning(c); w != "" && directory.Authenticator().Open() {
				logger.Warn(w)
			}
			return nil
		}},
		// Rules first: rule files are read here and are the likeliest to be bad.
		{"rules", ruleManager.ApplyConfig},
		{"scrape", scrapes.ApplyConfig},
		{"logs", logManager.ApplyConfig},
		// The rollback rules before the notifier that asks them.
		{"rollback", rollbacks.ApplyConfig},
		{"notifier", notifications.ApplyConfig},
		// alerts.forward and global.external_labels on forwarded alerts.
		{"forward", forward.ApplyConfig},
		{"analysis", analyses.ApplyConfig},
		{"slack", slackButtons.ApplyConfig},
		{"web", webHandler.ApplyConfig},
		// remote_write and global.external_labels.
		{"remote write", remoteWrite.ApplyConfig},
		{"self-scrape", func(c *config.Config) error {
			if loopback != nil {
				loopback.setPath(c.Metrics.Path)
			}
			return nil
		}},
		{"logging", func(c *config.Config) error {
			return level.UnmarshalText([]byte(orDefault(c.Logging.Level, "info")))
		}},
		// The seed's backup, disaster_recovery and security blocks, as
		// gauges, and whether data_dir is on an encrypted device.
		{"seed-info", collector.NewSeedInfo(reg, logger).ApplyConfig},
		// The DR watch starts counting when a backup block first appears.
		{"backup", backups.ApplyConfig},
	}
	current := cfg
	// Nothing runs before the first config is applied.
	if err := applyConfig(reloaders, nil, cfg); err != nil {
		return err
	}
	reloadOK.Set(1)
	reloadTime.SetToCurrentTime()
	webHandler.SetReady(true)
	logger.Info("ready", "listen", cfg.ListenAddress(), "seed_rules", len(cfg.Alerts.Rules), "rule_files", len(cfg.RuleFiles),
		"self_scrape", self != "")

	var g run.Group
	{
		// Once the first scrapes and evaluations have touched what vigil
		// keeps using, the pages only start-up needed are handed back.
		stop := make(chan struct{})
		g.Add(func() error {
			releaseStartupPages(logger, startupPagesAfter, stop)
			<-stop
			return nil
		}, func(error) { close(stop) })
	}
	{
		// Termination on SIGTERM or SIGINT.
		term := make(chan os.Signal, 1)
		signal.Notify(term, os.Interrupt, syscall.SIGTERM)
		cancel := make(chan struct{})
		g.Add(func() error {
			select {
			case s := <-term:
				logger.Info("received signal, shutting down", "signal", s.String())
			case <-cancel:
			}
			return nil
		}, func(error) {
			signal.Stop(term)
			close(cancel)
		})
	}
	{
		// Reload on SIGHUP and POST /-/reload; a bad config keeps the old one.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		cancel := make(chan struct{})
		g.Add(func() error {
			for {
				var done chan error
				select {
				case <-hup:
				case done = <-reloadRequests:
				case <-cancel:
					return nil
				}
				next, err := reload(configFile, reloaders, current, logger)
				if err != nil {
					reloadOK.Set(0)
				} else {
					current = next
					reloadOK.Set(1)
					reloadTime.SetToCurrentTime()
				}
				if done != nil {
					done <- err
				}
			}
		}, func(error) {
			signal.Stop(hup)
			close(cancel)
		})
	}
	{
		// Scraping stops (no more appends) before the storage closes at the end of serveWith.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return scrapes.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return ruleManager.Run(ctx) }, func(error) { cancel() })
	}
	{
		// Stopping saves the tail positions and flushes the rotated files.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return logManager.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return notifications.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return forward.Run(ctx) }, func(error) { cancel() })
	}
	{
		// After a restart the rules only know the alerts firing now: an
		// incident whose alert ended while vigil was down is resolved once
		// the rules have evaluated samples scraped since this start. The
		// actor then waits for the end, as run.Group stops all when one
		// returns.
		fresh := newFreshRules(scrapes.ScrapeManager(), ruleManager, time.Now(), queryLookback,
			len(cfg.Alerts.Rules)+len(cfg.RuleFiles) > 0)
		ctx, cancel := context.WithCancel(context.Background())
		// A rule over its limit had its alerts dropped unresolved: once it
		// is back under, its incidents are reconciled the same way.
		var (
			reconcileMtx sync.Mutex
			stopped      bool
			reconciles   sync.WaitGroup
		)
		ruleManager.OnLimitCleared(func(_, rule string) {
			reconcileMtx.Lock()
			defer reconcileMtx.Unlock()
			if !stopped {
				reconciles.Go(func() { _ = notifications.ReconcileRule(ctx, fresh, interval, rule) })
			}
		})
		g.Add(func() error {
			_ = notifications.Reconcile(ctx, fresh, interval)
			<-ctx.Done()
			reconcileMtx.Lock()
			stopped = true
			reconcileMtx.Unlock()
			reconciles.Wait()
			return nil
		}, func(error) { cancel() })
	}
	{
		// A change of the app's *_build_info version is a deploy too.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return rollbacks.WatchBuildInfo(ctx, db) }, func(error) { cancel() })
	}
	{
		// Deploys that carry a strategy, judged against their baseline.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return analyses.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return webHandler.Run(ctx) }, func(error) { cancel() })
	}
	if loopback != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return loopback.serve(ctx, webHandler, logger.With("component", "web")) }, func(error) { cancel() })
	}
	err = g.Run()
	logger.Info("see you next time")
	return err
}

// reload loads the config file again and applies it; on any error the old
// config stays in force everywhere.
func reload(file string, reloaders []reloader, current *config.Config, logger *slog.Logger) (*config.Config, error) {
	start := time.Now()
	next, err := loadConfig(file)
	if err != nil {
		logger.Error("reload failed: keeping the old config", "file", file, "err", err)
		return nil, err
	}
	if err := applyConfig(reloaders, current, next); err != nil {
		logger.Error("reload failed: keeping the old config", "file", file, "err", err)
		return nil, err
	}
	for _, w := range next.Warnings {
		logger.Warn("config", "warning", w)
	}
	logger.Info("config reloaded", "file", orDefault(file, "built-in default"), "took", time.Since(start))
	return next, nil
}

// applyConfig applies cfg to every reloader in order. When one fails, those
// already applied get the old config back, so vigil runs on one config only.
func applyConfig(reloaders []reloader, old, cfg *config.Config) error {
	for i, r := range reloaders {
		if err := r.apply(cfg); err != nil {
			if old != nil {
				for _, back := range reloaders[:i] {
					_ = back.apply(old)
				}
			}
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return nil
}

// tlsConfigured reports whether the listener speaks TLS.
func tlsConfigured(cfg *config.Config) bool {
	return cfg.Server.TLS.CertFile != "" || cfg.Server.CertFile != ""
}

// selfTarget is where vigil scrapes its own metrics on its listener, or ""
// when it cannot (with TLS, see loopbackMetrics).
func selfTarget(cfg *config.Config) string {
	if tlsConfigured(cfg) {
		return ""
	}
	host, port, err := net.SplitHostPort(cfg.ListenAddress())
	if err != nil {
		return ""
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func externalURL(cfg *config.Config) (*url.URL, error) {
	if cfg.Server.ExternalURL != "" {
		u, err := url.Parse(cfg.Server.ExternalURL)
		if err != nil {
			return nil, fmt.Errorf("server.external_url %q: %w", cfg.Server.ExternalURL, err)
		}
		return u, nil
	}
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(cfg.ListenAddress())
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.ListenAddress(), err)
	}
	scheme := "http"
	if cfg.Server.TLS.CertFile != "" || cfg.Server.CertFile != "" {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(orDefault(host, "localhost"), port)}, nil
}

func versionString() string {
	return version.Version + " (" + version.Revision + ")"
}
