package rules

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestTranslateRule(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      config.RuleConfig
		want    rulefmt.Rule
		wantErr string
	}{
		{
			name: "seed rule",
			in: config.RuleConfig{
				Name: "high_cpu", Condition: "cpu_usage > 80",
				Duration: config.Duration(5 * time.Minute), Severity: "critical",
				Labels: map[string]string{"app": "app", "environment": "production"},
			},
			want: rulefmt.Rule{
				Alert: "high_cpu", Expr: `cpu_usage{app="app",environment="production"} > 80`,
				For:    model.Duration(5 * time.Minute),
				Labels: map[string]string{"app": "app", "environment": "production", "severity": "critical"},
			},
		},
		{
			name: "annotations from fields win",
			in: config.RuleConfig{
				Name: "slow_queries", Condition: "query_duration > 1s",
				Labels:      map[string]string{"app": "database"},
				Annotations: map[string]string{"summary": "old", "team": "db"},
				Summary:     "slow: {{ $value }}s", Description: "longest statement",
				Runbook: "https://runbooks.example/slow", Dashboard: "https://grafana.example/d/db",
			},
			want: rulefmt.Rule{
				Alert: "slow_queries", Expr: `query_duration{app="database"} > 1s`,
				Labels: map[string]string{"app": "database"},
				Annotations: map[string]string{
					"summary": "slow: {{ $value }}s", "team": "db", "description": "longest statement",
					"runbook_url": "https://runbooks.example/slow", "dashboard": "https://grafana.example/d/db",
				},
			},
		},
		{
			name: "no labels, no severity",
			in:   config.RuleConfig{Name: "down", Condition: "up == 0"},
			want: rulefmt.Rule{Alert: "down", Expr: "up == 0"},
		},
		{name: "missing name", in: config.RuleConfig{Condition: "up == 0"}, wantErr: "name must be set"},
		{name: "missing condition", in: config.RuleConfig{Name: "x"}, wantErr: "condition must be set"},
		{
			name:    "bad condition",
			in:      config.RuleConfig{Name: "x", Condition: "cpu_usage >> 80"},
			wantErr: `condition: parse "cpu_usage >> 80": 1:12: parse error`,
		},
		{
			name:    "negative duration",
			in:      config.RuleConfig{Name: "x", Condition: "up == 0", Duration: config.Duration(-time.Second)},
			wantErr: "duration -1s is negative",
		},
		{
			name:    "bad template",
			in:      config.RuleConfig{Name: "x", Condition: "up == 0", Summary: "{{ $value "},
			wantErr: `annotation "summary"`,
		},
		{
			name:    "bad label name",
			in:      config.RuleConfig{Name: "x", Condition: "up == 0", Labels: map[string]string{"__name__": "y"}},
			wantErr: "invalid label name: __name__",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TranslateRule(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestTranslateRuleDoesNotAlias(t *testing.T) {
	in := config.RuleConfig{Name: "x", Condition: "up == 0", Severity: "low", Labels: map[string]string{"app": "a"}}
	_, err := TranslateRule(in)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"app": "a"}, in.Labels)
}

func TestLoadFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		content   string
		wantRules []rulefmt.Rule
		wantGroup string
		wantErrs  []string
	}{
		{
			name:      "seed alerts block",
			content:   "alerts:\n  rules:\n    - {name: db_down, condition: up == 0, duration: 1m, severity: critical, labels: {app: database}}\n",
			wantGroup: "rules",
			wantRules: []rulefmt.Rule{{
				Alert: "db_down", Expr: `up{app="database"} == 0`, For: model.Duration(time.Minute),
				Labels: map[string]string{"app": "database", "severity": "critical"},
			}},
		},
		{
			name:      "seed rules list",
			content:   "rules:\n  - name: disk\n    condition: disk_usage > 90\n    labels: {app: infrastructure}\n",
			wantGroup: "rules",
			wantRules: []rulefmt.Rule{{
				Alert: "disk", Expr: `disk_usage{app="infrastructure"} > 90`,
				Labels: map[string]string{"app": "infrastructure"},
			}},
		},
		{
			name:      "prometheus groups",
			content:   "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: sum(up)\n",
			wantGroup: "g",
			wantRules: []rulefmt.Rule{{Record: "a:b", Expr: "sum(up)"}},
		},
		{name: "empty file", content: ""},
		{
			name:     "prometheus validation error has file and line",
			content:  "groups:\n  - name: g\n    rules:\n      - alert: x\n        expr: up ==\n",
			wantErrs: []string{"rules.yml:5:15: group \"g\", rule 1, \"x\": could not parse expression"},
		},
		{
			name:     "seed condition error has file, line and rule",
			content:  "alerts:\n  rules:\n    - name: ok\n      condition: up == 0\n    - name: broken\n      condition: up ==\n",
			wantErrs: []string{`rules.yml:5: rule 2 (broken): condition: parse "up ==":`},
		},
		{
			name:     "unknown seed key",
			content:  "rules:\n  - name: x\n    condition: up == 0\n    duratoin: 5m\n",
			wantErrs: []string{`rules.yml:4: unknown key "duratoin" in rule`},
		},
		{
			name:     "bad seed duration",
			content:  "rules:\n  - name: x\n    condition: up == 0\n    duration: soon\n",
			wantErrs: []string{`rules.yml:2: `, `"soon" is not a duration`},
		},
		{
			name:     "unknown top-level key",
			content:  "alerts:\n  rules: []\nlogging: {}\n",
			wantErrs: []string{`rules.yml:3: unknown key "logging"`},
		},
		{
			name:     "mixed shapes",
			content:  "groups: []\nrules: []\n",
			wantErrs: []string{`rules.yml:1: groups cannot be mixed`},
		},
		{
			name:     "not a mapping",
			content:  "- a\n",
			wantErrs: []string{`rules.yml:1: expected a mapping`},
		},
		{
			name:     "bad seed limit",
			content:  "alerts:\n  limit: many\n  rules: []\n",
			wantErrs: []string{`rules.yml:2: alerts.limit "many" must be a whole number, 0 or more (0 means no limit)`},
		},
		{
			name:     "negative seed limit",
			content:  "alerts:\n  limit: -1\n  rules: []\n",
			wantErrs: []string{`rules.yml:2: alerts.limit "-1" must be a whole number`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "rules.yml")
			require.NoError(t, os.WriteFile(f, []byte(tc.content), 0o600))
			rgs, errs := LoadFile(f, false, model.UTF8Validation)
			if len(tc.wantErrs) > 0 {
				require.NotEmpty(t, errs)
				for _, w := range tc.wantErrs {
					require.ErrorContains(t, errs[0], w)
				}
				require.Contains(t, errs[0].Error(), f)
				return
			}
			require.Empty(t, errs)
			if tc.wantRules == nil {
				require.Empty(t, rgs.Groups)
				return
			}
			require.Len(t, rgs.Groups, 1)
			require.Equal(t, tc.wantGroup, rgs.Groups[0].Name)
			require.Equal(t, tc.wantRules, rgs.Groups[0].Rules)
		})
	}
}

func TestLoaderServesVirtualIdentifiers(t *testing.T) {
	l := NewLoader()
	cfg := &config.Config{Alerts: config.AlertsConfig{Rules: []config.RuleConfig{{Name: "x", Condition: "up == 0"}}}}
	rgs, errs := SeedGroups(SeedGroupName, cfg.Alerts.Rules, nil)
	require.Empty(t, errs)
	l.SetVirtual(map[string]*rulefmt.RuleGroups{SeedIdentifier(cfg): rgs})

	got, errs := l.Load("vigil.yaml#alerts", false, model.UTF8Validation)
	require.Empty(t, errs)
	require.Same(t, rgs, got)

	_, errs = l.Load(filepath.Join(t.TempDir(), "missing.yml"), false, model.UTF8Validation)
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], os.ErrNotExist)
}
