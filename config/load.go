package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes and validates the configuration file at path. On failure
// the error is Errors, with every problem found. The file must be a regular
// file of at most MaxConfigFileSize bytes.
func Load(path string) (*Config, error) {
	data, err := readLimited(path, MaxConfigFileSize)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a configuration file's contents. filename is used
// in errors and to resolve relative paths (secrets, rule_files, file_sd). On
// failure the error is Errors, with every problem found.
func Parse(data []byte, filename string) (*Config, error) {
	return parse(data, filename, defaultLookupEnv)
}

func parse(data []byte, filename string, lookupEnv func(string) (string, bool)) (*Config, error) {
	cfg := newConfig()
	cfg.File = filename
	r := &reporter{file: filename, positions: cfg.positions, names: cfg.names}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{syntaxError(filename, err)}
	}
	d := &decoder{reporter: r, lookupEnv: lookupEnv}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		d.decode(root.Content[0], reflect.ValueOf(cfg).Elem(), "")
	}
	cfg.Warnings = d.warnings

	dir := filepath.Dir(filename)
	cfg.applyDefaults()
	cfg.readSecrets(r, dir)
	cfg.validate(r)
	if len(r.errs) > 0 {
		r.errs.sortByLine()
		return nil, r.errs
	}
	cfg.Warnings = append(cfg.Warnings, cfg.accessWarnings()...)
	// After validation, so that errors quote the globs as written.
	cfg.resolvePaths(dir)
	cfg.OwnRules = append(cfg.OwnRules, cfg.certificateRules()...)
	cfg.OwnRules = append(cfg.OwnRules, cfg.dataDirRules()...)
	cfg.OwnRules = append(cfg.OwnRules, cfg.ruleLimitRules()...)
	cfg.OwnRules = append(cfg.OwnRules, cfg.drRules()...)
	cfg.Warnings = append(cfg.Warnings, cfg.securityWarnings()...)
	return cfg, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the parser's (not the scanner's) problems. yaml.v3
// reports them with the zero-based line where the enclosing block or list
// starts; the scanner's come one-based.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected key",
	"did not find expected node content",
}

// syntaxError turns yaml's "yaml: line 5: ..." into an *Error.
func syntaxError(file string, err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		problem := m[2]
		if slices.Contains(yamlParserProblems, problem) {
			line++
			problem += " (in the block that starts on this line)"
		}
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + problem, Err: err}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: "), Err: err}
}

// readSecrets reads secrets from *_file keys, relative to the config file's
// directory.
func (c *Config) readSecrets(r *reporter, dir string) {
	if db := c.Collectors.Database; db != nil {
		readSecret(r, dir, "collectors.database", "dsn", &db.DSN, &db.DSNFile)
	}
	readSecret(r, dir, "storage", "incidents", &c.Storage.Incidents, &c.Storage.IncidentsFile)
	for i := range c.Receivers {
		rc := &c.Receivers[i]
		p := indexPath("receivers", i)
		if rc.Slack != nil {
			readSecret(r, dir, joinPath(p, "slack"), "token", &rc.Slack.Token, &rc.Slack.TokenFile)
		}
		if rc.Webhook != nil {
			readSecret(r, dir, joinPath(p, "webhook"), "secret", &rc.Webhook.Secret, &rc.Webhook.SecretFile)
		}
	}
	if w := c.Rollback.Webhook; w != nil {
		readSecret(r, dir, "rollback.webhook", "secret", &w.Secret, &w.SecretFile)
	}
}

// resolvePaths makes rule_files and collectors.app.file_sd relative to the
// config file's directory; globs stay globs. data_dir stays as written,
// relative to the working directory, like Prometheus's --storage.tsdb.path.
func (c *Config) resolvePaths(dir string) {
	for i, f := range c.RuleFiles {
		c.RuleFiles[i] = resolvePath(dir, f)
	}
	if a := c.Collectors.App; a != nil {
		for i, f := range a.FileSD {
			a.FileSD[i] = resolvePath(dir, f)
		}
		if tp := a.TLSProbe; tp != nil && tp.CAFile != "" {
			tp.CAFile = resolvePath(dir, tp.CAFile)
		}
	}
	// remote_write's password_file, credentials_file and tls_config files.
	for i := range c.RemoteWrite {
		c.RemoteWrite[i].SetDirectory(dir)
	}
	c.resolveForwardPaths(dir)
}

// readSecret fills secret from the file named by *file (made absolute against
// dir): a regular file of at most MaxSecretFileSize bytes. Giving both the
// value and the file is an error.
func readSecret(r *reporter, dir, path, key string, secret *Secret, file *string) {
	if *file == "" {
		return
	}
	filePath := joinPath(path, key+"_file")
	if *secret != "" {
		r.keyErr(0, filePath, "%s and %s_file are both set; give one", key, key)
		return
	}
	*file = resolvePath(dir, *file)
	data, err := readLimited(*file, MaxSecretFileSize)
	if err != nil {
		e := r.makeError(0, filePath, ": ", fmt.Sprintf("cannot read the secret: %v", err))
		e.Err = err
		r.errs = append(r.errs, e)
		return
	}
	*secret = Secret(strings.TrimRight(string(data), "\r\n"))
}

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
