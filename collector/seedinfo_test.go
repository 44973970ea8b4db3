package collector

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// TestSeedInfo: the seed's backup and disaster_recovery blocks, loaded
// verbatim, become gauges with their values.
func TestSeedInfo(t *testing.T) {
	cfg, err := config.Load("../config/testdata/seed_data_security.good.yml")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	s := NewSeedInfo(reg, nil)
	// No mounts to read: vigil cannot tell about data_dir, and says nothing.
	s.paths = blockPaths{MountInfo: "testdata/blockdev/missing"}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(""), "vigil_dr_objectives_seconds"), "nothing before a config")
	require.NoError(t, s.ApplyConfig(cfg))

	want := `# HELP vigil_backup_retention_seconds How long the backups of a config block are kept.
# TYPE vigil_backup_retention_seconds gauge
vigil_backup_retention_seconds{block="backup"} 2.592e+06
vigil_backup_retention_seconds{block="disaster_recovery.backup"} 2.592e+06
# HELP vigil_backup_schedule_info The backup schedule a config block promises (backup or disaster_recovery.backup); always 1.
# TYPE vigil_backup_schedule_info gauge
vigil_backup_schedule_info{block="backup",compression="true",encryption="true",schedule="0 0 * * *",storage="S3"} 1
vigil_backup_schedule_info{block="disaster_recovery.backup",compression="true",encryption="true",schedule="0 0 * * *",storage="S3"} 1
# HELP vigil_dr_objectives_seconds disaster_recovery's recovery time (rto) and recovery point (rpo) objectives.
# TYPE vigil_dr_objectives_seconds gauge
vigil_dr_objectives_seconds{objective="rpo"} 3600
vigil_dr_objectives_seconds{objective="rto"} 14400
# HELP vigil_dr_replication_interval_seconds disaster_recovery.replication's interval; absent when replication is off.
# TYPE vigil_dr_replication_interval_seconds gauge
vigil_dr_replication_interval_seconds{region="us-east-1"} 300
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)))

	// A reload without the blocks drops them.
	require.NoError(t, s.ApplyConfig(config.Default()))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader("")))
}

// TestTLSProbeSource: collectors.app.tls_probe is a collector of its own,
// scraped as job "tls" with the app's labels and the endpoint as instance.
func TestTLSProbeSource(t *testing.T) {
	cfg, err := config.Load("../config/testdata/tls_probe.good.yml")
	require.NoError(t, err)
	var found bool
	for _, src := range sources(cfg) {
		if src.name == CollectorTLS {
			found = true
			require.Equal(t, CollectorTLS, src.job)
			require.Equal(t, "checkout", src.labels["app"])
			require.Equal(t, "localhost:8443", src.labels["instance"])
		}
	}
	require.True(t, found)
	cs, _, closeAll, err := buildCollectors(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer closeAll()
	require.Contains(t, cs, CollectorTLS)
}

// TestSeedInfoSecurity: the seed's firewall, network, security.groups and
// encryption blocks, loaded verbatim, become info series a dashboard can
// list, and data_dir's device is reported as encrypted or not.
func TestSeedInfoSecurity(t *testing.T) {
	cfg, err := config.Load("../config/testdata/seed_security.good.yml")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	s := NewSeedInfo(reg, nil)
	s.paths = fixtureBlockPaths
	cfg.DataDir = "/vigil-test/crypt/vigil"
	require.NoError(t, s.ApplyConfig(cfg))

	want := `# HELP vigil_data_dir_encrypted 1 when vigil's data_dir lies on a dm-crypt device (or one built on it), 0 when on a plain device; absent when vigil cannot tell (no block device of its own, not Linux).
# TYPE vigil_data_dir_encrypted gauge
vigil_data_dir_encrypted{data_dir="/vigil-test/crypt/vigil",device="253:1",mountpoint="/vigil-test/crypt"} 1
# HELP vigil_encryption_at_rest_info encryption.at_rest as configured; recorded, not verified except for data_dir (vigil_data_dir_encrypted); always 1.
# TYPE vigil_encryption_at_rest_info gauge
vigil_encryption_at_rest_info{algorithm="AES-256",key_storage="KMS"} 1
# HELP vigil_encryption_certificate_storage_info encryption.in_transit.certificate_storage; recorded, not read; always 1.
# TYPE vigil_encryption_certificate_storage_info gauge
vigil_encryption_certificate_storage_info{storage="ACM"} 1
# HELP vigil_encryption_key_rotation_seconds encryption.at_rest.key_rotation; recorded, not verified.
# TYPE vigil_encryption_key_rotation_seconds gauge
vigil_encryption_key_rotation_seconds 2.592e+06
# HELP vigil_firewall_rule_info A rule of the firewall block or of a security group (block); recorded, not enforced by vigil; always 1.
# TYPE vigil_firewall_rule_info gauge
vigil_firewall_rule_info{block="firewall",cidr="0.0.0.0/0",description="All traffic",direction="outbound",port="0-65535",protocol="all"} 1
vigil_firewall_rule_info{block="firewall",cidr="0.0.0.0/0",description="HTTP",direction="inbound",port="80",protocol="tcp"} 1
vigil_firewall_rule_info{block="firewall",cidr="0.0.0.0/0",description="HTTPS",direction="inbound",port="443",protocol="tcp"} 1
vigil_firewall_rule_info{block="firewall",cidr="10.0.0.0/8",description="SSH",direction="inbound",port="22",protocol="tcp"} 1
vigil_firewall_rule_info{block="security.groups.app-sg",cidr="0.0.0.0/0",description="All traffic",direction="outbound",port="0-65535",protocol="all"} 1
vigil_firewall_rule_info{block="security.groups.app-sg",cidr="0.0.0.0/0",description="HTTP",direction="inbound",port="80",protocol="tcp"} 1
vigil_firewall_rule_info{block="security.groups.app-sg",cidr="0.0.0.0/0",description="HTTPS",direction="inbound",port="443",protocol="tcp"} 1
# HELP vigil_network_policy_port_info A port a network.policies entry lets in; recorded, not applied by vigil; always 1.
# TYPE vigil_network_policy_port_info gauge
vigil_network_policy_port_info{namespace="default",pod_selector="app=app",policy="app-policy",port="80",protocol="TCP"} 1
vigil_network_policy_port_info{namespace="default",pod_selector="app=database",policy="database-policy",port="5432",protocol="TCP"} 1
`
	names := []string{"vigil_data_dir_encrypted", "vigil_encryption_at_rest_info", "vigil_encryption_certificate_storage_info",
		"vigil_encryption_key_rotation_seconds", "vigil_firewall_rule_info", "vigil_network_policy_port_info"}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), names...))

	// A plain device reads 0, which the rule data_dir_not_encrypted fires on.
	cfg.DataDir = "/vigil-test/plain/vigil"
	require.NoError(t, s.ApplyConfig(cfg))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`# HELP vigil_data_dir_encrypted 1 when vigil's data_dir lies on a dm-crypt device (or one built on it), 0 when on a plain device; absent when vigil cannot tell (no block device of its own, not Linux).
# TYPE vigil_data_dir_encrypted gauge
vigil_data_dir_encrypted{data_dir="/vigil-test/plain/vigil",device="8:2",mountpoint="/vigil-test/plain"} 0
`), "vigil_data_dir_encrypted"))
	// An overlay root cannot be told: no series, no guess.
	cfg.DataDir = "/vigil-test/overlay/vigil"
	require.NoError(t, s.ApplyConfig(cfg))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(""), "vigil_data_dir_encrypted"))
}
