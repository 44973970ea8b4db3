// Package config holds vigil's one YAML configuration file: its types, defaults,
// strict decoding with file and line in every error, `${VAR}` expansion and
// validation.
package config

import (
	"net"
	"time"
)

// Environments vigil knows. They decide how far notifications and rollbacks go.
const (
	EnvDevelopment = "development"
	EnvStaging     = "staging"
	EnvProduction  = "production"
)

// Config is the whole configuration file.
type Config struct {
	Service     string `yaml:"service"`
	Environment string `yaml:"environment"`
	DataDir     string `yaml:"data_dir"`

	Server  ServerConfig  `yaml:"server"`
	Logging LoggingConfig `yaml:"logging"`
	Metrics MetricsConfig `yaml:"metrics"`
	Storage StorageConfig `yaml:"storage"`

	Collectors CollectorsConfig `yaml:"collectors"`
	Alerts     AlertsConfig     `yaml:"alerts"`
	RuleFiles  []string         `yaml:"rule_files"`

	Escalation EscalationConfig `yaml:"escalation"`
	Receivers  []ReceiverConfig `yaml:"receivers"`
	Rollback   RollbackConfig   `yaml:"rollback"`
	// Analysis judges deploys that carry a strategy (config/analysis.go).
	Analysis *AnalysisConfig `yaml:"analysis"`

	Users       []UserConfig      `yaml:"users"`
	Roles       RolesConfig       `yaml:"roles"`
	Permissions PermissionsConfig `yaml:"permissions"`

	// The seed's data-security blocks (seedblocks.go): backup and disaster
	// recovery are validated and exported; encryption.in_transit drives
	// vigil's certificate rules; firewall, network, security.groups and
	// encryption.at_rest are validated, checked where vigil can and
	// exported (seedsecurity.go).
	Backup           *BackupConfig           `yaml:"backup"`
	DisasterRecovery *DisasterRecoveryConfig `yaml:"disaster_recovery"`
	Encryption       *EncryptionConfig       `yaml:"encryption"`
	Firewall         *FirewallConfig         `yaml:"firewall"`
	Network          *NetworkConfig          `yaml:"network"`
	Security         SecurityConfig          `yaml:"security"`

	// OwnRules are vigil's own alert rules, kept apart from the seed's
	// alerts.rules: the built-in default's extra rules (own_rules.yml) and
	// the certificate rules that encryption.in_transit asks for. The rules
	// manager runs them as the group "vigil-own-rules".
	OwnRules []RuleConfig `yaml:"-"`

	// Query bounds the Prometheus HTTP API's queries (config/query.go).
	Query QueryConfig `yaml:"query"`

	// Ingest is the Alertmanager API v2 that senders post alerts to
	// (docs/alertmanager-api.md).
	Ingest IngestConfig `yaml:"ingest"`

	// Global holds Prometheus's global.external_labels.
	Global GlobalConfig `yaml:"global"`
	// RemoteWrite are Prometheus remote_write endpoints that receive every
	// sample vigil stores.
	RemoteWrite []RemoteWriteConfig `yaml:"remote_write"`

	// File is the path the config was loaded from; empty for the built-in default.
	File string `yaml:"-"`
	// Warnings are problems that do not stop vigil, such as an unset ${VAR}.
	Warnings []string `yaml:"-"`
	// positions maps a key path ("alerts.rules[2].duration") to its line.
	positions map[string]int
	// names maps a list element's path ("alerts.rules[2]") to its name.
	names map[string]string
}

// ServerConfig is the one HTTP listener.
type ServerConfig struct {
	// Listen is host:port; it wins over metrics.port.
	Listen string    `yaml:"listen"`
	TLS    TLSConfig `yaml:"tls"`
	// CertFile and KeyFile are accepted here as well as under tls.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ExternalURL is how users reach vigil; it goes into alert links.
	ExternalURL string `yaml:"external_url"`
}

// TLSConfig names the server's certificate and key.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// LoggingConfig is the seed's logging block, for vigil's own log.
type LoggingConfig struct {
	Level    string   `yaml:"level"`  // debug | info | warn | error
	Format   string   `yaml:"format"` // json | text
	Output   string   `yaml:"output"` // stdout | stderr | file | both; stdout and stderr also write file when it is set
	File     string   `yaml:"file"`
	MaxSize  Size     `yaml:"maxSize"`
	MaxFiles int      `yaml:"maxFiles"`
	MaxAge   Duration `yaml:"maxAge"`
	Compress bool     `yaml:"compress"`
}

// MetricsConfig is the seed's (application) metrics block: vigil's own
// endpoint, the scrape and evaluation interval, and labels for what vigil
// scrapes of the app (below collectors.app.labels). vigil's own series never
// carry them.
type MetricsConfig struct {
	Port     int               `yaml:"port"`
	Path     string            `yaml:"path"`
	Interval Duration          `yaml:"interval"`
	Labels   map[string]string `yaml:"labels"`
}

// StorageConfig is how long vigil keeps what it stores.
type StorageConfig struct {
	// Retention is how long the embedded TSDB keeps samples.
	Retention Duration `yaml:"retention"`
	// IncidentRetention is how long the notifier keeps a resolved incident
	// after its resolution; 0 keeps incidents for ever. Open incidents are
	// always kept.
	IncidentRetention Duration `yaml:"incident_retention"`
	// Incidents selects the incident store: empty for the embedded bbolt
	// file in data_dir, or a postgres:// DSN whose database two or more
	// gateways share (incidents, deliveries, silences, users and roles,
	// the audit log, deploys). IncidentsFile reads the DSN from a file.
	Incidents     Secret `yaml:"incidents"`
	IncidentsFile string `yaml:"incidents_file"`
	// Lease is how long a gateway's claims in a shared store last unless
	// it renews them (default 15s): a gateway that dies hands its
	// deliveries and deadlines over within about this long.
	Lease Duration `yaml:"lease"`
}

// CollectorsConfig lists the collectors; each entry also takes the seed's metrics keys.
type CollectorsConfig struct {
	App            *AppCollectorConfig      `yaml:"app"`
	Infrastructure *InfraCollectorConfig    `yaml:"infrastructure"`
	Database       *DatabaseCollectorConfig `yaml:"database"`
	Logs           []LogConfig              `yaml:"logs"`
	Loki           *LokiConfig              `yaml:"loki"`
	// Self controls the scrape of vigil's own /metrics (default on).
	Self *SelfCollectorConfig `yaml:"self"`
}

// CollectorMetrics are the seed's metrics keys as they appear in each collector.
type CollectorMetrics struct {
	Port     int               `yaml:"port"`
	Path     string            `yaml:"path"`
	Interval Duration          `yaml:"interval"`
	Labels   map[string]string `yaml:"labels"`
}

// AppCollectorConfig scrapes the application's metrics endpoints.
type AppCollectorConfig struct {
	CollectorMetrics `yaml:",inline"`
	// Targets are host:port of the app's metrics endpoints. When absent, the
	// app is localhost:<port><path>.
	Targets []string `yaml:"targets"`
	// FileSD are Prometheus file_sd files (globs) with more targets.
	FileSD  []string `yaml:"file_sd"`
	Scheme  string   `yaml:"scheme"`
	Timeout Duration `yaml:"timeout"`
	// Health probes the app's health endpoint (the seed's post-deploy check).
	Health *HealthConfig `yaml:"health"`
	// Signals override the recording rules behind cpu_usage, memory_usage
	// and error_rate.
	Signals SignalsConfig `yaml:"signals"`
	// MemoryLimit is the app's memory limit for memory_usage; it wins over
	// the cgroup limit. 0 means the cgroup limit, else the host's memory.
	MemoryLimit Size `yaml:"memory_limit"`
	// TLSProbe checks the app's TLS endpoint (version, certificate dates)
	// for encryption.in_transit.
	TLSProbe *TLSProbeConfig `yaml:"tls_probe"`
}

// TLSProbeConfig is a TLS handshake with the app, each interval.
type TLSProbeConfig struct {
	// Address is host:port of the app's TLS endpoint.
	Address string `yaml:"address"`
	// ServerName is the name sent and verified; default the address's host.
	ServerName string `yaml:"server_name"`
	// CAFile holds the roots to verify the certificate with; default the
	// system's.
	CAFile   string   `yaml:"ca_file"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
}

// HealthConfig probes an HTTP health endpoint.
type HealthConfig struct {
	URL          string   `yaml:"url"`
	Interval     Duration `yaml:"interval"`
	Timeout      Duration `yaml:"timeout"`
	ExpectStatus []int    `yaml:"expect_status"`
}

// SignalsConfig holds PromQL expressions for the app's derived signals; an
// empty one keeps vigil's default (see rules/signals.go).
type SignalsConfig struct {
	CPUUsage    string `yaml:"cpu_usage"`
	MemoryUsage string `yaml:"memory_usage"`
	ErrorRate   string `yaml:"error_rate"`
}

// InfraCollectorConfig is the host collector and optional node_exporter targets.
type InfraCollectorConfig struct {
	CollectorMetrics `yaml:",inline"`
	Targets          []string `yaml:"targets"`
	Mountpoints      []string `yaml:"mountpoints"`
	Devices          []string `yaml:"devices"`
	// LinkSpeed is used for network_usage when the system does not report one.
	LinkSpeedMbps int `yaml:"link_speed_mbps"`
	// LinkSpeedMbpsPerDevice overrides LinkSpeedMbps for the named devices
	// (virtual devices, whose speed the system does not know).
	LinkSpeedMbpsPerDevice map[string]int `yaml:"link_speed_mbps_per_device"`
}

// DatabaseCollectorConfig is the database collector.
type DatabaseCollectorConfig struct {
	CollectorMetrics `yaml:",inline"`
	DSN              Secret   `yaml:"dsn"`
	DSNFile          string   `yaml:"dsn_file"`
	Timeout          Duration `yaml:"timeout"`
	MaxConns         int      `yaml:"max_conns"`
}

// LogConfig is one entry of collectors.logs; it takes the seed's logging keys.
type LogConfig struct {
	Name     string   `yaml:"name"`
	Paths    []string `yaml:"paths"`
	File     string   `yaml:"file"`
	MaxSize  Size     `yaml:"maxSize"`
	MaxFiles int      `yaml:"maxFiles"`
	MaxAge   Duration `yaml:"maxAge"`
	Compress bool     `yaml:"compress"`
	// The seed's logging keys that describe the app's own log.
	Level  string            `yaml:"level"`
	Format string            `yaml:"format"`
	Output string            `yaml:"output"`
	Labels map[string]string `yaml:"labels"`
}

// LokiConfig is where logs are shipped.
type LokiConfig struct {
	URL       string   `yaml:"url"`
	TenantID  string   `yaml:"tenant_id"`
	BatchSize Size     `yaml:"batch_size"`
	BatchWait Duration `yaml:"batch_wait"`
}

// SelfCollectorConfig is the scrape of vigil's own metrics.
type SelfCollectorConfig struct {
	Enabled *bool `yaml:"enabled"`
}

// AlertsConfig is the seed's alerts block.
type AlertsConfig struct {
	Rules []RuleConfig `yaml:"rules"`
	// EvaluationInterval is how often rules are evaluated; default 1s, and
	// never longer than metrics.interval. Evaluating often, not once per
	// scrape interval, is what lets a delivery follow a threshold crossing
	// within one scrape interval and a second of the rule's `for`.
	EvaluationInterval Duration `yaml:"evaluation_interval"`
	// Limit bounds what one rule may produce per evaluation: series of a
	// recording rule, alerts of an alerting rule. A rule over it writes
	// nothing that evaluation and reports an error (Prometheus's rule group
	// `limit`). It is the limit of the seed rules' group and of every rule
	// file group that sets none; 0 means no limit. Default 10,000.
	Limit int `yaml:"limit"`
	// AbsentAfter is how long a rule's input selectors may match no series
	// before vigil reports the rule as dead (a rule that can never fire);
	// the first AbsentAfter after start is not judged. 0 turns the check
	// off. Default 10m.
	AbsentAfter Duration `yaml:"absent_after"`
	// Forward sends the alerts to gateways (config/forward.go).
	Forward *ForwardConfig `yaml:"forward"`
}

// IngestConfig is the Alertmanager API v2 gateway's: POST /api/v2/alerts.
type IngestConfig struct {
	// ResolveTimeout is how long an alert posted without endsAt stays
	// firing unless it is posted again (Alertmanager's
	// global.resolve_timeout). Default 5m.
	ResolveTimeout Duration `yaml:"resolve_timeout"`
}

// RuleConfig is one seed-format alert rule.
type RuleConfig struct {
	Name        string            `yaml:"name"`
	Condition   string            `yaml:"condition"`
	Duration    Duration          `yaml:"duration"`
	Severity    string            `yaml:"severity"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	Summary     string            `yaml:"summary"`
	Description string            `yaml:"description"`
	Runbook     string            `yaml:"runbook"`
	Dashboard   string            `yaml:"dashboard"`
}

// EscalationConfig is how incidents climb the support tiers.
type EscalationConfig struct {
	ResponseTimes map[string]Duration `yaml:"response_times"`
	Priorities    map[string]string   `yaml:"priorities"`
	Levels        []LevelConfig       `yaml:"levels"`
	RepeatLimit   int                 `yaml:"repeat_limit"`
	Rearm         Duration            `yaml:"rearm"`
	// StormThreshold is how many open incidents an alertname may have
	// before its further alerts fold into one storm incident; 0 turns
	// folding off.
	StormThreshold int `yaml:"storm_threshold"`
	// GroupBy are the labels whose values key an incident: alerts that
	// agree on them (the replicas of one service) share one incident.
	// "..." alone groups by every label: one incident per alert.
	GroupBy []string `yaml:"group_by"`
}

// LevelConfig is one support tier.
type LevelConfig struct {
	Name   string   `yaml:"name"`
	Notify []string `yaml:"notify"`
	Wait   Duration `yaml:"wait"`
}

// ReceiverConfig is one place notifications go.
type ReceiverConfig struct {
	Name    string         `yaml:"name"`
	Slack   *SlackConfig   `yaml:"slack"`
	Webhook *WebhookConfig `yaml:"webhook"`
	Log     *LogReceiver   `yaml:"log"`
}

// SlackConfig posts to a Slack channel with a bot token.
type SlackConfig struct {
	Token         Secret `yaml:"token"`
	TokenFile     string `yaml:"token_file"`
	Channel       string `yaml:"channel"`
	SigningSecret Secret `yaml:"signing_secret"`
	APIURL        string `yaml:"api_url"`
}

// WebhookConfig posts signed JSON to a URL.
type WebhookConfig struct {
	URL        string   `yaml:"url"`
	Secret     Secret   `yaml:"secret"`
	SecretFile string   `yaml:"secret_file"`
	Timeout    Duration `yaml:"timeout"`
}

// LogReceiver writes notifications to vigil's log.
type LogReceiver struct {
	Level string `yaml:"level"`
}

// RollbackConfig is the deploy controller's rollback webhook.
type RollbackConfig struct {
	Webhook  *WebhookConfig    `yaml:"webhook"`
	When     map[string]string `yaml:"when"`
	Window   Duration          `yaml:"window"`
	Cooldown Duration          `yaml:"cooldown"`
	DryRun   bool              `yaml:"dry_run"`
}

// UserConfig is one user of the API and page.
type UserConfig struct {
	// Name is also accepted as `username`, as the seed may write it.
	Name  string   `yaml:"name" alias:"username"`
	Email string   `yaml:"email"`
	Role  string   `yaml:"role"`
	Roles []string `yaml:"roles"`
	// Tokens are hashes of the user's API tokens (`vigil token new` prints one).
	Tokens    []string `yaml:"tokens"`
	SlackUser string   `yaml:"slack_user"`
	Password  Secret   `yaml:"password"`
	// Permissions are granted to the user on top of its roles' (the seed
	// lists them beside the role).
	Permissions []string `yaml:"permissions"`
}

// AllRoles returns the user's roles, single role first.
func (u UserConfig) AllRoles() []string {
	var out []string
	if u.Role != "" {
		out = append(out, u.Role)
	}
	return append(out, u.Roles...)
}

// Interval returns the scrape interval.
func (c *Config) Interval() time.Duration { return time.Duration(c.Metrics.Interval) }

// EvaluationInterval returns the rule evaluation interval:
// alerts.evaluation_interval, else 1s, never longer than the scrape interval.
func (c *Config) EvaluationInterval() time.Duration {
	ev := time.Duration(c.Alerts.EvaluationInterval)
	if ev <= 0 {
		ev = DefaultEvaluationInterval
	}
	if iv := c.Interval(); iv > 0 && ev > iv {
		ev = iv
	}
	return ev
}

// ListenAddress returns the HTTP listener address: server.listen, else
// metrics.port, else :9090.
func (c *Config) ListenAddress() string {
	switch {
	case c.Server.Listen != "":
		return c.Server.Listen
	case c.Metrics.Port != 0:
		return ":" + itoa(c.Metrics.Port)
	}
	return ":9090"
}

// ListensOnLoopback reports whether vigil's listener is reachable only from
// this machine (localhost or a loopback address).
func (c *Config) ListensOnLoopback() bool {
	host, _, err := net.SplitHostPort(c.ListenAddress())
	return err == nil && isLoopback(host)
}

// Line returns the line of a key path such as "alerts.rules[2].duration", or 0.
func (c *Config) Line(path string) int { return c.positions[path] }
