package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// seedDocument returns the user's specification: ../shared/seed when this
// checkout sits beside it, else the committed copy in testdata.
func seedDocument(t *testing.T) []byte {
	t.Helper()
	for _, p := range []string{
		filepath.Join("..", "..", "shared", "seed", "000_263c6f56cf808b22.txt"),
		filepath.Join("testdata", "seed.txt"),
	} {
		if b, err := os.ReadFile(p); err == nil {
			return b
		}
	}
	t.Fatal("no seed document: testdata/seed.txt is missing")
	return nil
}

var yamlBlockRE = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// seedYAMLBlocks returns the seed's yaml blocks whose first key is top.
func seedYAMLBlocks(t *testing.T, top string) []string {
	var out []string
	for _, m := range yamlBlockRE.FindAllStringSubmatch(string(seedDocument(t)), -1) {
		var probe map[string]yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(m[1]), &probe))
		if _, ok := probe[top]; ok {
			out = append(out, m[1])
		}
	}
	return out
}

// seedRule is what the seed writes of a rule.
type seedRule struct {
	Name      string            `yaml:"name"`
	Condition string            `yaml:"condition"`
	Duration  string            `yaml:"duration"`
	Severity  string            `yaml:"severity"`
	Labels    map[string]string `yaml:"labels"`
}

// seedRules returns the rules of the seed's three alert blocks, in order.
func seedRules(t *testing.T) []seedRule {
	var out []seedRule
	for _, b := range seedYAMLBlocks(t, "alerts") {
		var doc struct {
			Alerts struct {
				Rules []seedRule `yaml:"rules"`
			} `yaml:"alerts"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(b), &doc))
		out = append(out, doc.Alerts.Rules...)
	}
	require.Len(t, out, 9, "the seed has three alert blocks of three rules")
	return out
}

func asSeed(t *testing.T, rs []RuleConfig) []seedRule {
	out := make([]seedRule, 0, len(rs))
	for _, r := range rs {
		out = append(out, seedRule{
			Name: r.Name, Condition: r.Condition, Duration: r.Duration.String(),
			Severity: r.Severity, Labels: r.Labels,
		})
	}
	return out
}

func normalise(t *testing.T, rs []seedRule) []seedRule {
	for i := range rs {
		d, err := ParseDuration(rs[i].Duration)
		require.NoError(t, err)
		rs[i].Duration = Duration(d).String()
	}
	return rs
}

// TestDefaultRulesAreTheSeeds: the built-in default's alerts.rules are the
// seed's alert blocks, value for value; vigil's additions are its own group.
func TestDefaultRulesAreTheSeeds(t *testing.T) {
	want := normalise(t, seedRules(t))
	require.Equal(t, want, asSeed(t, Default().Alerts.Rules))

	own := Default().OwnRules
	require.NotEmpty(t, own)
	seedNames := map[string]bool{}
	for _, r := range want {
		seedNames[r.Name] = true
	}
	for _, r := range own {
		require.False(t, seedNames[r.Name], "vigil's own rule %s takes a seed rule's name", r.Name)
	}
}

// TestExampleRuleFilesAreTheSeeds: deploy/examples/rules holds the seed's
// three alert blocks, one file each, and vigil's own rules apart (vigil.yml).
func TestExampleRuleFilesAreTheSeeds(t *testing.T) {
	want := normalise(t, seedRules(t))
	var got []seedRule
	for _, f := range []string{"application.yml", "infrastructure.yml", "database.yml"} {
		cfg, err := Load(filepath.Join("..", "deploy", "examples", "rules", f))
		require.NoError(t, err)
		got = append(got, asSeed(t, cfg.Alerts.Rules)...)
	}
	require.Equal(t, want, got)

	own, err := Load(filepath.Join("..", "deploy", "examples", "rules", "vigil.yml"))
	require.NoError(t, err)
	require.Equal(t, asSeed(t, BuiltinOwnRules()), asSeed(t, own.Alerts.Rules), "the example's own rules are the built-in ones")
}

// TestSeedYAMLBlocksFound guards the block extraction itself.
func TestSeedYAMLBlocksFound(t *testing.T) {
	require.Len(t, seedYAMLBlocks(t, "metrics"), 3)
	require.Len(t, seedYAMLBlocks(t, "logging"), 3)
	require.True(t, strings.Contains(seedYAMLBlocks(t, "backup")[0], "schedule"))
	_ = time.Second
}

// TestSeedMetricsBlocks: the seed's three metrics blocks load; the
// application block's labels are the app's, and the others' port and path
// are checked against vigil's listener (collector_port_path.bad.yml has the
// values that would be ignored).
func TestSeedMetricsBlocks(t *testing.T) {
	cfg, err := Load("testdata/seed_metrics_blocks.good.yml")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"app": "app", "environment": "production"}, cfg.Collectors.App.Labels)
	require.Equal(t, "infrastructure", cfg.Collectors.Infrastructure.Labels["app"])
	require.Equal(t, "database", cfg.Collectors.Database.Labels["app"])
}

// TestSeedDataSecurityBlocks: the seed's backup and disaster_recovery blocks
// load verbatim into their types, as does encryption.in_transit.
func TestSeedDataSecurityBlocks(t *testing.T) {
	cfg, err := Load("testdata/seed_data_security.good.yml")
	require.NoError(t, err)
	want := &BackupConfig{Schedule: "0 0 * * *", Retention: Duration(30 * 24 * time.Hour), Storage: "S3", Encryption: true, Compression: true}
	require.Equal(t, want, cfg.Backup)
	dr := cfg.DisasterRecovery
	require.Equal(t, Duration(4*time.Hour), dr.RTO)
	require.Equal(t, Duration(time.Hour), dr.RPO)
	require.Equal(t, want, dr.Backup)
	require.Equal(t, &ReplicationConfig{Enabled: true, Region: "us-east-1", Interval: Duration(5 * time.Minute)}, dr.Replication)
	require.Equal(t, "TLS 1.3", cfg.TLSVersion())
	require.Equal(t, Duration(90*24*time.Hour), cfg.Encryption.InTransit.CertificateRotation)

	// The seed's own blocks, read from the seed document, load too.
	for _, top := range []string{"backup", "disaster_recovery"} {
		for _, b := range seedYAMLBlocks(t, top) {
			_, err := Parse([]byte(b), "seed-"+top+".yml")
			require.NoError(t, err, top)
		}
	}
}

func TestCheckCron(t *testing.T) {
	for _, ok := range []string{"0 0 * * *", "*/15 * * * *", "0 9-17 * * mon-fri", "0 0 1,15 jan,jul 0", "@daily", "5 4 * * 7"} {
		require.NoError(t, checkCron(ok), ok)
	}
	for _, bad := range []string{"", "0 0 * *", "60 0 * * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 8", "*/0 * * * *", "5-1 * * * *", "@sometimes", "x * * * *"} {
		require.Error(t, checkCron(bad), bad)
	}
}

// TestCertificateRotationRules: encryption.in_transit.certificate_rotation
// (the seed's 90d) adds vigil's own certificate rules with the period in
// their thresholds: due at 83 days (a 7-day margin), expiring within 7 days.
func TestCertificateRotationRules(t *testing.T) {
	cfg, err := Load("testdata/seed_data_security.good.yml")
	require.NoError(t, err)
	require.Len(t, cfg.OwnRules, 7, "two certificate rules, rule_limit_exceeded and the DR watch's four (drwatch_test.go)")
	require.Equal(t, "vigil_certificate_rotation_due", cfg.OwnRules[0].Name)
	require.Equal(t, "time() - vigil_tls_certificate_not_before_timestamp_seconds > 7171200", cfg.OwnRules[0].Condition)
	require.Equal(t, "vigil_tls_certificate_not_after_timestamp_seconds - time() < 604800", cfg.OwnRules[1].Condition)

	// Without the block there are none: only the rule every config has.
	cfg, err = Load("testdata/seed_metrics_blocks.good.yml")
	require.NoError(t, err)
	require.Len(t, cfg.OwnRules, 1)
	require.Equal(t, RuleLimitRuleName, cfg.OwnRules[0].Name)
}

// TestTLSProbeRules: with collectors.app.tls_probe, encryption.in_transit
// also watches the app's TLS: its version against the policy and its
// certificate's age and expiry, scoped to the app's label.
func TestTLSProbeRules(t *testing.T) {
	cfg, err := Load("testdata/tls_probe.good.yml")
	require.NoError(t, err)
	tp := cfg.Collectors.App.TLSProbe
	require.Equal(t, Duration(15*time.Second), tp.Interval)
	require.Equal(t, Duration(10*time.Second), tp.Timeout)
	var names []string
	for _, r := range cfg.OwnRules {
		names = append(names, r.Name)
		if strings.HasPrefix(r.Name, "app_") {
			require.Equal(t, map[string]string{"app": "checkout"}, r.Labels)
		}
	}
	require.Equal(t, []string{"app_tls_version_below_policy", "app_certificate_rotation_due", "app_certificate_expiring",
		"vigil_certificate_rotation_due", "vigil_certificate_expiring", RuleLimitRuleName}, names)
	require.Equal(t, "probe_tls_certificate_expiry_days < 7", cfg.OwnRules[2].Condition)
}

// seedBlockByHeading returns the seed's yaml block that opens with the
// comment heading (e.g. "# Firewall rules configuration").
func seedBlockByHeading(t *testing.T, heading string) string {
	t.Helper()
	var out []string
	for _, m := range yamlBlockRE.FindAllStringSubmatch(string(seedDocument(t)), -1) {
		if strings.HasPrefix(m[1], heading+"\n") {
			out = append(out, m[1])
		}
	}
	require.Len(t, out, 1, "the seed has one block headed %q", heading)
	return out[0]
}

// TestSeedSecurityBlocksLoad: the seed's Deployment Security blocks, cut
// straight from the seed document, load as they are, one by one and
// together; the committed fixture is the same text.
func TestSeedSecurityBlocksLoad(t *testing.T) {
	var all []string
	for _, h := range []string{"# Firewall rules configuration", "# Network policies configuration",
		"# Security groups configuration", "# Encryption configuration"} {
		b := seedBlockByHeading(t, h)
		_, err := Parse([]byte(b), "seed-block.yml")
		require.NoError(t, err, h)
		all = append(all, b)
	}
	cfg, err := Parse([]byte(strings.Join(all, "\n")), "seed-security.yml")
	require.NoError(t, err)

	fixture, err := os.ReadFile("testdata/seed_security.good.yml")
	require.NoError(t, err)
	for _, b := range all {
		require.Contains(t, string(fixture), b, "the fixture holds the seed's block verbatim")
	}

	f := cfg.Firewall
	require.Len(t, f.Inbound, 3)
	require.Equal(t, FirewallRule{Port: PortRange{22, 22}, Protocol: "tcp", Source: "10.0.0.0/8", Description: "SSH"}, f.Inbound[2])
	require.Equal(t, FirewallRule{Port: PortRange{0, 65535}, Protocol: "all", Destination: "0.0.0.0/0", Description: "All traffic"}, f.Outbound[0])
	require.Len(t, cfg.Network.Policies, 2)
	db := cfg.Network.Policies[1]
	require.Equal(t, "database-policy", db.Name)
	require.Equal(t, map[string]string{"app": "database"}, db.PodSelector.MatchLabels)
	require.Equal(t, map[string]string{"app": "app"}, db.Ingress[0].From[0].PodSelector.MatchLabels)
	require.Equal(t, []NetworkPolicyPort{{Protocol: "TCP", Port: 5432}}, db.Ingress[0].Ports)
	require.Len(t, cfg.Security.Groups, 1)
	require.Equal(t, "app-sg", cfg.Security.Groups[0].Name)
	require.Len(t, cfg.Security.Groups[0].Ingress, 2)
	require.Equal(t, PortRange{0, 65535}, cfg.Security.Groups[0].Egress[0].Port)
	require.Equal(t, &AtRestConfig{Algorithm: "AES-256", KeyRotation: Duration(30 * 24 * time.Hour), KeyStorage: "KMS"}, cfg.Encryption.AtRest)
	require.Equal(t, "ACM", cfg.Encryption.InTransit.CertificateStorage)

	// What vigil cannot verify is said once; what it can check is checked.
	var recorded []string
	for _, w := range cfg.Warnings {
		if strings.HasPrefix(w, "recorded, not enforced: ") {
			recorded = append(recorded, w)
		}
	}
	require.Len(t, recorded, 1)
	for _, name := range []string{"firewall", "network.policies", "security.groups", "encryption.at_rest algorithm AES-256, key_rotation 30d, key_storage KMS", "certificate_storage ACM"} {
		require.Contains(t, recorded[0], name)
	}
	require.Contains(t, cfg.Warnings, "firewall.inbound (line 3): no rule opens vigil's port 9090 (:9090): Grafana and users off this host cannot reach vigil")
	// at_rest asks for vigil's own data_dir rule.
	var dataDir *RuleConfig
	for i, r := range cfg.OwnRules {
		if r.Name == "data_dir_not_encrypted" {
			dataDir = &cfg.OwnRules[i]
		}
	}
	require.NotNil(t, dataDir)
	require.Equal(t, "vigil_data_dir_encrypted == 0", dataDir.Condition)
	require.Equal(t, "warning", dataDir.Severity)

	// Without the blocks: no rule, no warning.
	cfg, err = Load("testdata/seed_data_security.good.yml")
	require.NoError(t, err)
	for _, r := range cfg.OwnRules {
		require.NotEqual(t, "data_dir_not_encrypted", r.Name)
	}
	for _, w := range cfg.Warnings {
		require.NotContains(t, w, "recorded, not enforced")
	}
}

// TestSecurityWarnings: the checks vigil makes of the security blocks
// against its own config.
func TestSecurityWarnings(t *testing.T) {
	cases := []struct {
		name, yml string
		want      []string
	}{
		{"vigil's port open, ssh closed: no warning", `
server: {listen: ":9090"}
firewall:
  inbound:
    - {port: 9000-9100, protocol: tcp, source: 10.0.0.0/8}
    - {port: 22, protocol: tcp, source: 10.0.0.0/8}
`, nil},
		{"protocol as validation accepts it, case and space aside: vigil's port open", `
server: {listen: ":9090"}
firewall:
  inbound:
    - {port: 9090, protocol: " TCP ", source: 10.0.0.0/8}
`, nil},
		{"ssh to the world", `
firewall:
  inbound:
    - {port: 0-65535, protocol: all, source: 0.0.0.0/0}
`, []string{"firewall.inbound[0] (line 4): SSH (port 22) is open to 0.0.0.0/0, the whole internet; limit it to your own network"}},
		{"udp does not open vigil's port", `
server: {listen: ":9191"}
security:
  groups:
    - name: vigil-sg
      ingress:
        - {port: 9191, protocol: udp, source: 10.0.0.0/8}
`, []string{"security.groups (line 4): no group's ingress opens vigil's port 9191 (:9191): Grafana and users outside the cloud network cannot reach vigil"}},
		{"vigil on loopback only: the firewall does not matter to it", `
server: {listen: "127.0.0.1:9090"}
firewall:
  inbound:
    - {port: 443, protocol: tcp, source: 0.0.0.0/0}
`, nil},
		{"database policy without the dsn's port", `
collectors:
  database:
    dsn: postgres://vigil@db.internal:6432/app
network:
  policies:
    - name: database-policy
      podSelector: {matchLabels: {app: database}}
      ingress:
        - ports: [{protocol: TCP, port: 5432}]
`, []string{`network.policies[0] "database-policy" (line 7): its ingress ports (5432) do not include 6432, the port of collectors.database's dsn: vigil could not reach the database`}},
		{"database policy with the dsn's port", `
collectors:
  database:
    dsn: host=db.internal port=5432 dbname=app
network:
  policies:
    - name: database-policy
      podSelector: {matchLabels: {app: database}}
      ingress:
        - ports: [{protocol: TCP, port: 5432}]
`, nil},
		{"database policy with a protocol and no port: every port", `
collectors:
  database:
    dsn: postgres://vigil@db.internal:6432/app
network:
  policies:
    - name: database-policy
      podSelector: {matchLabels: {app: database}}
      ingress:
        - ports: [{protocol: TCP}]
`, nil},
		{"app policy without the target's port", `
collectors:
  app:
    targets: ["app.default.svc:8080", "127.0.0.1:9000"]
    labels: {app: app}
network:
  policies:
    - name: app-policy
      podSelector: {matchLabels: {app: app}}
      ingress:
        - ports: [{protocol: TCP, port: 80}]
`, []string{`network.policies[0] "app-policy" (line 8): its ingress ports (80) do not include 8080, the port of the app target app.default.svc:8080: vigil could not scrape the app`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yml), "w.yml")
			require.NoError(t, err)
			var got []string
			for _, w := range cfg.Warnings {
				if !strings.HasPrefix(w, "recorded, not enforced: ") {
					got = append(got, w)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParsePortRange(t *testing.T) {
	for s, want := range map[string]PortRange{"80": {80, 80}, "0-65535": {0, 65535}, " 8000 - 8080 ": {8000, 8080}, "65535": {65535, 65535}} {
		got, err := ParsePortRange(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
	for _, bad := range []string{"", "0", "65536", "99999", "-1", "10-5", "0-65536", "http", "80-", "1-2-3"} {
		_, err := ParsePortRange(bad)
		require.Error(t, err, bad)
	}
}

// TestRuleLimitRuleInEveryConfig: a rule over alerts.limit sends nothing,
// so vigil's own rule_limit_exceeded pages for it in every config that
// scrapes vigil's own metrics (the default), not only the built-in one; it
// cannot work without them, so a config that turns self off has none.
func TestRuleLimitRuleInEveryConfig(t *testing.T) {
	limitRule := func(cfg *Config) *RuleConfig {
		for i, r := range cfg.OwnRules {
			if r.Name == RuleLimitRuleName {
				return &cfg.OwnRules[i]
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		cfg  func() (*Config, error)
		want bool
	}{
		{"built-in default", func() (*Config, error) { return Default(), nil }, true},
		{"config file", func() (*Config, error) { return Load("testdata/seed_metrics_blocks.good.yml") }, true},
		{"self scrape off", func() (*Config, error) {
			return Parse([]byte("collectors:\n  self:\n    enabled: false\n"), "off.yml")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg()
			require.NoError(t, err)
			r := limitRule(cfg)
			if !tc.want {
				require.Nil(t, r)
				return
			}
			require.NotNil(t, r)
			require.Equal(t, "vigil_rule_limit_exceeded == 1", r.Condition)
			require.Equal(t, "critical", r.Severity)
			require.Equal(t, "vigil", r.Labels["app"])
			require.Contains(t, r.Description, "{{ $labels.rule }}")
			require.Contains(t, r.Description, "alerts.limit")
			n := 0
			for _, o := range cfg.OwnRules {
				if o.Name == RuleLimitRuleName {
					n++
				}
			}
			require.Equal(t, 1, n, "added once")
		})
	}
}

func TestSecurityGroupNameTwice(t *testing.T) {
	const doc = `security:
  groups:
    - name: app-sg
      ingress: [{port: 443, protocol: tcp, source: 10.0.0.0/8}]
    - name: app-sg
      ingress: [{port: 80, protocol: tcp, source: 10.0.0.0/8}]
`
	_, err := Parse([]byte(doc), "vigil.yaml")
	require.EqualError(t, err, `vigil.yaml:5: security.groups[1] "app-sg": name "app-sg" is used twice (first at line 3)`)
}

func TestListensOnLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090": true, "[::1]:9090": true, "localhost:9090": true,
		":9090": false, "0.0.0.0:9090": false, "10.0.0.5:9090": false, "vigil.internal:9090": false,
	} {
		c := &Config{Server: ServerConfig{Listen: addr}}
		require.Equal(t, want, c.ListensOnLoopback(), addr)
	}
}
