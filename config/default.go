package config

import (
	_ "embed"
	"fmt"
)

//go:embed default.yml
var defaultYAML []byte

//go:embed own_rules.yml
var ownRulesYAML []byte

// defaultFile names the built-in configuration in errors and warnings.
const defaultFile = "<built-in default.yml>"

// Default returns the built-in configuration that vigil runs when it has no
// --config: development environment, data in ./data, listener :9090, self and
// infrastructure scrape, the seed's alert rules, vigil's own rules (OwnRules)
// and notifications to the log.
// Each call returns a fresh copy.
func Default() *Config {
	cfg, err := parse(defaultYAML, defaultFile, func(string) (string, bool) { return "", false })
	if err != nil {
		// The file is embedded and tested; reaching this is a build defect.
		panic(fmt.Sprintf("config: the built-in default configuration is invalid: %v", err))
	}
	cfg.File = ""
	cfg.OwnRules = append(BuiltinOwnRules(), cfg.OwnRules...)
	return cfg
}

// BuiltinOwnRules returns vigil's own rules of the built-in default
// (own_rules.yml): alerts vigil adds to the seed's. Each call returns a
// fresh copy.
func BuiltinOwnRules() []RuleConfig {
	cfg, err := parse(ownRulesYAML, "<built-in own_rules.yml>", func(string) (string, bool) { return "", false })
	if err != nil {
		panic(fmt.Sprintf("config: the built-in own rules are invalid: %v", err))
	}
	return cfg.Alerts.Rules
}

// DefaultRules returns the built-in default's alert rules: the seed's
// application, infrastructure and database rules, exactly as the seed writes
// them.
func DefaultRules() []RuleConfig { return Default().Alerts.Rules }

// RuleLimitRuleName is the alert vigil raises for a rule over its limit.
const RuleLimitRuleName = "rule_limit_exceeded"

// ruleLimitRules is vigil's own rule that pages when a rule's evaluation
// produced more series or alerts than alerts.limit. Over the limit,
// Prometheus's rules drop the whole evaluation: the rule sends no alert,
// firing or resolved, so without this rule an alert storm that crosses the
// limit pages nobody. It reads vigil's own metrics, so it is added
// whenever collectors.self scrapes them (the default), in every config.
func (c *Config) ruleLimitRules() []RuleConfig {
	if !c.SelfEnabled() {
		return nil
	}
	return []RuleConfig{{
		Name:      RuleLimitRuleName,
		Condition: "vigil_rule_limit_exceeded == 1",
		Severity:  "critical",
		Labels:    map[string]string{"app": "vigil"},
		Summary:   "Rule {{ $labels.rule }} is over its limit and sends no alerts",
		Description: "The last evaluation of rule {{ $labels.rule }} (group {{ $labels.rule_group }}) produced more series or alerts " +
			"than alerts.limit (or the group's own limit): its result was dropped, so the rule sends no alert, firing or resolved, " +
			"until it is back under the limit. Its open incidents stay open until then; raise alerts.limit or narrow the rule.",
	}}
}
