package config

import (
	_ "embed"
	"fmt"
)

//go:embed default.yml
var defaultYAML []byte

// defaultFile names the built-in configuration in errors and warnings.
const defaultFile = "<built-in default.yml>"

// Default returns the built-in configuration that vigil runs when it has no
// --config: development environment, data in ./data, listener :9090, self and
// infrastructure scrape, the seed's alert rules and notifications to the log.
// Each call returns a fresh copy.
func Default() *Config {
	cfg, err := parse(defaultYAML, defaultFile, func(string) (string, bool) { return "", false })
	if err != nil {
		// The file is embedded and tested; reaching this is a build defect.
		panic(fmt.Sprintf("config: the built-in default configuration is invalid: %v", err))
	}
	cfg.File = ""
	return cfg
}

// DefaultRules returns the seed's alert rules: application, infrastructure and
// database.
func DefaultRules() []RuleConfig { return Default().Alerts.Rules }
