package config

import "time"

// Built-in defaults. They are set before decoding, so a key in the file wins,
// as in Prometheus's config package.
const (
	DefaultService     = "app"
	DefaultEnvironment = EnvDevelopment
	DefaultDataDir     = "./data"
	DefaultListen      = ":9090"
	DefaultInterval    = 15 * time.Second
	// DefaultEvaluationInterval is how often rules are evaluated.
	DefaultEvaluationInterval = time.Second
	DefaultMetricsPath        = "/metrics"
	DefaultRetention          = 24 * time.Hour
	// DefaultIncidentRetention is how long a resolved incident is kept.
	DefaultIncidentRetention = 90 * 24 * time.Hour
	DefaultMaxSize           = Size(100 << 20)
	DefaultMaxFiles          = 10
	// DefaultScrapeTimeout is capped at the scrape interval.
	DefaultScrapeTimeout  = 10 * time.Second
	DefaultWebhookTimeout = 10 * time.Second
	DefaultRepeatLimit    = 3
	// DefaultRuleLimit bounds the series or alerts of one rule evaluation:
	// a sidecar must not let one runaway rule fill its memory.
	DefaultRuleLimit = 10000
	// DefaultResolveTimeout is ingest.resolve_timeout: Alertmanager's
	// global.resolve_timeout default.
	DefaultResolveTimeout = 5 * time.Minute
	// DefaultAbsentAfter is how long a rule's inputs may be missing before
	// the rule is reported dead.
	DefaultAbsentAfter = 10 * time.Minute
	// DefaultStormThreshold is escalation.storm_threshold.
	DefaultStormThreshold = 100
	// GroupByAll is the escalation.group_by entry that groups by every
	// label (one incident per alert), as Alertmanager's "..." does.
	GroupByAll = "..."
)

// newConfig returns a Config that holds every default that a key in the file
// may override.
func newConfig() *Config {
	return &Config{
		Service:     DefaultService,
		Environment: DefaultEnvironment,
		DataDir:     DefaultDataDir,
		Logging: LoggingConfig{
			Level:    "info",
			Format:   "json",
			Output:   "stdout",
			MaxSize:  DefaultMaxSize,
			MaxFiles: DefaultMaxFiles,
		},
		Metrics: MetricsConfig{
			Path:     DefaultMetricsPath,
			Interval: Duration(DefaultInterval),
		},
		Storage: StorageConfig{
			Retention:         Duration(DefaultRetention),
			IncidentRetention: Duration(DefaultIncidentRetention),
		},
		Query: defaultQuery(),
		Ingest: IngestConfig{
			ResolveTimeout: Duration(DefaultResolveTimeout),
		},
		Escalation: EscalationConfig{
			ResponseTimes: map[string]Duration{
				"critical": Duration(time.Hour),
				"high":     Duration(4 * time.Hour),
				"medium":   Duration(24 * time.Hour),
				"low":      Duration(48 * time.Hour),
			},
			Priorities: map[string]string{
				"critical": "critical",
				"high":     "high",
				"warning":  "medium",
				"medium":   "medium",
				"info":     "low",
				"low":      "low",
			},
			RepeatLimit:    DefaultRepeatLimit,
			StormThreshold: DefaultStormThreshold,
			GroupBy:        DefaultGroupBy(),
		},
		Alerts: AlertsConfig{
			Limit:       DefaultRuleLimit,
			AbsentAfter: Duration(DefaultAbsentAfter),
		},
		Rollback: RollbackConfig{
			Window:   Duration(30 * time.Minute),
			Cooldown: Duration(time.Hour),
		},
		positions: map[string]int{},
		names:     map[string]string{},
	}
}

// applyDefaults fills what depends on other keys or on a block being present.
func (c *Config) applyDefaults() {
	interval := c.Metrics.Interval
	col := &c.Collectors
	if a := col.App; a != nil {
		// The top-level metrics block is the seed's application metrics
		// block: its labels are the app's, below collectors.app.labels.
		for _, name := range sortedKeys(c.Metrics.Labels) {
			a.Labels = withDefaultLabel(a.Labels, name, c.Metrics.Labels[name])
		}
		a.Labels = withDefaultLabel(a.Labels, "app", "app")
		if a.Path == "" {
			a.Path = DefaultMetricsPath
		}
		if a.Interval == 0 {
			a.Interval = interval
		}
		if a.Scheme == "" {
			a.Scheme = "http"
		}
		if a.Timeout == 0 {
			a.Timeout = min(a.Interval, Duration(DefaultScrapeTimeout))
		}
		if tp := a.TLSProbe; tp != nil {
			if tp.Interval == 0 {
				tp.Interval = a.Interval
			}
			if tp.Timeout == 0 {
				tp.Timeout = min(tp.Interval, Duration(DefaultScrapeTimeout))
			}
		}
		if h := a.Health; h != nil {
			if h.Interval == 0 {
				h.Interval = a.Interval
			}
			if h.Timeout == 0 {
				h.Timeout = min(h.Interval, Duration(DefaultScrapeTimeout))
			}
			if len(h.ExpectStatus) == 0 {
				h.ExpectStatus = []int{200}
			}
		}
	}
	if i := col.Infrastructure; i != nil {
		i.Labels = withDefaultLabel(i.Labels, "app", "infrastructure")
		if i.Interval == 0 {
			i.Interval = interval
		}
	}
	if db := col.Database; db != nil {
		db.Labels = withDefaultLabel(db.Labels, "app", "database")
		if db.Interval == 0 {
			db.Interval = interval
		}
	}
	for i := range col.Logs {
		l := &col.Logs[i]
		if l.MaxSize == 0 {
			l.MaxSize = DefaultMaxSize
		}
		if l.MaxFiles == 0 {
			l.MaxFiles = DefaultMaxFiles
		}
	}
	if col.Self == nil {
		col.Self = &SelfCollectorConfig{}
	}
	if col.Self.Enabled == nil {
		on := true
		col.Self.Enabled = &on
	}
	for i := range c.Receivers {
		if w := c.Receivers[i].Webhook; w != nil && w.Timeout == 0 {
			w.Timeout = Duration(DefaultWebhookTimeout)
		}
	}
	if w := c.Rollback.Webhook; w != nil && w.Timeout == 0 {
		w.Timeout = Duration(DefaultWebhookTimeout)
	}
	if c.Roles == nil {
		c.Roles = defaultRoles()
	}
	if c.Permissions == nil {
		c.Permissions = defaultPermissions()
	}
}

// SelfEnabled reports whether vigil scrapes its own metrics.
func (c *Config) SelfEnabled() bool {
	s := c.Collectors.Self
	return s == nil || s.Enabled == nil || *s.Enabled
}

func withDefaultLabel(labels map[string]string, name, value string) map[string]string {
	if _, ok := labels[name]; ok {
		return labels
	}
	if labels == nil {
		labels = map[string]string{}
	}
	labels[name] = value
	return labels
}

// DefaultGroupBy is escalation.group_by: the labels that name a problem,
// not those that name a replica (instance, pod, job).
func DefaultGroupBy() []string {
	return []string{"alertname", "service", "environment", "app"}
}
