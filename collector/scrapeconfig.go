package collector

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/vigil-sh/vigil/config"
)

// Job names of the scrape pools vigil runs; they become the job label.
const (
	JobApp  = "app"
	JobSelf = "vigil"
)

const (
	defaultInterval    = 15 * time.Second
	defaultMaxTimeout  = 10 * time.Second
	defaultMetricsPath = "/metrics"
	defaultAppLabel    = "app"
	selfAppLabel       = "vigil"
	// fileSDRefresh re-reads file_sd files even when no file event arrives
	// (some volume mounts, such as Kubernetes ConfigMaps, do not send one).
	fileSDRefresh = time.Minute
)

// ScrapeConfigs turns vigil's config into the Prometheus scrape configs it
// runs: job "app" from collectors.app (none when it is absent) and job
// "vigil" scraping self (host:port of vigil's own listener) unless self is
// empty or collectors.self.enabled is false. The configs are validated as
// Prometheus validates a loaded file.
func ScrapeConfigs(cfg *config.Config, self string) ([]*promconfig.ScrapeConfig, error) {
	return scrapeConfigs(cfg, self, "")
}

func scrapeConfigs(cfg *config.Config, self, selfPath string) ([]*promconfig.ScrapeConfig, error) {
	if cfg == nil {
		return nil, errors.New("no configuration")
	}
	global := globalConfig()
	var out []*promconfig.ScrapeConfig
	if a := cfg.Collectors.App; a != nil && (appHasMetrics(a) || a.Health == nil) {
		sc, err := appScrapeConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("collectors.app: %w", err)
		}
		out = append(out, sc)
	}
	if i := cfg.Collectors.Infrastructure; i != nil && len(i.Targets) > 0 {
		sc, err := nodeScrapeConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("collectors.infrastructure: %w", err)
		}
		out = append(out, sc)
	}
	if self != "" && selfEnabled(cfg) {
		sc, err := selfScrapeConfig(cfg, self, selfPath)
		if err != nil {
			return nil, fmt.Errorf("self scrape: %w", err)
		}
		out = append(out, sc)
	}
	if self != "" {
		for _, src := range sources(cfg) {
			out = append(out, sourceScrapeConfig(self, src))
		}
	}
	for _, sc := range out {
		if err := sc.HTTPClientConfig.Validate(); err != nil {
			return nil, fmt.Errorf("job %q: %w", sc.JobName, err)
		}
		if err := sc.Validate(global); err != nil {
			return nil, fmt.Errorf("job %q: %w", sc.JobName, err)
		}
	}
	return out, nil
}

// globalConfig is Prometheus's default global block, which is what a
// hand-built scrape config is validated against.
func globalConfig() promconfig.GlobalConfig {
	g := promconfig.DefaultGlobalConfig
	// UTF-8 names and no escaping, as Prometheus 3 does by default; set here
	// so that a change of upstream defaults cannot leave them unset.
	g.MetricNameValidationScheme = model.UTF8Validation
	g.MetricNameEscapingScheme = model.AllowUTF8
	return g
}

func selfEnabled(cfg *config.Config) bool {
	s := cfg.Collectors.Self
	return s == nil || s.Enabled == nil || *s.Enabled
}

// baseScrapeConfig starts from Prometheus's defaults, as YAML decoding would.
func baseScrapeConfig(job string, interval, timeout time.Duration, scheme, path string) *promconfig.ScrapeConfig {
	sc := promconfig.DefaultScrapeConfig
	sc.JobName = job
	sc.ScrapeInterval = model.Duration(interval)
	sc.ScrapeTimeout = model.Duration(timeout)
	sc.Scheme = scheme
	sc.MetricsPath = path
	// Apps next to a sidecar often serve the text format with a missing or
	// wrong Content-Type; Prometheus 3 refuses those without a fallback.
	sc.ScrapeFallbackProtocol = promconfig.PrometheusText0_0_4
	sc.MetricNameValidationScheme = model.UTF8Validation
	sc.MetricNameEscapingScheme = model.AllowUTF8
	return &sc
}

func appScrapeConfig(cfg *config.Config) (*promconfig.ScrapeConfig, error) {
	app := cfg.Collectors.App

	interval := time.Duration(app.Interval)
	if interval == 0 {
		interval = cfg.Interval()
	}
	if interval == 0 {
		interval = defaultInterval
	}
	if interval < 0 {
		return nil, fmt.Errorf("interval %s is negative", interval)
	}
	timeout := time.Duration(app.Timeout)
	switch {
	case timeout < 0:
		return nil, fmt.Errorf("timeout %s is negative", timeout)
	case timeout == 0:
		timeout = min(defaultMaxTimeout, interval)
	case timeout > interval:
		return nil, fmt.Errorf("timeout %s is longer than the scrape interval %s", timeout, interval)
	}

	scheme := app.Scheme
	switch scheme {
	case "":
		scheme = "http"
	case "http", "https":
	default:
		return nil, fmt.Errorf("scheme %q is not http or https", scheme)
	}
	path := app.Path
	if path == "" {
		path = defaultMetricsPath
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q does not start with /", path)
	}

	targets := app.Targets
	if len(targets) == 0 && app.Port != 0 {
		if app.Port < 0 || app.Port > 65535 {
			return nil, fmt.Errorf("port %d is not a TCP port", app.Port)
		}
		targets = []string{net.JoinHostPort("localhost", strconv.Itoa(app.Port))}
	}
	if len(targets) == 0 && len(app.FileSD) == 0 {
		return nil, errors.New("nothing to scrape: set targets, port or file_sd")
	}
	for i, t := range targets {
		if err := checkTarget(t); err != nil {
			return nil, fmt.Errorf("targets[%d]: %w", i, err)
		}
	}
	for i, f := range app.FileSD {
		if err := checkFileSD(f); err != nil {
			return nil, fmt.Errorf("file_sd[%d]: %w", i, err)
		}
	}

	lbls, err := appLabels(cfg)
	if err != nil {
		return nil, err
	}

	sc := baseScrapeConfig(JobApp, interval, timeout, scheme, path)
	if len(targets) > 0 {
		sc.ServiceDiscoveryConfigs = append(sc.ServiceDiscoveryConfigs, staticConfig(targets, nil))
	}
	if len(app.FileSD) > 0 {
		sc.ServiceDiscoveryConfigs = append(sc.ServiceDiscoveryConfigs, &file.SDConfig{
			Files:           slices.Clone(app.FileSD),
			RefreshInterval: model.Duration(fileSDRefresh),
		})
	}
	// The labels are filled in by relabeling, not put on the static group,
	// so that one rule covers static and file_sd targets alike, and a
	// file_sd group may set its own app or environment (a gateway in front
	// of several apps); only missing or empty labels get the defaults.
	sc.RelabelConfigs = defaultLabelRules(lbls)
	// Over loopback, gzip costs CPU in the app and in vigil and saves nothing.
	sc.EnableCompression = len(app.FileSD) > 0 || !allLoopback(targets)
	return sc, nil
}

// nodeScrapeConfig scrapes collectors.infrastructure.targets (node_exporter
// endpoints) with the infrastructure labels, so that up == 0 under
// app: infrastructure means an instance is down.
func nodeScrapeConfig(cfg *config.Config) (*promconfig.ScrapeConfig, error) {
	infra := cfg.Collectors.Infrastructure
	interval := time.Duration(infra.Interval)
	if interval <= 0 {
		interval = cfg.Interval()
	}
	if interval <= 0 {
		interval = defaultInterval
	}
	path := infra.Path
	if path == "" {
		path = defaultMetricsPath
	}
	for i, t := range infra.Targets {
		if err := checkTarget(t); err != nil {
			return nil, fmt.Errorf("targets[%d]: %w", i, err)
		}
	}
	lbls := map[string]string{}
	for k, v := range infra.Labels {
		lbls[k] = v
	}
	if lbls["app"] == "" {
		lbls["app"] = "infrastructure"
	}
	addCommonLabels(cfg, lbls)
	sc := baseScrapeConfig(JobNode, interval, min(defaultMaxTimeout, interval), "http", path)
	sc.ServiceDiscoveryConfigs = discovery.Configs{staticConfig(infra.Targets, nil)}
	sc.RelabelConfigs = defaultLabelRules(lbls)
	sc.EnableCompression = !allLoopback(infra.Targets)
	return sc, nil
}

// sourceScrapeConfig scrapes one of vigil's own collectors through its
// listener. The target carries the source's labels, instance included (the
// database's address, the host's name), so the series look as if scraped
// from the source itself.
func sourceScrapeConfig(self string, src source) *promconfig.ScrapeConfig {
	sc := baseScrapeConfig(src.job, src.interval, src.timeout, "http", CollectorsPath+src.name)
	sc.ServiceDiscoveryConfigs = discovery.Configs{staticConfig([]string{self}, src.labels)}
	sc.EnableCompression = false
	return sc
}

func selfScrapeConfig(cfg *config.Config, self, path string) (*promconfig.ScrapeConfig, error) {
	if err := checkTarget(self); err != nil {
		return nil, err
	}
	if path == "" {
		path = cfg.Metrics.Path
	}
	if path == "" {
		path = defaultMetricsPath
	}
	interval := cfg.Interval()
	if interval <= 0 {
		interval = defaultInterval
	}
	lbls := map[string]string{"app": selfAppLabel}
	addCommonLabels(cfg, lbls)

	sc := baseScrapeConfig(JobSelf, interval, min(defaultMaxTimeout, interval), "http", path)
	sc.ServiceDiscoveryConfigs = discovery.Configs{staticConfig([]string{self}, lbls)}
	// The collectors' metrics are stored by their own jobs; /metrics serves
	// them too, for an external Prometheus, unless asked not to.
	sc.Params = url.Values{"collectors": []string{"false"}}
	// vigil's own series are vigil's: app="vigil" and the target's other
	// labels win over any a metric brings (they are kept as exported_*),
	// so no rule scoped to the app ever counts vigil's own usage.
	sc.HonorLabels = false
	sc.EnableCompression = false
	return sc, nil
}

// appLabels are the labels every app target gets: metrics.labels, then
// collectors.app.labels, with app defaulting to "app" and environment and
// service from the top of the config.
func appLabels(cfg *config.Config) (map[string]string, error) {
	lbls := make(map[string]string, len(cfg.Metrics.Labels)+len(cfg.Collectors.App.Labels)+3)
	// The seed's metrics block is the application's: its labels go on
	// what vigil scrapes of the app (and never on vigil's own series);
	// collectors.app.labels win over them.
	maps.Copy(lbls, cfg.Metrics.Labels)
	for name, value := range cfg.Collectors.App.Labels {
		if !model.LegacyValidation.IsValidLabelName(name) || strings.HasPrefix(name, model.ReservedLabelPrefix) {
			return nil, fmt.Errorf("labels: %q is not a valid label name", name)
		}
		lbls[name] = value
	}
	if lbls["app"] == "" {
		lbls["app"] = defaultAppLabel
	}
	addCommonLabels(cfg, lbls)
	return lbls, nil
}

func addCommonLabels(cfg *config.Config, lbls map[string]string) {
	if _, ok := lbls["environment"]; !ok && cfg.Environment != "" {
		lbls["environment"] = cfg.Environment
	}
	if cfg.Service != "" {
		lbls["service"] = cfg.Service
	}
}

// setInstance gives every target of sc's static groups the instance label.
func setInstance(sc *promconfig.ScrapeConfig, instance string) {
	for _, sd := range sc.ServiceDiscoveryConfigs {
		static, ok := sd.(discovery.StaticConfig)
		if !ok {
			continue
		}
		for _, tg := range static {
			if tg.Labels == nil {
				tg.Labels = model.LabelSet{}
			}
			tg.Labels[model.InstanceLabel] = model.LabelValue(instance)
		}
	}
}

func staticConfig(targets []string, lbls map[string]string) discovery.StaticConfig {
	tg := &targetgroup.Group{Source: "0"}
	for _, t := range targets {
		tg.Targets = append(tg.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(t)})
	}
	if len(lbls) > 0 {
		tg.Labels = make(model.LabelSet, len(lbls))
		for k, v := range lbls {
			tg.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	return discovery.StaticConfig{tg}
}

// defaultLabelRules sets each label to its value on targets where it is
// missing or empty.
func defaultLabelRules(lbls map[string]string) []*relabel.Config {
	rules := make([]*relabel.Config, 0, len(lbls))
	for _, name := range slices.Sorted(maps.Keys(lbls)) {
		rules = append(rules, &relabel.Config{
			SourceLabels: model.LabelNames{model.LabelName(name)},
			Regex:        relabel.MustNewRegexp(""),
			TargetLabel:  name,
			// The replacement is a template: $ must be doubled to stay literal.
			Replacement: strings.ReplaceAll(lbls[name], "$", "$$"),
			Action:      relabel.Replace,
		})
	}
	return rules
}

// checkTarget accepts host:port or host, as Prometheus does, and catches the
// common mistake of writing a URL.
func checkTarget(t string) error {
	switch {
	case t == "":
		return errors.New("target is empty")
	case strings.Contains(t, "/"):
		return fmt.Errorf("target %q is not host:port (scheme and path are separate keys)", t)
	}
	if strings.Contains(t, ":") {
		if _, port, err := net.SplitHostPort(t); err != nil {
			return fmt.Errorf("target %q is not host:port: %w", t, err)
		} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("target %q has no valid port", t)
		}
	}
	return nil
}

// checkFileSD applies Prometheus's rule for file_sd names: a .json, .yml or
// .yaml file, with at most one * and only in the file name.
func checkFileSD(pattern string) error {
	switch filepath.Ext(pattern) {
	case ".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML":
	default:
		return fmt.Errorf("%q is not a .json, .yml or .yaml file", pattern)
	}
	if i := strings.Index(pattern, "*"); i >= 0 {
		if strings.Contains(pattern[i:], "/") || strings.Count(pattern, "*") > 1 {
			return fmt.Errorf("%q: only one * is allowed, and only in the file name", pattern)
		}
	}
	if _, err := filepath.Match(pattern, ""); err != nil {
		return fmt.Errorf("%q: %w", pattern, err)
	}
	return nil
}

// allLoopback reports whether every target is on this host.
func allLoopback(targets []string) bool {
	for _, t := range targets {
		host := t
		if h, _, err := net.SplitHostPort(t); err == nil {
			host = h
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}
