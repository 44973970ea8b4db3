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
