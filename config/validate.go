package config

import (
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

var ruleNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Accepted values of the enumerated keys.
var (
	environments   = []string{EnvDevelopment, EnvStaging, EnvProduction}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"json", "text"}
	logOutputs     = []string{"stdout", "stderr", "file", "both"}
	priorityLevels = []string{"critical", "high", "medium", "low"}
	scrapeSchemes  = []string{"http", "https"}
)

// ImplicitLogReceiver is the receiver name that is always available: it writes
// notifications to vigil's log.
const ImplicitLogReceiver = "log"

// validate checks the decoded configuration; every problem goes to r.
func (c *Config) validate(r *reporter) {
	oneOf(r, "environment", c.Environment, environments)
	if c.Service == "" {
		r.valueErr(0, "service", "must not be empty")
	}
	if c.Server.Listen != "" {
		checkListen(r, "server.listen", c.Server.Listen)
	}
	c.validateLogging(r)
	checkPort(r, "metrics.port", c.Metrics.Port)
	checkPath(r, "metrics.path", c.Metrics.Path)
	if c.Metrics.Interval <= 0 {
		r.valueErr(0, "metrics.interval", "must be more than 0")
	}
	checkLabelNames(r, "metrics.labels", c.Metrics.Labels)
	if len(c.Metrics.Labels) > 0 && c.Collectors.App == nil {
		// The block is the seed's application metrics block: its labels go
		// on the app's series, never on vigil's own.
		r.valueErr(0, "metrics.labels", "label the app's series (collectors.app), and there is no collectors.app; "+
			"put labels of the host or the database under collectors.infrastructure.labels or collectors.database.labels")
	}
	if c.Storage.IncidentRetention < 0 {
		r.valueErr(0, "storage.incident_retention", "must not be negative (0 keeps incidents for ever)")
	}
	if c.Ingest.ResolveTimeout <= 0 {
		r.valueErr(0, "ingest.resolve_timeout", "%q must be more than 0", c.Ingest.ResolveTimeout.String())
	}
	if l := time.Duration(c.Storage.Lease); l != 0 && l < time.Second {
		r.valueErr(0, "storage.lease", "must be at least 1s (default 15s)")
	}
	c.validateCollectors(r)
	c.validateRules(r)
	c.validateReceivers(r)
	c.validateEscalation(r)
	c.validateRollback(r)
	c.validateAnalysis(r)
	c.validateAccess(r)
	c.validateSeedBlocks(r)
	c.validateQuery(r)
	c.validateRemoteWrite(r)
	c.validateForward(r)
	c.validateIncidentStore(r)
}

func (c *Config) validateLogging(r *reporter) {
	l := c.Logging
	oneOf(r, "logging.level", l.Level, logLevels)
	oneOf(r, "logging.format", l.Format, logFormats)
	oneOf(r, "logging.output", l.Output, logOutputs)
	if (l.Output == "file" || l.Output == "both") && l.File == "" {
		r.valueErr(0, "logging.output", "%q needs logging.file", l.Output)
	}
	if l.MaxFiles < 0 {
		r.valueErr(0, "logging.maxFiles", "must not be negative")
	}
}

func (c *Config) validateCollectors(r *reporter) {
	col := c.Collectors
	checkMetrics := func(path string, m CollectorMetrics) {
		checkPort(r, joinPath(path, "port"), m.Port)
		checkPath(r, joinPath(path, "path"), m.Path)
		checkLabelNames(r, joinPath(path, "labels"), m.Labels)
	}
	if a := col.App; a != nil {
		checkMetrics("collectors.app", a.CollectorMetrics)
		checkTargets(r, "collectors.app.targets", a.Targets)
		checkGlobs(r, "collectors.app.file_sd", a.FileSD)
		oneOf(r, "collectors.app.scheme", a.Scheme, scrapeSchemes)
		if a.Timeout > a.Interval {
			r.valueErr(0, "collectors.app.timeout", "%s is longer than the scrape interval %s", a.Timeout, a.Interval)
		}
		if tp := a.TLSProbe; tp != nil {
			if tp.Address == "" {
				r.valueErr(0, "collectors.app.tls_probe.address", "is required (host:port of the app's TLS endpoint)")
			} else {
				checkTargets(r, "collectors.app.tls_probe.address", []string{tp.Address})
			}
			if tp.Timeout > tp.Interval {
				r.valueErr(0, "collectors.app.tls_probe.timeout", "%s is longer than the probe interval %s", tp.Timeout, tp.Interval)
			}
		}
		if h := a.Health; h != nil {
			checkURL(r, "collectors.app.health.url", h.URL)
			if h.Timeout > h.Interval {
				r.valueErr(0, "collectors.app.health.timeout", "%s is longer than the probe interval %s", h.Timeout, h.Interval)
			}
			for i, code := range h.ExpectStatus {
				if code < 100 || code > 599 {
					r.valueErr(0, indexPath("collectors.app.health.expect_status", i), "%d is not an HTTP status", code)
				}
			}
		}
		for key, expr := range map[string]string{
			"cpu_usage": a.Signals.CPUUsage, "memory_usage": a.Signals.MemoryUsage, "error_rate": a.Signals.ErrorRate,
		} {
			if expr == "" {
				continue
			}
			if _, err := promqlparse.ParseExpr(expr); err != nil {
				r.valueErr(0, "collectors.app.signals."+key, "%q is not PromQL: %s", expr, err)
			}
		}
	}
	if i := col.Infrastructure; i != nil {
		checkMetrics("collectors.infrastructure", i.CollectorMetrics)
		c.checkServedHere(r, "collectors.infrastructure", "infrastructure", i.CollectorMetrics, len(i.Targets) > 0)
		checkTargets(r, "collectors.infrastructure.targets", i.Targets)
		if i.LinkSpeedMbps < 0 {
			r.valueErr(0, "collectors.infrastructure.link_speed_mbps", "must not be negative")
		}
		for _, dev := range sortedKeys(i.LinkSpeedMbpsPerDevice) {
			if v := i.LinkSpeedMbpsPerDevice[dev]; v <= 0 {
				r.valueErr(0, joinPath("collectors.infrastructure.link_speed_mbps_per_device", dev), "%d must be more than 0", v)
			}
		}
	}
	if db := col.Database; db != nil {
		checkMetrics("collectors.database", db.CollectorMetrics)
		c.checkServedHere(r, "collectors.database", "database", db.CollectorMetrics, false)
		if db.MaxConns < 0 {
			r.valueErr(0, "collectors.database.max_conns", "must not be negative")
		}
	}
	logNames := map[string]int{}
	for i, l := range col.Logs {
		p := indexPath("collectors.logs", i)
		if l.Name != "" {
			r.unique(logNames, p, l.Name)
		}
		if len(l.Paths) == 0 && l.File == "" {
			r.valueErr(0, p, "needs paths to tail (or file)")
		}
		checkGlobs(r, joinPath(p, "paths"), l.Paths)
		checkLabelNames(r, joinPath(p, "labels"), l.Labels)
		if l.MaxFiles < 0 {
			r.valueErr(0, joinPath(p, "maxFiles"), "must not be negative")
		}
		checkLogEntryKeys(r, p, l)
	}
	if col.Loki != nil {
		checkURL(r, "collectors.loki.url", col.Loki.URL)
	}
}

// checkServedHere checks the seed's port and path keys of a collector that
// vigil runs itself (the host, the database): vigil serves its metrics on its
// own listener, at metrics.path and at /metrics/collectors/<name>, so the
// keys can only say so. Any other value would be ignored, so it is an error.
// With node_exporter targets, path is their metrics path instead.
func (c *Config) checkServedHere(r *reporter, path, name string, m CollectorMetrics, pathIsTargets bool) {
	if m.Port != 0 {
		if _, port, err := net.SplitHostPort(c.ListenAddress()); err == nil && port != strconv.Itoa(m.Port) {
			r.valueErr(0, joinPath(path, "port"), "%d is not vigil's listener port %s: vigil serves the %s collector's metrics "+
				"on its own listener (%s), at %s and %s%s; leave port out or set it to %s",
				m.Port, port, name, c.ListenAddress(), c.Metrics.Path, "/metrics/collectors/", name, port)
		}
	}
	if m.Path != "" && !pathIsTargets && m.Path != c.Metrics.Path {
		r.valueErr(0, joinPath(path, "path"), "%q is not vigil's metrics.path %q: vigil serves the %s collector's metrics "+
			"at %s and %s%s; leave path out or set it to %s",
			m.Path, c.Metrics.Path, name, c.Metrics.Path, "/metrics/collectors/", name, c.Metrics.Path)
	}
}

func (c *Config) validateRules(r *reporter) {
	seen := map[string]int{}
	for i, rule := range c.Alerts.Rules {
		p := indexPath("alerts.rules", i)
		switch {
		case rule.Name == "":
			r.valueErr(0, p, "name is required")
		case !ruleNameRE.MatchString(rule.Name):
			r.valueErr(0, joinPath(p, "name"), "%q is not a valid rule name (letters, digits and _; not starting with a digit)", rule.Name)
		}
		if rule.Name != "" {
			r.unique(seen, p, rule.Name)
		}
		if strings.TrimSpace(rule.Condition) == "" {
			r.valueErr(0, joinPath(p, "condition"), "is required")
		} else if _, err := promqlparse.ParseExpr(rule.Condition); err != nil {
			r.valueErr(0, joinPath(p, "condition"), "%q is not valid PromQL: %v", rule.Condition, err)
		}
		if rule.Duration < 0 {
			r.valueErr(0, joinPath(p, "duration"), "must not be negative")
		}
		if rule.Severity == "" {
			r.valueErr(0, joinPath(p, "severity"), "is required")
		}
		checkLabelNames(r, joinPath(p, "labels"), rule.Labels)
		checkLabelNames(r, joinPath(p, "annotations"), rule.Annotations)
	}
	checkGlobs(r, "rule_files", c.RuleFiles)
	if c.Alerts.Limit < 0 {
		r.valueErr(0, "alerts.limit", "%d must not be negative (0 means no limit)", c.Alerts.Limit)
	}
	if c.Alerts.AbsentAfter < 0 {
		r.valueErr(0, "alerts.absent_after", "must not be negative (0 turns the check off)")
	}
}

func (c *Config) validateReceivers(r *reporter) {
	seen := map[string]int{}
	for i, rc := range c.Receivers {
		p := indexPath("receivers", i)
		if rc.Name == "" {
			r.valueErr(0, p, "name is required")
		} else {
			r.unique(seen, p, rc.Name)
		}
		var kinds []string
		if rc.Slack != nil {
			kinds = append(kinds, "slack")
		}
		if rc.Webhook != nil {
			kinds = append(kinds, "webhook")
		}
		if rc.Log != nil {
			kinds = append(kinds, "log")
		}
		switch len(kinds) {
		case 0:
			r.valueErr(0, p, "needs one of slack, webhook or log")
		case 1:
		default:
			r.valueErr(0, p, "has %s; a receiver takes exactly one of slack, webhook or log", strings.Join(kinds, " and "))
		}
		if rc.Slack != nil {
			if rc.Slack.Channel == "" {
				r.valueErr(0, joinPath(p, "slack"), "needs a channel")
			}
			if rc.Slack.APIURL != "" {
				checkURL(r, joinPath(p, "slack.api_url"), rc.Slack.APIURL)
			}
		}
		if rc.Webhook != nil {
			checkURL(r, joinPath(p, "webhook.url"), rc.Webhook.URL)
		}
		if rc.Log != nil && rc.Log.Level != "" {
			oneOf(r, joinPath(p, "log.level"), rc.Log.Level, logLevels)
		}
	}
}

// ReceiverNames returns the receivers that escalation levels may notify: the
// configured ones and the implicit "log".
func (c *Config) ReceiverNames() []string {
	out := []string{ImplicitLogReceiver}
	for _, rc := range c.Receivers {
		if rc.Name != "" && !slices.Contains(out, rc.Name) {
			out = append(out, rc.Name)
		}
	}
	slices.Sort(out)
	return out
}

func (c *Config) validateEscalation(r *reporter) {
	e := c.Escalation
	for _, key := range sortedKeys(e.ResponseTimes) {
		p := joinPath("escalation.response_times", key)
		if !slices.Contains(priorityLevels, key) {
			r.keyErr(0, p, "%q is not a priority (use %s)", key, strings.Join(priorityLevels, ", "))
		}
		if e.ResponseTimes[key] <= 0 {
			r.valueErr(0, p, "must be more than 0")
		}
	}
	for _, sev := range sortedKeys(e.Priorities) {
		prio := e.Priorities[sev]
		if _, ok := e.ResponseTimes[prio]; !ok {
			r.valueErr(0, joinPath("escalation.priorities", sev), "%q has no response time (escalation.response_times has %s)",
				prio, strings.Join(sortedKeys(e.ResponseTimes), ", "))
		}
	}
	if e.RepeatLimit < 0 {
		r.valueErr(0, "escalation.repeat_limit", "must not be negative")
	}
	if e.StormThreshold < 0 {
		r.valueErr(0, "escalation.storm_threshold", "\"%d\" must not be negative (0 turns storm folding off)", e.StormThreshold)
	}
	c.validateGroupBy(r)
	receivers := c.ReceiverNames()
	levelNames := map[string]int{}
	for i, l := range e.Levels {
		p := indexPath("escalation.levels", i)
		if l.Name == "" {
			r.valueErr(0, p, "name is required")
		} else {
			r.unique(levelNames, p, l.Name)
		}
		if len(l.Notify) == 0 {
			r.valueErr(0, p, "notify needs at least one receiver")
		}
		for j, name := range l.Notify {
			if !slices.Contains(receivers, name) {
				r.valueErr(0, indexPath(joinPath(p, "notify"), j), "%q is not a receiver (receivers: %s)", name, strings.Join(receivers, ", "))
			}
		}
		if l.Wait < 0 {
			r.valueErr(0, joinPath(p, "wait"), "must not be negative")
		}
	}
}

// validateGroupBy checks escalation.group_by: label names, each once, or
// "..." alone.
func (c *Config) validateGroupBy(r *reporter) {
	g := c.Escalation.GroupBy
	if len(g) == 0 {
		r.valueErr(0, "escalation.group_by", "must name at least one label (%q alone keys an incident by every label)", GroupByAll)
		return
	}
	seen := map[string]bool{}
	for i, name := range g {
		p := indexPath("escalation.group_by", i)
		switch {
		case name == GroupByAll && len(g) > 1:
			r.valueErr(0, p, "%q stands alone: it already groups by every label", name)
		case name == GroupByAll:
		case !model.LabelName(name).IsValidLegacy():
			r.valueErr(0, p, "%q is not a valid label name", name)
		case seen[name]:
			r.valueErr(0, p, "%q is listed twice", name)
		}
		seen[name] = true
	}
}

func (c *Config) validateRollback(r *reporter) {
	rb := c.Rollback
	if rb.Webhook != nil {
		checkURL(r, "rollback.webhook.url", rb.Webhook.URL)
	}
	checkLabelNames(r, "rollback.when", rb.When)
}

func (c *Config) validateAccess(r *reporter) {
	roles := c.RoleNames()
	seen := map[string]int{}
	for i, u := range c.Users {
		p := indexPath("users", i)
		if u.Name == "" {
			r.valueErr(0, p, "name is required")
		} else {
			r.unique(seen, p, u.Name)
		}
		if len(roles) == 0 {
			continue
		}
		if u.Role != "" && !slices.Contains(roles, u.Role) {
			r.valueErr(0, joinPath(p, "role"), "%q is not a role (roles: %s)", u.Role, strings.Join(roles, ", "))
		}
		for j, role := range u.Roles {
			if !slices.Contains(roles, role) {
				r.valueErr(0, indexPath(joinPath(p, "roles"), j), "%q is not a role (roles: %s)", role, strings.Join(roles, ", "))
			}
		}
	}
	// vigil's permissions are always known, whether the permissions block
	// lists them or not: the block describes and scopes them, it does not
	// choose them. Any other name is a typo or a permission vigil does not
	// have, and would silently grant nothing.
	known := func(path, perm string) {
		if !slices.Contains(BuiltinPermissions, perm) {
			r.valueErr(0, path, "%q is not a permission%s", perm, suggestPermission(perm))
		}
	}
	for _, role := range c.Roles.Names() {
		for j, perm := range c.Roles[role].Permissions {
			path := indexPath(joinPath("roles", role), j)
			if _, ok := c.positions[path]; !ok {
				path = joinPath("roles", role)
			}
			known(path, perm)
		}
	}
	for i, u := range c.Users {
		for j, perm := range u.Permissions {
			known(indexPath(joinPath(indexPath("users", i), "permissions"), j), perm)
		}
	}
	for _, name := range c.Permissions.Names() {
		p := joinPath("permissions", name)
		if !slices.Contains(BuiltinPermissions, name) {
			r.keyErr(0, p, "%q is not a permission%s", name, suggestPermission(name))
		}
		for j, app := range c.Permissions[name].Resources {
			if strings.TrimSpace(app) == "" {
				r.valueErr(0, indexPath(joinPath(p, "resources"), j), "an app name is required")
			}
		}
	}
}

func oneOf(r *reporter, path, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		r.valueErr(0, path, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

func checkPort(r *reporter, path string, port int) {
	if port < 0 || port > 65535 {
		r.valueErr(0, path, "%d is not a port (0-65535)", port)
	}
}

func checkPath(r *reporter, path, p string) {
	if p != "" && !strings.HasPrefix(p, "/") {
		r.valueErr(0, path, "%q must start with /", p)
	}
}

func checkListen(r *reporter, path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		r.valueErr(0, path, "%q is not host:port: %v", addr, splitErr(err))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.valueErr(0, path, "%q does not have a valid port", addr)
	}
}

func checkTargets(r *reporter, path string, targets []string) {
	for i, t := range targets {
		p := indexPath(path, i)
		host, port, err := net.SplitHostPort(t)
		if err != nil {
			r.valueErr(0, p, "%q is not host:port: %v", t, splitErr(err))
			continue
		}
		if host == "" {
			r.valueErr(0, p, "%q has no host", t)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			r.valueErr(0, p, "%q does not have a valid port", t)
		}
	}
}

// splitErr drops the address that net.AddrError repeats.
func splitErr(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

func checkGlobs(r *reporter, path string, globs []string) {
	for i, g := range globs {
		if g == "" {
			r.valueErr(0, indexPath(path, i), "must not be empty")
			continue
		}
		if _, err := filepath.Match(g, ""); err != nil {
			r.valueErr(0, indexPath(path, i), "%q is not a valid glob: %v", g, err)
		}
	}
}

func checkURL(r *reporter, path, raw string) {
	if raw == "" {
		r.valueErr(0, path, "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		r.valueErr(0, path, "%q is not a URL: %v", raw, err)
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		r.valueErr(0, path, "%q must be an http or https URL", raw)
		return
	}
	if u.Host == "" {
		r.valueErr(0, path, "%q has no host", raw)
	}
}

func checkLabelNames(r *reporter, path string, labels map[string]string) {
	for _, name := range sortedKeys(labels) {
		if !model.LabelName(name).IsValidLegacy() {
			r.keyErr(0, joinPath(path, name), "%q is not a valid label name", name)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// unique reports name at path (an element of a list) when an earlier element
// already has it; seen maps names to the line they were first given at.
func (r *reporter) unique(seen map[string]int, path, name string) {
	if first, dup := seen[name]; dup {
		r.valueErr(0, joinPath(path, "name"), "%q is used twice (first at line %d)", name, first)
		return
	}
	seen[name] = r.line(path)
}

// logEntryLevels are the levels a collectors.logs entry may keep from.
var logEntryLevels = []string{"debug", "info", "warn", "error", "fatal"}

// checkLogEntryKeys checks the seed's logging keys of a collectors.logs
// entry: level (least severe line kept), format (how the app writes its
// lines) and output (where vigil copies them besides Loki).
func checkLogEntryKeys(r *reporter, p string, l LogConfig) {
	if l.Level != "" {
		oneOf(r, joinPath(p, "level"), l.Level, logEntryLevels)
	}
	if l.Format != "" {
		oneOf(r, joinPath(p, "format"), l.Format, logFormats)
	}
	if l.Output != "" {
		oneOf(r, joinPath(p, "output"), l.Output, logOutputs)
	}
	if (l.Output == "file" || l.Output == "both") && l.File == "" {
		r.valueErr(0, joinPath(p, "output"), "%q needs file", l.Output)
	}
}
