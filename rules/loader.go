package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// SeedGroupName is the name of the one group that holds the alert rules
// written in the main config file's alerts block.
const SeedGroupName = "vigil"

// seedIdentifierSuffix marks the virtual "file" of the main config's alert
// rules; no glob in rule_files can produce it.
const seedIdentifierSuffix = "#alerts"

// SignalsIdentifier is the rule "file" under which the app's signal
// recording rules are served.
func SignalsIdentifier(cfg *config.Config) string {
	return strings.TrimSuffix(SeedIdentifier(cfg), "#alerts") + "#signals"
}

// OwnGroupName is the group of vigil's own alert rules (config.OwnRules),
// apart from the seed's.
const OwnGroupName = "vigil-own-rules"

// OwnIdentifier is the rule "file" under which vigil's own rules are served.
func OwnIdentifier(cfg *config.Config) string {
	return strings.TrimSuffix(SeedIdentifier(cfg), "#alerts") + "#own"
}

// SeedIdentifier returns the identifier under which the alert rules of the
// main config's alerts block are served: the config file's path followed by
// "#alerts", or "vigil.yaml#alerts" for the built-in default config. It is
// the "file" Prometheus's API shows for those rules.
func SeedIdentifier(cfg *config.Config) string {
	f := cfg.File
	if f == "" {
		f = "vigil.yaml"
	}
	return f + seedIdentifierSuffix
}

// Loader is a rules.GroupLoader for vigil's rule sources: the virtual
// identifiers registered with SetVirtual (the main config's seed rules) and
// rule files, in Prometheus's `groups:` format or in the seed's shape (see
// LoadFile). It is safe for concurrent use.
type Loader struct {
	mtx     sync.RWMutex
	virtual map[string]*rulefmt.RuleGroups
}

var _ promrules.GroupLoader = (*Loader)(nil)

// NewLoader returns a Loader with no virtual identifiers.
func NewLoader() *Loader {
	return &Loader{virtual: map[string]*rulefmt.RuleGroups{}}
}

// SetVirtual replaces the loader's virtual identifiers: Load serves each key
// of groups from the map instead of reading a file.
func (l *Loader) SetVirtual(groups map[string]*rulefmt.RuleGroups) {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	l.virtual = groups
}

// Load implements rules.GroupLoader.
func (l *Loader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mtx.RLock()
	rgs, ok := l.virtual[identifier]
	l.mtx.RUnlock()
	if ok {
		return rgs, nil
	}
	return LoadFile(identifier, ignoreUnknownFields, scheme)
}

// Parse implements rules.GroupLoader.
func (*Loader) Parse(query string) (parser.Expr, error) { return promqlparse.ParseExpr(query) }

// SeedGroups translates seed-format rules into one rule group called name.
// Each error starts with where(i), the location of the i-th rule; a nil
// where gives "rule N (NAME)".
func SeedGroups(name string, rs []config.RuleConfig, where func(i int) string) (*rulefmt.RuleGroups, []error) {
	if where == nil {
		where = func(i int) string { return fmt.Sprintf("rule %d (%s)", i+1, rs[i].Name) }
	}
	g := rulefmt.RuleGroup{Name: name, Rules: make([]rulefmt.Rule, 0, len(rs))}
	var errs []error
	for i, r := range rs {
		pr, err := TranslateRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where(i), err))
			continue
		}
		g.Rules = append(g.Rules, pr)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}}, nil
}

// LoadFile reads one rule file and detects its shape:
//
//   - `groups: [...]`: Prometheus rule groups (recording and alerting rules),
//     parsed and validated by Prometheus's rulefmt;
//   - `alerts: {rules: [...]}` or `rules: [...]`: seed-format alert rules,
//     translated and scoped as TranslateRule does into one group named after
//     the file (its base name without extension).
//
// An empty file has no groups. Every error starts with the file name and,
// where known, the line.
func LoadFile(file string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", file, err)}
	}
	return parseRuleFile(file, content, ignoreUnknownFields, scheme)
}

// discardLogger takes rulefmt.Parse's warning about a second YAML document
// in a rule file: like Prometheus before v0.311, vigil reads the first
// document and ignores the rest without a word.
var discardLogger = slog.New(slog.DiscardHandler)

// parseRuleFile does LoadFile's work on content.
func parseRuleFile(file string, content []byte, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, []error{fmt.Errorf("%s: %w", file, err)}
	}
	if len(doc.Content) == 0 {
		return &rulefmt.RuleGroups{}, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, []error{lineErr(file, root, "expected a mapping with a groups, alerts or rules key")}
	}

	var groups, alerts, seedRules *yaml.Node
	var errs []error
	// limit is a seed-format file's alerts.limit: the group's limit, as
	// `limit` is for a Prometheus rule group.
	var limit int
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "groups":
			groups = k
		case "alerts":
			alerts = v
		case "rules":
			seedRules = v
		default:
			if !ignoreUnknownFields {
				errs = append(errs, lineErr(file, k, "unknown key %q (expected groups, alerts or rules)", k.Value))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	switch {
	case groups != nil && (alerts != nil || seedRules != nil):
		return nil, []error{lineErr(file, groups, "groups cannot be mixed with the seed's alerts or rules keys")}
	case alerts != nil && seedRules != nil:
		return nil, []error{lineErr(file, seedRules, "use either alerts: {rules: [...]} or rules: [...], not both")}
	case groups != nil:
		rgs, errs := rulefmt.Parse(content, ignoreUnknownFields, scheme, promqlparse.Parser, discardLogger)
		for i, e := range errs {
			errs[i] = fileErr(file, e)
		}
		return rgs, errs
	case alerts != nil:
		if alerts.Kind != yaml.MappingNode {
			return nil, []error{lineErr(file, alerts, "alerts must be a mapping with a rules key")}
		}
		for i := 0; i+1 < len(alerts.Content); i += 2 {
			k, v := alerts.Content[i], alerts.Content[i+1]
			switch k.Value {
			case "rules":
				seedRules = v
			case "limit":
				if err := v.Decode(&limit); err != nil || limit < 0 {
					errs = append(errs, lineErr(file, v, "alerts.limit %q must be a whole number, 0 or more (0 means no limit)", v.Value))
				}
			default:
				if !ignoreUnknownFields {
					errs = append(errs, lineErr(file, k, "unknown key %q in alerts (expected rules or limit)", k.Value))
				}
			}
		}
		if len(errs) > 0 {
			return nil, errs
		}
		if seedRules == nil {
			return &rulefmt.RuleGroups{}, nil
		}
	}
	rgs, errs := parseSeedRules(file, seedRules, ignoreUnknownFields)
	if rgs != nil {
		for i := range rgs.Groups {
			rgs.Groups[i].Limit = limit
		}
	}
	return rgs, errs
}

// parseSeedRules decodes a YAML sequence of seed rules into one group.
func parseSeedRules(file string, seq *yaml.Node, ignoreUnknownFields bool) (*rulefmt.RuleGroups, []error) {
	if seq.Kind == yaml.ScalarNode && seq.Tag == "!!null" {
		return &rulefmt.RuleGroups{}, nil
	}
	if seq.Kind != yaml.SequenceNode {
		return nil, []error{lineErr(file, seq, "rules must be a list of rules")}
	}
	var (
		rs    []config.RuleConfig
		lines []int
		errs  []error
	)
	for _, item := range seq.Content {
		if item.Kind != yaml.MappingNode {
			errs = append(errs, lineErr(file, item, "a rule must be a mapping"))
			continue
		}
		if !ignoreUnknownFields {
			for i := 0; i < len(item.Content); i += 2 {
				k := item.Content[i]
				if _, ok := seedRuleKeys[k.Value]; !ok {
					errs = append(errs, lineErr(file, k, "unknown key %q in rule (expected one of %s)", k.Value, seedRuleKeyList))
				}
			}
		}
		var r config.RuleConfig
		if err := item.Decode(&r); err != nil {
			errs = append(errs, lineErr(file, item, "%v", err))
			continue
		}
		rs = append(rs, r)
		lines = append(lines, item.Line)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	return SeedGroups(name, rs, func(i int) string {
		return fmt.Sprintf("%s:%d: rule %d (%s)", file, lines[i], i+1, rs[i].Name)
	})
}

// seedRuleKeys are the YAML keys of config.RuleConfig, for strict decoding of
// seed rules in rule files (yaml.Node.Decode has no strict mode).
var seedRuleKeys, seedRuleKeyList = func() (map[string]struct{}, string) {
	keys := map[string]struct{}{}
	var names []string
	t := reflect.TypeFor[config.RuleConfig]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys[name] = struct{}{}
		names = append(names, name)
	}
	return keys, strings.Join(names, ", ")
}()

// lineErr makes an error "file:line: message".
func lineErr(file string, n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", file, n.Line, fmt.Sprintf(format, args...))
}

// fileErr puts the file name in front of err: rulefmt's errors start with
// "line:col:", which stays glued to the name as "file:line:col:".
func fileErr(file string, err error) error {
	if msg := err.Error(); msg != "" && msg[0] >= '0' && msg[0] <= '9' {
		return fmt.Errorf("%s:%w", file, err)
	}
	return fmt.Errorf("%s: %w", file, err)
}

// expandRuleFiles resolves rule_files patterns relative to dir (unless
// absolute) and expands globs. Patterns that match nothing are returned in
// unmatched; Prometheus ignores them too.
func expandRuleFiles(dir string, patterns []string) (files, unmatched []string, err error) {
	seen := map[string]struct{}{}
	for _, p := range patterns {
		if p == "" {
			continue
		}
		if dir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		m, gerr := filepath.Glob(p)
		if gerr != nil {
			err = errors.Join(err, fmt.Errorf("rule_files: %q: %w", p, gerr))
			continue
		}
		if len(m) == 0 {
			unmatched = append(unmatched, p)
		}
		for _, f := range m {
			if _, ok := seen[f]; ok {
				continue
			}
			seen[f] = struct{}{}
			files = append(files, f)
		}
	}
	return files, unmatched, err
}
