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
	s := NewSeedInfo(reg)
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
