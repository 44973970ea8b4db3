package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/testutil"
)

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		file string
		want []string
	}{
		{"unknown_top_level.bad.yml", []string{`unknown_top_level.bad.yml:2: enviroment: unknown key "enviroment" (did you mean "environment"?)`}},
		{"unknown_nested.bad.yml", []string{`unknown_nested.bad.yml:4: collectors.app.tragets: unknown key "tragets" (did you mean "targets"?)`}},
		{"bad_duration.bad.yml", []string{`bad_duration.bad.yml:6: alerts.rules[0] "high_cpu": duration "5x" is not a duration`}},
		{"bad_size.bad.yml", []string{`bad_size.bad.yml:3: logging.maxSize: "100XB" is not a size`}},
		{"negative_incident_retention.bad.yml", []string{`negative_incident_retention.bad.yml:4: storage.incident_retention: "-1d" is not a duration`}},
		{"bad_storage_incidents.bad.yml", []string{
			`bad_storage_incidents.bad.yml:3: storage.incidents: "mysql://root:xxxxx@db/vigil" must be a postgres:// URL (or left out for the bbolt store in data_dir)`,
			`bad_storage_incidents.bad.yml:4: storage.lease: must be at least 1s (default 15s)`,
		}},
		{"bad_environment.bad.yml", []string{`bad_environment.bad.yml:2: environment: "prod" is not one of development, staging, production`}},
		{"duplicate_rule.bad.yml", []string{`duplicate_rule.bad.yml:4: alerts.rules[1] "high_cpu": name "high_cpu" is used twice (first at line 3)`}},
		{"bad_promql.bad.yml", []string{`bad_promql.bad.yml:4: alerts.rules[0] "high_cpu": condition "cpu_usage >" is not valid PromQL: 1:12: parse error: unexpected end of input`}},
		{"rule_without_name.bad.yml", []string{`rule_without_name.bad.yml:3: alerts.rules[0]: name is required`}},
		{"bad_log_format.bad.yml", []string{`bad_log_format.bad.yml:2: logging.format: "xml" is not one of json, text`}},
		{"unknown_receiver.bad.yml", []string{`unknown_receiver.bad.yml:7: escalation.levels[0] "support": notify[1] "slack-support" is not a receiver (receivers: log, ops)`}},
		{"two_kinds.bad.yml", []string{`two_kinds.bad.yml:2: receivers[0] "ops": has slack and webhook; a receiver takes exactly one of slack, webhook or log`}},
		{"unknown_role.bad.yml", []string{`unknown_role.bad.yml:3: users[0] "alice": role "superuser" is not a role (roles: admin, developer, viewer)`}},
		{"bad_target.bad.yml", []string{`bad_target.bad.yml:4: collectors.app.targets[0]: "localhost" is not host:port: missing port in address`}},
		{"wrong_type.bad.yml", []string{`wrong_type.bad.yml:1: rule_files: must be a list, not "rules/*.yml"`}},
		{"malformed.bad.yml", []string{`malformed.bad.yml:3: invalid YAML: did not find expected ',' or ']'`}},
		{"bad_label_name.bad.yml", []string{`bad_label_name.bad.yml:7: alerts.rules[0] "high_cpu": labels.team-name: "team-name" is not a valid label name`}},
		{"bad_webhook_url.bad.yml", []string{`bad_webhook_url.bad.yml:4: receivers[0] "ops": webhook.url "ftp://hooks.example/ops" must be an http or https URL`}},
		{"bad_glob.bad.yml", []string{`bad_glob.bad.yml:2: rule_files[0]: "rules/[*.yml" is not a valid glob`}},
		{"negative_rule_limit.bad.yml", []string{`negative_rule_limit.bad.yml:3: alerts.limit: -5 must not be negative (0 means no limit)`}},
		{"bad_link_speed.bad.yml", []string{`bad_link_speed.bad.yml:5: collectors.infrastructure.link_speed_mbps_per_device.eth0: 0 must be more than 0`}},
		{"duplicate_key.bad.yml", []string{`duplicate_key.bad.yml:3: service: key "service" is given twice (first at line 1)`}},
		{"bad_priority.bad.yml", []string{
			`bad_priority.bad.yml:2: escalation.response_times.urgent: "urgent" is not a priority (use critical, high, medium, low)`,
			`bad_priority.bad.yml:3: escalation.priorities.warning: "someday" has no response time`,
		}},
		{"negative_storm_threshold.bad.yml", []string{`negative_storm_threshold.bad.yml:3: escalation.storm_threshold: "-5" must not be negative (0 turns storm folding off)`}},
		{"bad_group_by.bad.yml", []string{
			`bad_group_by.bad.yml:5: escalation.group_by[1]: "pod-name" is not a valid label name`,
			`bad_group_by.bad.yml:6: escalation.group_by[2]: "alertname" is listed twice`,
		}},
		{"group_by_all_mixed.bad.yml", []string{`group_by_all_mixed.bad.yml:2: escalation.group_by[1]: "..." stands alone: it already groups by every label`}},
		{"ingest_resolve_timeout.bad.yml", []string{`ingest_resolve_timeout.bad.yml:3: ingest.resolve_timeout: "0s" must be more than 0`}},
		{"unknown_permission.bad.yml", []string{`unknown_permission.bad.yml:2: roles.ops[1]: "launch_rockets" is not a permission (permissions: acknowledge, backup, deploy, ingest, manage_roles, manage_users, monitor, rollback, view_logs, view_metrics)`}},
		{"metrics_labels_without_app.bad.yml", []string{`metrics_labels_without_app.bad.yml:5: metrics.labels: label the app's series (collectors.app), and there is no collectors.app; put labels of the host or the database under collectors.infrastructure.labels or collectors.database.labels`}},
		{"collector_port_path.bad.yml", []string{
			`collector_port_path.bad.yml:5: collectors.infrastructure.port: 9100 is not vigil's listener port 9090: vigil serves the infrastructure collector's metrics on its own listener (127.0.0.1:9090), at /metrics and /metrics/collectors/infrastructure; leave port out or set it to 9090`,
			`collector_port_path.bad.yml:6: collectors.infrastructure.path: "/node" is not vigil's metrics.path "/metrics": vigil serves the infrastructure collector's metrics at /metrics and /metrics/collectors/infrastructure; leave path out or set it to /metrics`,
			`collector_port_path.bad.yml:9: collectors.database.port: 5432 is not vigil's listener port 9090: vigil serves the database collector's metrics on its own listener (127.0.0.1:9090), at /metrics and /metrics/collectors/database; leave port out or set it to 9090`,
		}},
		{"bad_firewall.bad.yml", []string{
			`bad_firewall.bad.yml:3: firewall.inbound[0].port: "99999" is not a port (1-65535) or a range of ports such as 0-65535`,
			`bad_firewall.bad.yml:8: firewall.inbound[1].source: "10.0.0.0/33" is not a CIDR (an address and a prefix length, such as 10.0.0.0/8)`,
			`bad_firewall.bad.yml:10: firewall.inbound[2].protocol: "gre" is not one of tcp, udp, icmp, all`,
			`bad_firewall.bad.yml:13: firewall.outbound[0].port: "65535-0" is not a range of ports (lo-hi within 0-65535, such as 0-65535)`,
			`bad_firewall.bad.yml:16: firewall.outbound[1]: destination is required (a CIDR such as 10.0.0.0/8)`,
			`bad_firewall.bad.yml:18: firewall.outbound[1].source: outbound rules take destination, not source`,
			`bad_firewall.bad.yml:24: security.groups[0] "app-sg": ingress[0].protocol "TCPX" is not one of tcp, udp, icmp, all`,
			`bad_firewall.bad.yml:27: security.groups[0] "app-sg": egress[0] port is required (a port such as 443, or a range such as 0-65535)`,
		}},
		{"bad_network_policy.bad.yml", []string{
			`bad_network_policy.bad.yml:3: network.policies[0] "App_Policy": name "App_Policy" is not a Kubernetes object name (lower case letters, digits, '-' and '.')`,
			`bad_network_policy.bad.yml:7: network.policies[0] "App_Policy": podSelector.matchLabels.app/x/y: "app/x/y" is not a Kubernetes label key`,
			`bad_network_policy.bad.yml:12: network.policies[0] "App_Policy": ingress[0].from[0].podSelector.matchLabels.app "-bad-" is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`,
			`bad_network_policy.bad.yml:14: network.policies[0] "App_Policy": ingress[0].from[1].ipBlock.cidr "10.0.0.0/40" is not a CIDR (an address and a prefix length, such as 10.0.0.0/8)`,
			`bad_network_policy.bad.yml:16: network.policies[0] "App_Policy": ingress[0].ports[0].protocol "ICMP" is not one of TCP, UDP, SCTP`,
			`bad_network_policy.bad.yml:17: network.policies[0] "App_Policy": ingress[0].ports[0].port 70000 is not a port (1-65535)`,
			`bad_network_policy.bad.yml:20: encryption.at_rest.algorithm: "DES" is not an algorithm vigil knows (AES-128, AES-192 or AES-256, optionally with -GCM, -XTS, -CBC or -CTR)`,
			`bad_network_policy.bad.yml:21: encryption.at_rest.key_rotation: "30x" is not a duration (use a number and a unit: 30s, 5m, 1h, 1d)`,
		}},
		{"bad_analysis.bad.yml", []string{
			`bad_analysis.bad.yml:3: analysis.steps: must not be negative`,
			`bad_analysis.bad.yml:4: analysis.strategy: "big-bang" is not one of canary, blue-green, rolling`,
			`bad_analysis.bad.yml:5: analysis.version_label: "build version" is not a label name`,
			`bad_analysis.bad.yml:6: analysis.latency.quantile: 99 is not a quantile (above 0, below 1)`,
			`bad_analysis.bad.yml:8: analysis.thresholds.error_rate.max_ratio: 0.5 is below 1: the new version would fail for matching its baseline`,
			`bad_analysis.bad.yml:9: analysis.thresholds.latancy: "latancy" is not a signal (signals: error_rate, latency, cpu_usage, memory_usage)`,
		}},
		{"bad_backup.bad.yml", []string{
			`bad_backup.bad.yml:2: backup.schedule: "0 25 * * *" is not a cron schedule: hour "25": 25 is outside 0-23`,
			`bad_backup.bad.yml:3: backup.retention: "30x" is not a duration (use a number and a unit: 30s, 5m, 1h, 1d)`,
			`bad_backup.bad.yml:3: backup.retention: must be more than 0`,
			`bad_backup.bad.yml:5: disaster_recovery.rpo: is required and must be more than 0 (how much data may be lost, e.g. 1h)`,
			`bad_backup.bad.yml:8: disaster_recovery.backup.schedule: "every day" is not a cron schedule: has 2 fields; want 5 (minute hour day-of-month month day-of-week)`,
			`bad_backup.bad.yml:16: encryption.in_transit.algorithm: "SSL 3" is not a TLS version vigil knows (use TLS 1.2 or TLS 1.3)`,
		}},
		{"output_without_file.bad.yml", []string{`output_without_file.bad.yml:2: logging.output: "both" needs logging.file`}},
		{"bad_log_entry.bad.yml", []string{
			`bad_log_entry.bad.yml:5: collectors.logs[0] "app": level "verbose" is not one of debug, info, warn, error, fatal`,
			`bad_log_entry.bad.yml:6: collectors.logs[0] "app": format "xml" is not one of json, text`,
			`bad_log_entry.bad.yml:7: collectors.logs[0] "app": output "both" needs file`,
		}},
		{"wrong_scalar.bad.yml", []string{
			`wrong_scalar.bad.yml:2: logging.maxFiles: "ten" is not an integer`,
			`wrong_scalar.bad.yml:5: collectors.self.enabled: "sometimes" is not true or false`,
		}},
		{"missing_secret_file.bad.yml", []string{`missing_secret_file.bad.yml:4: receivers[0] "slack-support": slack.token_file: cannot read the secret: open `}},
		{"bad_query.bad.yml", []string{
			`bad_query.bad.yml:2: query.max_samples: 0 must be more than 0`,
			`bad_query.bad.yml:3: query.timeout: "0s" must be more than 0`,
			`bad_query.bad.yml:4: query.max_concurrency: -1 must be more than 0`,
			`bad_query.bad.yml:6: query.max_form_size: "32KiB" must be at least query.max_length (64KiB)`,
		}},
		{"dev_zero_secret.bad.yml", []string{
			`dev_zero_secret.bad.yml:2: collectors.database.dsn_file: cannot read the secret: /dev/zero is not a regular file (it is a character device)`,
			`dev_zero_secret.bad.yml:5: receivers[0] "ops": webhook.secret_file: cannot read the secret: /dev/zero is not a regular file (it is a character device)`,
			`dev_zero_secret.bad.yml:8: receivers[1] "slack-support": slack.token_file: cannot read the secret: /dev/zero is not a regular file (it is a character device)`,
		}},
		{"remote_write.bad.yml", []string{
			`remote_write.bad.yml:5: global.external_labels.9replica: "9replica" is not a valid label name`,
			`remote_write.bad.yml:8: remote_write[0].remote_timeot: unknown key "remote_timeot" (see Prometheus's remote_write keys)`,
			"remote_write.bad.yml:10: remote_write[0].queue_config.max_shards: cannot unmarshal !!str `many` into int",
			`remote_write.bad.yml:11: remote_write[1] "backend": at most one of basic_auth, oauth2 & authorization must be configured`,
			`remote_write.bad.yml:18: remote_write[2]: url for remote_write is empty`,
			`remote_write.bad.yml:19: remote_write[3] "backend": invalid protobuf_message value: unknown type for remote write protobuf message io.prometheus.write.v3.Request, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request`,
			`remote_write.bad.yml:20: remote_write[3] "backend": name "backend" is already the name of remote_write[1]`,
		}},
		{"forward.bad.yml", []string{
			`forward.bad.yml:5: alerts.forward.urls[0]: "ftp://gateway:9090" must be an http or https URL`,
			`forward.bad.yml:6: alerts.forward.urls[1]: "http://user:xxxxx@gateway:9090" carries a user or password; use token or token_file`,
			`forward.bad.yml:8: alerts.forward.urls[3]: "http://gateway-a:9090/" is listed twice (first as urls[2])`,
			`forward.bad.yml:9: alerts.forward.urls[4]: "http://gateway-b:9090?x=1" must not have a query or fragment (vigil posts to <url>/api/v2/alerts)`,
			`forward.bad.yml:11: alerts.forward.token_file: token and token_file are both set; give one`,
			`forward.bad.yml:11: alerts.forward.token_file: cannot read the token: open testdata/does-not-exist.token: no such file or directory`,
			`forward.bad.yml:12: alerts.forward.timeout: "-5s" is not a duration`,
			`forward.bad.yml:13: alerts.forward.queue_capacity: -1 must not be negative`,
			`forward.bad.yml:14: alerts.forward.tls_config: cert_file and key_file go together; give both or neither`,
			`forward.bad.yml:15: alerts.forward.tls_config.cert_file: cannot read the file: stat testdata/client.crt: no such file or directory`,
			`forward.bad.yml:17: storage.incidents: "mysql://vigil@db/incidents" must be a postgres:// URL (or left out for the bbolt store in data_dir)`,
		}},
		{"forward_empty.bad.yml", []string{
			`forward_empty.bad.yml:4: alerts.forward.urls: lists no gateway; give at least one URL such as http://vigil-gateway:9090`,
			`forward_empty.bad.yml:5: alerts.forward.notify_locally: "maybe" is not true or false`,
			`forward_empty.bad.yml:6: alerts.forward.retries: unknown key "retries"`,
		}},
		{"drwatch.bad.yml", []string{
			`drwatch.bad.yml:2: backup.schedule: "0 0 31 2 *" never runs twice`,
			`drwatch.bad.yml:5: backup.grace: "-1m" is not a duration`,
			`drwatch.bad.yml:6: backup.metric: "backup-last-ok" is not a metric name`,
			`drwatch.bad.yml:10: disaster_recovery.rpo_warning: 1.5 must be a fraction of the rpo between 0 and 1 (e.g. 0.5)`,
			`drwatch.bad.yml:11: disaster_recovery.rto_escalation: 1 must be a fraction of the rto between 0 and 1 (e.g. 0.5)`,
		}},
		{"many.bad.yml", []string{
			`many.bad.yml:2: environment: "qa" is not one of development, staging, production`,
			`many.bad.yml:4: logging.level: "loud" is not one of debug, info, warn, error`,
			`many.bad.yml:11: alerts.rules[0] "high_cpu": sevrity: unknown key "sevrity" (did you mean "severity"?)`,
			`many.bad.yml:12: alerts.rules[1] "9lives": name "9lives" is not a valid rule name`,
			`many.bad.yml:12: alerts.rules[1] "9lives": severity is required`,
			`many.bad.yml:13: alerts.rules[1] "9lives": condition "sum(" is not valid PromQL: 1:5: parse error: unclosed left parenthesis`,
			`many.bad.yml:14: alerts.rules[1] "9lives": duration "soon" is not a duration`,
			`many.bad.yml:16: receivers[0] "ops": needs one of slack, webhook or log`,
			`many.bad.yml:19: escalation.levels[0] "support": notify[0] "nobody" is not a receiver (receivers: log, ops)`,
		}},
	}
	files, err := filepath.Glob("testdata/*.bad.yml")
	require.NoError(t, err)
	require.Len(t, cases, len(files), "every testdata/*.bad.yml has a case")
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tc.file))
			require.Error(t, err)
			require.Nil(t, cfg)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, len(tc.want), "got:\n%s", err)
			for i, want := range tc.want {
				require.Contains(t, lines[i], want)
			}
		})
	}
}

func TestErrorsUnwrap(t *testing.T) {
	_, err := Load("testdata/missing_secret_file.bad.yml")
	require.ErrorIs(t, err, fs.ErrNotExist)

	_, err = Load("testdata/no-such-file.yml")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestSeedGood(t *testing.T) {
	for _, v := range []string{"DB_URL", "SLACK_BOT_TOKEN", "WEBHOOK_SECRET", "ROLLBACK_SECRET"} {
		t.Setenv(v, "value-of-"+v)
	}
	cfg, err := Load("testdata/seed.good.yml")
	require.NoError(t, err)
	// Only carol has a token, and a viewer may not acknowledge.
	require.Equal(t, []string{"testdata/seed.good.yml:4: environment production: no user with a token may acknowledge incidents " +
		"(acknowledge, or deploy or rollback, which imply it), so incidents escalate unanswered unless a user added at runtime may"}, cfg.Warnings)

	require.Equal(t, "checkout", cfg.Service)
	require.Equal(t, EnvProduction, cfg.Environment)
	require.Equal(t, ":9090", cfg.ListenAddress())
	require.Equal(t, 15*time.Second, cfg.Interval())
	require.Equal(t, Size(100<<20), cfg.Logging.MaxSize)
	require.Equal(t, []string{"localhost:8080"}, cfg.Collectors.App.Targets)
	require.Equal(t, "value-of-DB_URL", cfg.Collectors.Database.DSN.Value())
	require.Equal(t, "database", cfg.Collectors.Database.Labels["app"])
	require.Len(t, cfg.Collectors.Logs, 1)
	require.Equal(t, "http://loki:3100/loki/api/v1/push", cfg.Collectors.Loki.URL)
	require.Equal(t, []string{filepath.Join("testdata", "rules", "*.yml")}, cfg.RuleFiles)

	rule := cfg.Alerts.Rules[0]
	require.Equal(t, RuleConfig{
		Name: "high_cpu", Condition: "cpu_usage > 80", Duration: Duration(5 * time.Minute), Severity: "critical",
		Labels: map[string]string{"app": "app", "environment": "production"},
	}, rule)
	require.Equal(t, 18, cfg.Line("alerts.rules[0]"))

	// The file's priorities are added to the defaults.
	require.Equal(t, "medium", cfg.Escalation.Priorities["warning"])
	require.Equal(t, "low", cfg.Escalation.Priorities["info"])
	require.Len(t, cfg.Escalation.Levels, 3)
	require.Equal(t, "value-of-SLACK_BOT_TOKEN", cfg.Receivers[0].Slack.Token.Value())
	require.Equal(t, "value-of-WEBHOOK_SECRET", cfg.Receivers[3].Webhook.Secret.Value())
	require.Equal(t, "value-of-ROLLBACK_SECRET", cfg.Rollback.Webhook.Secret.Value())
	require.Equal(t, Duration(30*time.Minute), cfg.Rollback.Window)

	require.Equal(t, "alice", cfg.Users[0].Name, "username is an alias of name")
	require.Equal(t, []string{"developer", "oncall"}, cfg.Users[1].AllRoles())
	require.Equal(t, []string{"admin", "developer", "oncall", "viewer"}, cfg.RoleNames())
	require.Equal(t, []string{"acknowledge", "monitor"}, cfg.PermissionsOf("oncall"))
	require.Equal(t, []string{"monitor", "view_logs", "view_metrics"}, cfg.PermissionsOf("viewer"))
	require.Equal(t, []string{"acknowledge", "deploy", "monitor", "rollback", "view_logs", "view_metrics"}, cfg.PermissionsOf("developer"))
	require.Equal(t, "Record deploys", cfg.Permissions["deploy"].Description)
	require.Empty(t, cfg.PermissionsOf("nobody"))
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("VIGIL_TEST_SERVICE", "checkout")
	t.Setenv("VIGIL_TEST_EMPTY", "")
	const doc = `service: ${VIGIL_TEST_SERVICE}
environment: ${VIGIL_TEST_ENV:-staging}
data_dir: ${VIGIL_TEST_EMPTY:-/var/lib/vigil}
server:
  listen: "${VIGIL_TEST_HOST:-127.0.0.1}:${VIGIL_TEST_PORT:-9191}"
  external_url: "https://$${NOT_EXPANDED}/x"
receivers:
  - name: ops
    webhook: {url: "https://hooks.example/ops", secret: "${VIGIL_TEST_UNSET}"}
`
	cfg, err := Parse([]byte(doc), "vigil.yaml")
	require.NoError(t, err)
	require.Equal(t, "checkout", cfg.Service)
	require.Equal(t, EnvStaging, cfg.Environment)
	require.Equal(t, "/var/lib/vigil", cfg.DataDir, "an empty variable takes the default")
	require.Equal(t, "127.0.0.1:9191", cfg.ListenAddress())
	require.Equal(t, "https://${NOT_EXPANDED}/x", cfg.Server.ExternalURL)
	require.Empty(t, cfg.Receivers[0].Webhook.Secret.Value())
	require.Equal(t, []string{
		`vigil.yaml:9: receivers[0] "ops": webhook.secret: ${VIGIL_TEST_UNSET} is not set; using an empty string`,
	}, cfg.Warnings)
}

func TestEnvExpansionErrors(t *testing.T) {
	_, err := Parse([]byte("data_dir: ${1BAD}\n"), "vigil.yaml")
	require.EqualError(t, err, `vigil.yaml:1: data_dir: "${1BAD}" is not a valid variable reference (use ${NAME} or ${NAME:-default})`)
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "a", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		in, want   string
		unset, bad []string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "a"},
		{in: "x${A}y${A}", want: "xaya"},
		{in: "${B:-dflt}", want: "dflt"},
		{in: "${EMPTY:-dflt}", want: "dflt"},
		{in: "${EMPTY}", want: ""},
		{in: "${B}", want: "", unset: []string{"B"}},
		{in: "$${A}", want: "${A}"},
		{in: "$A", want: "$A"},
		{in: "${A", want: "${A", bad: []string{"${A"}},
		{in: "${A-B}", want: "", bad: []string{"${A-B}"}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, unset, bad := expandEnv(tc.in, lookup)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.unset, unset)
			require.Equal(t, tc.bad, bad)
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "secrets"), 0o700))
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	write("secrets/db", "postgres://vigil:hunter2@127.0.0.1/app\n")
	write("secrets/slack", "xoxb-slack-token\r\n")
	write("secrets/hook", "whsec-hook")
	abs := filepath.Join(dir, "secrets", "rollback")
	write("secrets/rollback", "rollback-secret\n")
	write("vigil.yaml", `
collectors:
  database: {dsn_file: secrets/db}
  app: {targets: ["127.0.0.1:8080"], file_sd: ["sd/*.json", "/etc/vigil/sd.json"]}
rule_files: ["rules/*.yml"]
receivers:
  - {name: chat, slack: {token_file: secrets/slack, channel: "#ops"}}
  - {name: hook, webhook: {url: "http://127.0.0.1:1/x", secret_file: ./secrets/hook}}
rollback:
  webhook: {url: "http://127.0.0.1:1/rollback", secret_file: `+abs+`}
`)
	cfg, err := Load(filepath.Join(dir, "vigil.yaml"))
	require.NoError(t, err)
	require.Equal(t, "postgres://vigil:hunter2@127.0.0.1/app", cfg.Collectors.Database.DSN.Value())
	require.Equal(t, filepath.Join(dir, "secrets", "db"), cfg.Collectors.Database.DSNFile)
	require.Equal(t, "xoxb-slack-token", cfg.Receivers[0].Slack.Token.Value())
	require.Equal(t, "whsec-hook", cfg.Receivers[1].Webhook.Secret.Value())
	require.Equal(t, "rollback-secret", cfg.Rollback.Webhook.Secret.Value())
	require.Equal(t, []string{filepath.Join(dir, "rules", "*.yml")}, cfg.RuleFiles)
	require.Equal(t, []string{filepath.Join(dir, "sd", "*.json"), "/etc/vigil/sd.json"}, cfg.Collectors.App.FileSD)
	require.Equal(t, "./data", cfg.DataDir, "data_dir stays relative to the working directory")

	// No secret shows up in the summary or in formatted values.
	out := cfg.Summary() + fmt.Sprintf("%v %+v %v %v", cfg.Collectors.Database, cfg.Receivers, cfg.Rollback.Webhook, *cfg.Rollback.Webhook)
	for _, secret := range []string{"hunter2", "xoxb-slack-token", "whsec-hook", "rollback-secret"} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "<secret>")
}

func TestSecretAndFileBoth(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dsn"), []byte("x"), 0o600))
	path := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(path, []byte("collectors:\n  database:\n    dsn: postgres://x\n    dsn_file: dsn\n"), 0o600))
	_, err := Load(path)
	require.EqualError(t, err, path+":4: collectors.database.dsn_file: dsn and dsn_file are both set; give one")
}

func TestSecretFormatting(t *testing.T) {
	s := Secret("hunter2")
	require.Equal(t, "<secret>", s.String())
	require.Equal(t, "<secret>", fmt.Sprintf("%v", s))
	require.Equal(t, "<secret>", fmt.Sprintf("%s", s))
	require.NotContains(t, fmt.Sprintf("%#v", WebhookConfig{Secret: s}), "hunter2")
	b, err := s.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `"<secret>"`, string(b))
	require.Equal(t, "hunter2", s.Value())
	require.Empty(t, Secret("").String())
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "5m", want: 5 * time.Minute},
		{in: "1s", want: time.Second},
		{in: "1d", want: 24 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "5x", wantErr: true},
		{in: "300", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr {
				require.ErrorContains(t, err, "is not a duration")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "100MB", want: 100 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "512k", want: 512 << 10},
		{in: "1GB", want: 1 << 30},
		{in: "10", want: 10 << 20},
		{in: "0", want: 0},
		{in: "100XB", wantErr: true},
		{in: "-5", wantErr: true},
		{in: "MB", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.wantErr {
				require.ErrorContains(t, err, "is not a size")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDefaultsApplied(t *testing.T) {
	cfg, err := Parse([]byte("collectors:\n  app: {targets: [\"127.0.0.1:8080\"]}\n  database:\n  infrastructure: {interval: 30s}\n  logs: [{name: app, paths: [/var/log/app.log]}]\n"), "vigil.yaml")
	require.NoError(t, err)
	require.Equal(t, "app", cfg.Service)
	require.Equal(t, EnvDevelopment, cfg.Environment)
	require.Equal(t, "./data", cfg.DataDir)
	require.Equal(t, ":9090", cfg.ListenAddress())
	require.Equal(t, 15*time.Second, cfg.Interval())
	require.Equal(t, "/metrics", cfg.Metrics.Path)
	require.Equal(t, Duration(24*time.Hour), cfg.Storage.Retention)
	require.Equal(t, Duration(90*24*time.Hour), cfg.Storage.IncidentRetention)
	require.Equal(t, LoggingConfig{Level: "info", Format: "json", Output: "stdout", MaxSize: 100 << 20, MaxFiles: 10}, cfg.Logging)
	require.Equal(t, map[string]Duration{
		"critical": Duration(time.Hour), "high": Duration(4 * time.Hour),
		"medium": Duration(24 * time.Hour), "low": Duration(48 * time.Hour),
	}, cfg.Escalation.ResponseTimes)
	require.Equal(t, map[string]string{
		"critical": "critical", "high": "high", "warning": "medium", "medium": "medium", "info": "low", "low": "low",
	}, cfg.Escalation.Priorities)
	require.Equal(t, 3, cfg.Escalation.RepeatLimit)
	require.Equal(t, []string{"alertname", "service", "environment", "app"}, cfg.Escalation.GroupBy)
	require.Equal(t, Duration(30*time.Minute), cfg.Rollback.Window)
	require.Equal(t, Duration(time.Hour), cfg.Rollback.Cooldown)

	app := cfg.Collectors.App
	require.Equal(t, map[string]string{"app": "app"}, app.Labels)
	require.Equal(t, "/metrics", app.Path)
	require.Equal(t, Duration(15*time.Second), app.Interval)
	require.Equal(t, Duration(10*time.Second), app.Timeout)
	require.Equal(t, "http", app.Scheme)
	require.NotNil(t, cfg.Collectors.Database, "an empty key turns the collector on")
	require.Equal(t, "database", cfg.Collectors.Database.Labels["app"])
	require.Equal(t, "infrastructure", cfg.Collectors.Infrastructure.Labels["app"])
	require.Equal(t, Duration(30*time.Second), cfg.Collectors.Infrastructure.Interval)
	require.Equal(t, Size(100<<20), cfg.Collectors.Logs[0].MaxSize)
	require.True(t, cfg.SelfEnabled())
	require.Nil(t, cfg.Collectors.Loki)

	require.Equal(t, []string{"admin", "developer", "viewer"}, cfg.RoleNames())
	require.Len(t, cfg.PermissionsOf("admin"), 10)
	require.Equal(t, []string{"acknowledge", "deploy", "monitor", "rollback", "view_logs", "view_metrics"}, cfg.PermissionsOf("developer"))
	require.Equal(t, []string{"monitor", "view_logs", "view_metrics"}, cfg.PermissionsOf("viewer"))
	require.Len(t, cfg.Permissions.Names(), 10)
}

func TestGroupBy(t *testing.T) {
	// A list in the file replaces the default; it is not appended to it.
	cfg, err := Parse([]byte("escalation:\n  group_by: [alertname, instance]\n"), "vigil.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{"alertname", "instance"}, cfg.Escalation.GroupBy)
	cfg, err = Parse([]byte("escalation:\n  group_by: [\"...\"]\n"), "vigil.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{GroupByAll}, cfg.Escalation.GroupBy)
	_, err = Parse([]byte("escalation:\n  group_by: []\n"), "vigil.yaml")
	require.ErrorContains(t, err, `vigil.yaml:2: escalation.group_by: must name at least one label ("..." alone keys an incident by every label)`)
}

func TestIncidentRetention(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 90 * 24 * time.Hour},
		{"storage: {retention: 7d}\n", 90 * 24 * time.Hour},
		{"storage: {incident_retention: 30d}\n", 30 * 24 * time.Hour},
		{"storage: {incident_retention: 12h}\n", 12 * time.Hour},
		{"storage: {incident_retention: 0}\n", 0},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "vigil.yaml")
			require.NoError(t, err)
			require.Equal(t, Duration(tc.want), cfg.Storage.IncidentRetention)
		})
	}

	// A negative value cannot be written as a duration, but a config built
	// in code is validated the same way.
	cfg, err := Parse([]byte("service: checkout\nstorage:\n  incident_retention: 1d\n"), "vigil.yaml")
	require.NoError(t, err)
	cfg.Storage.IncidentRetention = Duration(-time.Hour)
	r := &reporter{file: "vigil.yaml", positions: cfg.positions, names: cfg.names}
	cfg.validate(r)
	require.EqualError(t, r.errs, "vigil.yaml:3: storage.incident_retention: must not be negative (0 keeps incidents for ever)")
}

func TestSelfDisabled(t *testing.T) {
	cfg, err := Parse([]byte("collectors:\n  self: {enabled: false}\n"), "vigil.yaml")
	require.NoError(t, err)
	require.False(t, cfg.SelfEnabled())
}

func TestEmptyFile(t *testing.T) {
	cfg, err := Parse(nil, "empty.yml")
	require.NoError(t, err)
	require.Equal(t, "app", cfg.Service)
}

func TestAccessShapes(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		// want maps a role to its permissions.
		want map[string][]string
	}{
		{
			name: "role mapping, permission descriptions",
			doc: `roles:
  ops: {description: Operators, permissions: [deploy, monitor]}
permissions: {deploy: Record deploys, monitor: See alerts}`,
			want: map[string][]string{"ops": {"deploy", "monitor"}},
		},
		{
			name: "role lists, permission role lists",
			doc: `roles:
  ops: [deploy]
  audit: []
permissions:
  deploy: [ops]
  monitor: [ops, audit]`,
			want: map[string][]string{"ops": {"deploy", "monitor"}, "audit": {"monitor"}},
		},
		{
			name: "permission mappings",
			doc: `roles: {ops: [deploy]}
permissions:
  deploy: {description: Record deploys}
  monitor: {description: See alerts, roles: [ops]}`,
			want: map[string][]string{"ops": {"deploy", "monitor"}},
		},
		{
			name: "plain permission list and role list",
			doc: `roles:
  - {name: ops, permissions: [deploy, monitor]}
  - {name: audit, permissions: [monitor]}
permissions: [deploy, monitor, {name: acknowledge, description: Acknowledge}]`,
			want: map[string][]string{"ops": {"deploy", "monitor"}, "audit": {"monitor"}},
		},
		{
			name: "roles only by permissions",
			doc: `roles: {}
permissions: {deploy: [ops]}
users: [{name: al, role: ops}]`,
			want: map[string][]string{"ops": {"deploy"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc), "vigil.yaml")
			require.NoError(t, err)
			for role, perms := range tc.want {
				require.Equal(t, perms, cfg.PermissionsOf(role), role)
			}
		})
	}
}

func TestAccessErrors(t *testing.T) {
	cases := []struct {
		doc, want string
	}{
		{"users: [{email: a@example.com}]", `vigil.yaml:1: users[0]: name is required`},
		{"users: [{name: a, username: b}]", `vigil.yaml:1: users[0] "a": username: name and username are the same key; give one`},
		{"users: [{name: a}, {name: a}]", `vigil.yaml:1: users[1] "a": name "a" is used twice (first at line 1)`},
		{"users: [{name: a, roles: [admin, root]}]", `vigil.yaml:1: users[0] "a": roles[1] "root" is not a role (roles: admin, developer, viewer)`},
		{"roles: [{permissions: [deploy]}]", `vigil.yaml:1: roles[0]: name is required`},
		{"permissions: [deploy, deploy]", `vigil.yaml:1: permissions[1]: "deploy" is used twice`},
		{"roles: {ops: 3}", `vigil.yaml:1: roles.ops: must be a mapping, not "3"`},
		{"roles: {ops: [deploy, manage_user]}", `vigil.yaml:1: roles.ops[1]: "manage_user" is not a permission (did you mean "manage_users"?)`},
		{"users: [{name: a, role: viewer, permissions: [deploi]}]", `vigil.yaml:1: users[0] "a": permissions[0] "deploi" is not a permission (did you mean "deploy"?)`},
		{"permissions: {rollbak: {description: Roll back}}", `vigil.yaml:1: permissions.rollbak: "rollbak" is not a permission (did you mean "rollback"?)`},
		{"permissions: {deploy: {resources: [app, '']}}", `vigil.yaml:1: permissions.deploy.resources[1]: an app name is required`},
	}
	for _, tc := range cases {
		t.Run(tc.doc, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "vigil.yaml")
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	const doc = `
x-rule: &rule
  duration: 5m
  severity: critical
  labels: &labels {app: app}
alerts:
  rules:
    - <<: *rule
      name: high_cpu
      condition: cpu_usage > 80
    - <<: *rule
      name: high_memory
      condition: memory_usage > 90
      severity: warning
collectors:
  app: {targets: ["127.0.0.1:8080"], labels: *labels}
`
	// x-rule is not a vigil key: anchors must live under known keys, so this
	// fails, and the same document without it must load.
	_, err := Parse([]byte(doc), "vigil.yaml")
	require.EqualError(t, err, `vigil.yaml:2: x-rule: unknown key "x-rule"`)

	const good = `
alerts:
  rules:
    - &rule
      name: high_cpu
      condition: cpu_usage > 80
      duration: 5m
      severity: critical
      labels: &labels {app: app}
    - <<: *rule
      name: high_memory
      condition: memory_usage > 90
      severity: warning
collectors:
  app: {targets: ["127.0.0.1:8080"], labels: *labels}
`
	cfg, err := Parse([]byte(good), "vigil.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Alerts.Rules, 2)
	r := cfg.Alerts.Rules[1]
	require.Equal(t, "high_memory", r.Name)
	require.Equal(t, "memory_usage > 90", r.Condition)
	require.Equal(t, "warning", r.Severity, "explicit keys win over merged ones")
	require.Equal(t, Duration(5*time.Minute), r.Duration)
	require.Equal(t, map[string]string{"app": "app"}, r.Labels)
	require.Equal(t, map[string]string{"app": "app"}, cfg.Collectors.App.Labels)
}

func TestLine(t *testing.T) {
	cfg, err := Load("testdata/seed.good.yml")
	require.NoError(t, err)
	require.Equal(t, 3, cfg.Line("service"))
	require.Equal(t, 10, cfg.Line("collectors.app.targets"))
	require.Equal(t, 18, cfg.Line("alerts.rules[0].duration"))
	require.Equal(t, 0, cfg.Line("no.such.key"))
}

func TestDefault(t *testing.T) {
	cfg := Default()
	require.Empty(t, cfg.File)
	require.Empty(t, cfg.Warnings)
	require.Equal(t, EnvDevelopment, cfg.Environment)
	require.Equal(t, "./data", cfg.DataDir)
	require.Equal(t, "127.0.0.1:9090", cfg.ListenAddress(), "authentication is off: loopback only")
	require.True(t, cfg.SelfEnabled())
	require.Nil(t, cfg.Collectors.App)
	require.NotNil(t, cfg.Collectors.Infrastructure)
	require.Equal(t, []string{"log"}, cfg.ReceiverNames())
	require.Len(t, cfg.Escalation.Levels, 3)
	for i, name := range []string{"support", "development", "architecture"} {
		require.Equal(t, LevelConfig{Name: name, Notify: []string{"log"}}, cfg.Escalation.Levels[i])
	}

	type rule struct {
		name, cond, app, severity string
		dur                       time.Duration
	}
	want := []rule{
		// The seed's values (TestDefaultRulesAreTheSeeds compares every key).
		{"high_cpu", "cpu_usage > 80", "app", "critical", 5 * time.Minute},
		{"high_memory", "memory_usage > 80", "app", "critical", 5 * time.Minute},
		{"high_error_rate", "error_rate > 1", "app", "critical", 5 * time.Minute},
		{"instance_down", "up == 0", "infrastructure", "critical", time.Minute},
		{"high_disk_usage", "disk_usage > 80", "infrastructure", "warning", 5 * time.Minute},
		{"high_network_usage", "network_usage > 80", "infrastructure", "warning", 5 * time.Minute},
		{"database_down", "up == 0", "database", "critical", time.Minute},
		{"high_connections", "connections > 100", "database", "warning", 5 * time.Minute},
		{"slow_queries", "query_duration > 1s", "database", "warning", 5 * time.Minute},
	}
	// vigil's own rules, a group apart.
	wantOwn := []rule{
		{"app_down", "up == 0", "app", "critical", time.Minute},
		{"infra_high_cpu", "cpu_usage > 90", "infrastructure", "warning", 10 * time.Minute},
		{"infra_high_memory", "memory_usage > 90", "infrastructure", "warning", 10 * time.Minute},
	}
	for i, w := range wantOwn {
		r := cfg.OwnRules[i]
		require.Equal(t, w, rule{r.Name, r.Condition, r.Labels["app"], r.Severity, time.Duration(r.Duration)})
	}
	rules := DefaultRules()
	require.Len(t, rules, len(want))
	for i, w := range want {
		r := rules[i]
		require.Equal(t, w, rule{r.Name, r.Condition, r.Labels["app"], r.Severity, time.Duration(r.Duration)})
		require.NotEmpty(t, r.Summary, r.Name)
		require.NotEmpty(t, r.Description, r.Name)
	}

	// Each call returns its own copy.
	rules[0].Name = "changed"
	require.Equal(t, "high_cpu", DefaultRules()[0].Name)
}

func TestDefaultYAMLIsValid(t *testing.T) {
	_, err := parse(defaultYAML, "default.yml", func(string) (string, bool) { return "", false })
	require.NoError(t, err)
}

func TestSummary(t *testing.T) {
	out := Default().Summary()
	for _, want := range []string{
		"service:     app",
		"environment: development",
		"listen:      127.0.0.1:9090",
		"data_dir:    ./data",
		"rules:       9 rules, 0 rule files, 4 of vigil's own rules",
		"collectors:  self, infrastructure (0 targets)",
		"receivers:   log (log)",
		"escalation:  support -> log; development -> log; architecture -> log",
		"access:      0 users, 3 roles, 10 permissions",
	} {
		require.Contains(t, out, want)
	}
}

func TestExampleConfig(t *testing.T) {
	for _, v := range []string{"DB_URL", "SLACK_BOT_TOKEN", "WEBHOOK_SECRET", "ROLLBACK_SECRET", "SLACK_SIGNING_SECRET"} {
		unsetEnv(t, v)
	}
	cfg, err := Load("../deploy/examples/vigil.yaml")
	require.NoError(t, err)
	// Only the four placeholders warn, once per use.
	require.Len(t, cfg.Warnings, 6)
	for _, w := range cfg.Warnings {
		require.Regexp(t, `^\.\./deploy/examples/vigil\.yaml:\d+: .*\$\{(DB_URL|SLACK_BOT_TOKEN|WEBHOOK_SECRET|ROLLBACK_SECRET)\} is not set`, w)
	}

	// Every collector and receiver kind is in the example.
	c := cfg.Collectors
	require.NotNil(t, c.App)
	require.NotNil(t, c.Infrastructure)
	require.NotNil(t, c.Database)
	require.NotEmpty(t, c.Logs)
	require.NotNil(t, c.Loki)
	require.True(t, cfg.SelfEnabled())
	kinds := map[string]bool{}
	for _, r := range cfg.Receivers {
		kinds[r.Kind()] = true
	}
	require.Equal(t, map[string]bool{"slack": true, "webhook": true, "log": true}, kinds)
	require.NotNil(t, cfg.Rollback.Webhook)
	require.NotEmpty(t, cfg.Users)

	// rule_files finds the seed's three rule files; none of their rules
	// repeats a name of alerts.rules.
	require.Equal(t, []string{filepath.Join("..", "deploy", "examples", "rules", "*.yml")}, cfg.RuleFiles)
	files, err := filepath.Glob(cfg.RuleFiles[0])
	require.NoError(t, err)
	require.Len(t, files, 4, "the seed's three rule files and vigil's own")
	names := map[string]bool{}
	for _, r := range cfg.Alerts.Rules {
		names[r.Name] = true
	}
	total := 0
	for _, f := range files {
		rf, err := Load(f)
		require.NoError(t, err, "the seed rule files are also valid vigil configs")
		for _, r := range rf.Alerts.Rules {
			require.False(t, names[r.Name], "rule %s is defined twice", r.Name)
			names[r.Name] = true
			total++
		}
	}
	require.Equal(t, len(DefaultRules())+len(BuiltinOwnRules()), total)
}

// unsetEnv unsets a variable for the test and restores it afterwards.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	require.NoError(t, os.Unsetenv(name))
}

func TestErrorFormat(t *testing.T) {
	es := Errors{
		{File: "vigil.yaml", Line: 14, Path: `alerts.rules[2] "high_cpu"`, Msg: `duration "5x" is not a duration`},
		{File: "vigil.yaml", Msg: "invalid YAML: no line"},
	}
	require.Equal(t, "vigil.yaml:14: alerts.rules[2] \"high_cpu\": duration \"5x\" is not a duration\nvigil.yaml: invalid YAML: no line", es.Error())
	var e *Error
	require.True(t, errors.As(error(es), &e))
}

func BenchmarkLoadExample(b *testing.B) {
	data, err := os.ReadFile("../deploy/examples/vigil.yaml")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "../deploy/examples/vigil.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEvaluationInterval(t *testing.T) {
	for _, tc := range []struct {
		name           string
		scrape, evalIv time.Duration
		want           time.Duration
	}{
		{"default one second", 15 * time.Second, 0, time.Second},
		{"explicit", 15 * time.Second, 5 * time.Second, 5 * time.Second},
		{"never longer than the scrape interval", 2 * time.Second, time.Minute, 2 * time.Second},
		{"scrape faster than a second", 500 * time.Millisecond, 0, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Metrics: MetricsConfig{Interval: Duration(tc.scrape)}, Alerts: AlertsConfig{EvaluationInterval: Duration(tc.evalIv)}}
			require.Equal(t, tc.want, c.EvaluationInterval())
		})
	}
}

// TestSeedAccessBlocks loads the seed's users, roles and permissions blocks
// as the seed writes them, straight from the seed document (or its copy in
// internal/testutil/testdata when ../shared is absent, as in a clone), and
// checks that each user gets what its role's name promises.
func TestSeedAccessBlocks(t *testing.T) {
	doc := testutil.SeedBlock(t, "# User management configuration") +
		testutil.SeedBlock(t, "# Role management configuration") +
		testutil.SeedBlock(t, "# Permission management configuration")
	cfg, err := Parse([]byte(doc), "seed.yaml")
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings)
	require.Equal(t, []string{"deploy", "rollback", "monitor"}, cfg.Users[0].Permissions)
	require.Equal(t, []string{"app", "infrastructure", "database"}, cfg.Permissions[PermRollback].Resources)
	want := map[string][]string{
		"admin":     BuiltinPermissions,
		"developer": {PermAcknowledge, PermDeploy, PermMonitor, PermViewLogs, PermViewMetrics},
		"viewer":    {PermMonitor, PermViewLogs, PermViewMetrics},
	}
	for _, u := range cfg.Users {
		g := cfg.UserGrants(u)
		require.Equal(t, want[u.Name], g.Names(), u.Name)
		require.Empty(t, g.Apps, "%s: the seed's resources name every app, so its grants are whole", u.Name)
	}
}

func TestGrantsResources(t *testing.T) {
	cfg, err := Parse([]byte(`users:
  - {name: appdev, role: ops}
roles:
  ops: [rollback, monitor]
permissions:
  rollback: {resources: [app]}
  monitor: {resources: [app, database]}
`), "vigil.yaml")
	require.NoError(t, err)
	g := cfg.UserGrants(cfg.Users[0])
	require.Equal(t, []string{"app", "database"}, cfg.Apps())
	require.True(t, g.Whole[PermMonitor], "monitor names every app there is")
	require.Equal(t, []string{"app"}, g.Apps[PermRollback])
	require.Equal(t, []string{"app"}, g.Apps[PermAcknowledge], "acknowledge comes with rollback's apps")
	require.True(t, g.CanOn(PermAcknowledge, "app"))
	require.False(t, g.CanOn(PermAcknowledge, "database"))
	require.False(t, g.CanOn(PermRollback, ""), "what has no app needs the whole permission")
	require.True(t, g.Has(PermRollback))
	require.Equal(t, "acknowledge (only app), monitor, rollback (only app), view_logs, view_metrics", g.Describe())
}

// TestGrantsResourcesNameCollectorApps: resources on one permission only
// still limit it, since the collectors name the other apps.
func TestGrantsResourcesNameCollectorApps(t *testing.T) {
	cfg, err := Parse([]byte(`collectors:
  app: {port: 8080}
  database: {dsn: "postgres://127.0.0.1/test"}
users:
  - {name: appdev, role: ops}
roles:
  ops: [rollback, monitor]
permissions:
  rollback: {resources: [app]}
`), "vigil.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{"app", "database"}, cfg.Apps())
	g := cfg.UserGrants(cfg.Users[0])
	require.Equal(t, []string{"app"}, g.Apps[PermRollback])
	require.True(t, g.Whole[PermMonitor])
}

func TestRemoteWriteDecodesPrometheusKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yml")
	require.NoError(t, os.WriteFile(file, []byte(`service: checkout
global:
  external_labels:
    pod: ${TEST_POD:-unset}
    replica: "1"
remote_write:
  - url: https://mimir.example/api/v1/push
    name: mimir
    headers:
      X-Scope-OrgID: ${TEST_TENANT}
    basic_auth:
      username: vigil
      password_file: secrets/mimir
    tls_config:
      ca_file: ca.pem
    write_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
    queue_config:
      max_shards: 4
    protobuf_message: io.prometheus.write.v2.Request
  - url: http://127.0.0.1:9090/api/v1/write
`), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "secrets"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secrets/mimir"), []byte("pw\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not checked here"), 0o600))
	env := map[string]string{"TEST_POD": "checkout-7d9f", "TEST_TENANT": "team-a"}
	cfg, err := parse(mustRead(t, file), file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	require.Equal(t, map[string]string{"pod": "checkout-7d9f", "replica": "1"}, cfg.Global.ExternalLabels)
	require.Len(t, cfg.RemoteWrite, 2)

	rw := cfg.RemoteWrite[0]
	require.Equal(t, "mimir", rw.Name)
	require.Equal(t, "https://mimir.example/api/v1/push", rw.URL.String())
	require.Equal(t, map[string]string{"X-Scope-OrgID": "team-a"}, rw.Headers)
	require.Equal(t, filepath.Join(dir, "secrets/mimir"), rw.HTTPClientConfig.BasicAuth.PasswordFile, "relative to the config file")
	require.Equal(t, filepath.Join(dir, "ca.pem"), rw.HTTPClientConfig.TLSConfig.CAFile)
	require.Len(t, rw.WriteRelabelConfigs, 1)
	require.Equal(t, 4, rw.QueueConfig.MaxShards)
	require.Equal(t, 2000, rw.QueueConfig.MaxSamplesPerSend, "Prometheus's default")
	require.Equal(t, "io.prometheus.write.v2.Request", string(rw.ProtobufMessage))

	def := cfg.RemoteWrite[1]
	require.Equal(t, 30*time.Second, time.Duration(def.RemoteTimeout), "Prometheus's default")
	require.Equal(t, "prometheus.WriteRequest", string(def.ProtobufMessage))
	require.True(t, def.MetadataConfig.Send)
	require.Contains(t, cfg.Summary(), "remote_write: mimir (mimir.example), 127.0.0.1:9090")
}

func TestRemoteWriteMissingSecretFile(t *testing.T) {
	_, err := Parse([]byte(`service: checkout
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
    authorization:
      credentials_file: /nonexistent/token
`), "vigil.yml")
	require.ErrorContains(t, err, `vigil.yml:5: remote_write[0].authorization.credentials_file: cannot read the file: stat /nonexistent/token: no such file or directory`)
}

func TestRemoteWriteSecretFileNotRegular(t *testing.T) {
	_, err := Parse([]byte(`service: checkout
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
    authorization:
      credentials_file: /dev/zero
`), "vigil.yml")
	require.ErrorContains(t, err, `vigil.yml:5: remote_write[0].authorization.credentials_file: /dev/zero is not a regular file (it is a character device)`)
}

func TestRemoteWriteTwiceTheSame(t *testing.T) {
	_, err := Parse([]byte(`service: checkout
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
  - url: http://127.0.0.1:9090/api/v1/write
  - url: http://127.0.0.1:9090/api/v1/write
    name: second
`), "vigil.yml")
	require.EqualError(t, err, `vigil.yml:4: remote_write[1]: is the same as remote_write[0]; give one`)
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	return data
}

func TestRemoteWriteBadURLKeepsItsPassword(t *testing.T) {
	_, err := Parse([]byte(`service: checkout
remote_write:
  - url: http://vigil:pw%zzSECRET@127.0.0.1:9090/api/v1/write
`), "vigil.yml")
	require.ErrorContains(t, err, `vigil.yml:3: remote_write[0]: parse "http://vigil:xxxxx@127.0.0.1:9090/api/v1/write": invalid URL escape`)
	require.NotContains(t, err.Error(), "SECRET")
}

func TestLinkSpeedPerDeviceErrorsInOrder(t *testing.T) {
	_, err := Parse([]byte(`collectors:
  infrastructure:
    link_speed_mbps_per_device: {veth9: 0, eth0: -1, bond0: 0}
`), "vigil.yml")
	require.EqualError(t, err, "vigil.yml:3: collectors.infrastructure.link_speed_mbps_per_device.bond0: 0 must be more than 0\n"+
		"vigil.yml:3: collectors.infrastructure.link_speed_mbps_per_device.eth0: -1 must be more than 0\n"+
		"vigil.yml:3: collectors.infrastructure.link_speed_mbps_per_device.veth9: 0 must be more than 0")
}
