package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCronPeriod(t *testing.T) {
	for _, tc := range []struct {
		schedule string
		want     time.Duration
	}{
		{"0 0 * * *", 24 * time.Hour},
		{"* * * * *", time.Minute},
		{"*/15 * * * *", 15 * time.Minute},
		{"30 2 * * *", 24 * time.Hour},
		{"0 */6 * * *", 6 * time.Hour},
		{"0 9 * * 1-5", 72 * time.Hour},
		{"0 0 * * sun", 7 * 24 * time.Hour},
		{"0 0 1 * *", 31 * 24 * time.Hour},
		{"@hourly", time.Hour},
		{"@daily", 24 * time.Hour},
		{"0 0 29 2 *", 1461 * 24 * time.Hour},
		{"0,30 8-9 * * *", 22*time.Hour + 30*time.Minute},
	} {
		got, err := CronPeriod(tc.schedule)
		require.NoError(t, err, tc.schedule)
		require.Equal(t, tc.want, got, tc.schedule)
	}
	_, err := CronPeriod("0 0 31 2 *")
	require.ErrorContains(t, err, "never runs twice")
}

// TestDRRules: the seed's backup and disaster_recovery blocks give vigil's
// own group backup_missed (once: both blocks promise the same schedule),
// rpo_at_risk at half the rpo and at the rpo, and replication_lagging
// above the replication interval.
func TestDRRules(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "seed_data_security.good.yml"))
	require.NoError(t, err)
	byName := map[string][]RuleConfig{}
	for _, r := range cfg.OwnRules {
		byName[r.Name] = append(byName[r.Name], r)
	}
	missed := byName[BackupMissedRuleName]
	require.Len(t, missed, 1)
	// 24h + a tenth of it as grace.
	require.Equal(t, "time() - (max(vigil_backup_last_success_timestamp_seconds) or max(vigil_backup_watch_start_timestamp_seconds)) > 95040", missed[0].Condition)
	require.Equal(t, "critical", missed[0].Severity)

	rpo := byName[RPOAtRiskRuleName]
	require.Len(t, rpo, 2)
	exposure := `min(label_replace(time() - (max(vigil_backup_last_success_timestamp_seconds) or max(vigil_backup_watch_start_timestamp_seconds)), "source", "backup", "", "")` +
		` or label_replace((time() - max(archiver_last_archived_timestamp_seconds)) * max(archiver_wal_pending), "source", "wal_archive", "", "")` +
		` or label_replace(min((replication_lag_seconds or replication_replay_lag_seconds)), "source", "replication", "", ""))`
	require.Equal(t, "warning", rpo[0].Severity)
	require.Equal(t, exposure+" > 1800 <= 3600", rpo[0].Condition)
	require.Equal(t, "critical", rpo[1].Severity)
	require.Equal(t, exposure+" > 3600", rpo[1].Condition)

	lag := byName[ReplicationLaggingRuleName]
	require.Len(t, lag, 1)
	require.Equal(t, "(replication_lag_seconds or replication_replay_lag_seconds) > 300", lag[0].Condition)

	dr := cfg.DisasterRecovery
	require.Equal(t, 0.5, dr.RTOEscalationFraction())
	require.Equal(t, DefaultDownAlerts, dr.DownAlertNames())
}

// TestDRRulesFollowConfig: a per-minute schedule with its grace, a
// backup job's metric, and no replication.
func TestDRRulesFollowConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vigil.yml")
	require.NoError(t, os.WriteFile(file, []byte(`backup:
  schedule: "* * * * *"
  retention: 1d
  storage: local
  grace: 30s
  metric: backup_job_last_success_timestamp_seconds
disaster_recovery:
  rto: 10m
  rpo: 1m
  rpo_warning: 0.25
`), 0o644))
	cfg, err := Load(file)
	require.NoError(t, err)
	var conds []string
	for _, r := range cfg.OwnRules {
		switch r.Name {
		case BackupMissedRuleName, RPOAtRiskRuleName, ReplicationLaggingRuleName:
			conds = append(conds, r.Condition)
		}
	}
	last := `(max({__name__=~"vigil_backup_last_success_timestamp_seconds|backup_job_last_success_timestamp_seconds"}) or max(vigil_backup_watch_start_timestamp_seconds))`
	exposure := `min(label_replace(time() - ` + last + `, "source", "backup", "", "")` +
		` or label_replace((time() - max(archiver_last_archived_timestamp_seconds)) * max(archiver_wal_pending), "source", "wal_archive", "", ""))`
	require.Equal(t, []string{
		"time() - " + last + " > 90",
		exposure + " > 15 <= 60",
		exposure + " > 60",
	}, conds)
}

// A backup metric whose name is part of another's (here of vigil's own
// vigil_backup_last_success_timestamp_seconds) is still watched, and one
// named in both blocks is selected once.
func TestLastBackupExprMetricInsideAnother(t *testing.T) {
	c := &Config{
		Backup:           &BackupConfig{Schedule: "0 0 * * *", Metric: "backup_last_success"},
		DisasterRecovery: &DisasterRecoveryConfig{Backup: &BackupConfig{Schedule: "0 0 * * *", Metric: "backup_last_success"}},
	}
	require.Equal(t, `(max({__name__=~"vigil_backup_last_success_timestamp_seconds|backup_last_success"}) or max(vigil_backup_watch_start_timestamp_seconds))`,
		c.lastBackupExpr())
}
