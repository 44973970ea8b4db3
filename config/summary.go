package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Summary describes the configuration in a few lines, for `vigil check config`.
// It never prints a secret.
func (c *Config) Summary() string {
	var b strings.Builder
	line := func(key, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", key+":", fmt.Sprintf(format, args...))
	}
	file := c.File
	if file == "" {
		file = "(built-in default)"
	}
	line("config", "%s", file)
	line("service", "%s", c.Service)
	line("environment", "%s", c.Environment)
	line("listen", "%s", c.ListenAddress())
	line("data_dir", "%s", c.DataDir)
	line("interval", "%s", c.Metrics.Interval)
	if n := len(c.OwnRules); n > 0 {
		line("rules", "%d rules, %d rule files, %d of vigil's own rules", len(c.Alerts.Rules), len(c.RuleFiles), n)
	} else {
		line("rules", "%d rules, %d rule files", len(c.Alerts.Rules), len(c.RuleFiles))
	}
	line("collectors", "%s", strings.Join(c.collectorSummary(), ", "))

	receivers := make([]string, 0, len(c.Receivers))
	for _, rc := range c.Receivers {
		receivers = append(receivers, fmt.Sprintf("%s (%s)", rc.Name, rc.Kind()))
	}
	if len(receivers) == 0 {
		receivers = append(receivers, "none (log only)")
	}
	line("receivers", "%s", strings.Join(receivers, ", "))

	levels := make([]string, 0, len(c.Escalation.Levels))
	for _, l := range c.Escalation.Levels {
		levels = append(levels, fmt.Sprintf("%s -> %s", l.Name, strings.Join(l.Notify, ", ")))
	}
	if len(levels) == 0 {
		levels = append(levels, "none")
	}
	line("escalation", "%s", strings.Join(levels, "; "))

	rollback := "off"
	if c.Rollback.Webhook != nil {
		// Only the host: webhook URLs often carry a token in their path.
		rollback = fmt.Sprintf("webhook to %s, window %s, cooldown %s", urlHost(c.Rollback.Webhook.URL), c.Rollback.Window, c.Rollback.Cooldown)
	}
	line("rollback", "%s", rollback)
	if len(c.RemoteWrite) > 0 {
		endpoints := make([]string, 0, len(c.RemoteWrite))
		for _, rw := range c.RemoteWrite {
			endpoints = append(endpoints, rw.String())
		}
		line("remote_write", "%s", strings.Join(endpoints, ", "))
	}
	line("access", "%d users, %d roles, %d permissions", len(c.Users), len(c.RoleNames()), len(c.Permissions))
	for _, u := range c.Users {
		tokens := fmt.Sprintf("%d tokens", len(u.Tokens))
		if len(u.Tokens) == 1 {
			tokens = "1 token"
		}
		line("user", "%s (%s; %s) may: %s", u.Name, strings.Join(u.AllRoles(), ", "), tokens, c.UserGrants(u).Describe())
	}
	// Warnings are not repeated here: `vigil check config` prints them above
	// the summary, and serve logs them, each once.
	return b.String()
}

func (c *Config) collectorSummary() []string {
	col := c.Collectors
	var out []string
	if c.SelfEnabled() {
		out = append(out, "self")
	}
	if a := col.App; a != nil {
		switch {
		case len(a.Targets) > 0 || len(a.FileSD) > 0:
			out = append(out, fmt.Sprintf("app (%d targets, %d file_sd)", len(a.Targets), len(a.FileSD)))
		case a.Port != 0:
			out = append(out, fmt.Sprintf("app (localhost:%d%s)", a.Port, a.Path))
		default:
			out = append(out, "app (no targets)")
		}
	}
	if i := col.Infrastructure; i != nil {
		out = append(out, fmt.Sprintf("infrastructure (%d targets)", len(i.Targets)))
	}
	if col.Database != nil {
		out = append(out, "database")
	}
	if len(col.Logs) > 0 {
		out = append(out, fmt.Sprintf("logs (%d)", len(col.Logs)))
	}
	if col.Loki != nil {
		out = append(out, "loki")
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// Kind returns which kind of receiver this is: slack, webhook or log.
func (r ReceiverConfig) Kind() string {
	switch {
	case r.Slack != nil:
		return "slack"
	case r.Webhook != nil:
		return "webhook"
	case r.Log != nil:
		return "log"
	}
	return "none"
}

func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Host
}
