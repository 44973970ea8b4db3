package backup

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// TestRecordSurvivesRestart: the last success, the failures and the watch
// start are read back from the store by a new Manager; a backdated success
// does not replace a newer one; only Keep records are kept.
func TestRecordSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	store, err := notifier.OpenBoltStore(dir)
	require.NoError(t, err)
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	m, err := New(&Options{KV: store.KV("backup"), Clock: func() time.Time { return now }, Keep: 3}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(&config.Config{}), "no backup block: no watch")
	require.NoError(t, m.ApplyConfig(&config.Config{Backup: &config.BackupConfig{Schedule: "0 0 * * *"}}))

	var b Backup
	require.NoError(t, json.Unmarshal([]byte(`{"at": "2026-12-02T00:00:00Z", "size_bytes": 42}`), &b))
	require.True(t, b.OK, "ok defaults to true")
	_, err = m.Record(b)
	require.NoError(t, err)
	_, err = m.Record(Backup{OK: true, Time: now.Add(-24 * time.Hour), Size: 7}) // backdated
	require.NoError(t, err)
	_, err = m.Record(Backup{OK: false, Time: now.Add(-time.Hour), Error: "s3: access denied"})
	require.NoError(t, err)
	_, err = m.Record(Backup{OK: false, Time: now.Add(-30 * time.Minute)})
	require.NoError(t, err)
	list, err := m.Backups(0)
	require.NoError(t, err)
	require.Len(t, list, 3, "the oldest is trimmed")
	require.Equal(t, now.Add(-30*time.Minute), list[0].Time)
	require.NoError(t, store.Close())

	store, err = notifier.OpenBoltStore(dir)
	require.NoError(t, err)
	defer store.Close()
	reg := prometheus.NewRegistry()
	later := now.Add(time.Hour)
	m, err = New(&Options{KV: store.KV("backup"), Clock: func() time.Time { return later }}, nil, reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(&config.Config{Backup: &config.BackupConfig{Schedule: "0 0 * * *"}}), "the watch keeps its start")
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_backup_failures_total Failed backups recorded (ok: false), kept across restarts.
# TYPE vigil_backup_failures_total counter
vigil_backup_failures_total 2
# HELP vigil_backup_last_failure_timestamp_seconds Unix time of the newest failed backup recorded; absent before the first.
# TYPE vigil_backup_last_failure_timestamp_seconds gauge
vigil_backup_last_failure_timestamp_seconds 1.7961786e+09
# HELP vigil_backup_last_size_bytes Size of the newest successful backup recorded.
# TYPE vigil_backup_last_size_bytes gauge
vigil_backup_last_size_bytes 42
# HELP vigil_backup_last_success_timestamp_seconds Unix time of the newest successful backup recorded (POST /api/v1/backups); absent before the first.
# TYPE vigil_backup_last_success_timestamp_seconds gauge
vigil_backup_last_success_timestamp_seconds 1.7961696e+09
# HELP vigil_backup_watch_start_timestamp_seconds Unix time vigil first had a backup block configured: backup_missed counts from here before the first backup.
# TYPE vigil_backup_watch_start_timestamp_seconds gauge
vigil_backup_watch_start_timestamp_seconds 1.7961804e+09
`)))
	_, err = m.Record(Backup{OK: true, Time: later.Add(time.Hour)})
	require.ErrorIs(t, err, ErrInvalid, "an hour in the future")
}

// TestSharedStore: two gateways sharing a store both see a backup posted
// to either, so that neither's DR watch takes it for missed, and the
// failures posted to both are all counted.
func TestSharedStore(t *testing.T) {
	kv := notifier.NewMemKV()
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, err := New(&Options{KV: kv, Clock: clock}, nil, regA)
	require.NoError(t, err)
	b, err := New(&Options{KV: kv, Clock: clock}, nil, regB)
	require.NoError(t, err)

	_, err = a.Record(Backup{OK: true, Time: now.Add(-time.Hour), Size: 42})
	require.NoError(t, err)
	_, err = a.Record(Backup{OK: false, Time: now.Add(-30 * time.Minute)})
	require.NoError(t, err)
	_, err = b.Record(Backup{OK: false, Time: now.Add(-20 * time.Minute)})
	require.NoError(t, err)

	want := `
# HELP vigil_backup_failures_total Failed backups recorded (ok: false), kept across restarts.
# TYPE vigil_backup_failures_total counter
vigil_backup_failures_total 2
# HELP vigil_backup_last_failure_timestamp_seconds Unix time of the newest failed backup recorded; absent before the first.
# TYPE vigil_backup_last_failure_timestamp_seconds gauge
vigil_backup_last_failure_timestamp_seconds 1.7961792e+09
# HELP vigil_backup_last_size_bytes Size of the newest successful backup recorded.
# TYPE vigil_backup_last_size_bytes gauge
vigil_backup_last_size_bytes 42
# HELP vigil_backup_last_success_timestamp_seconds Unix time of the newest successful backup recorded (POST /api/v1/backups); absent before the first.
# TYPE vigil_backup_last_success_timestamp_seconds gauge
vigil_backup_last_success_timestamp_seconds 1.7961768e+09
`
	for name, reg := range map[string]*prometheus.Registry{"a": regA, "b": regB} {
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)), "gateway %s", name)
	}
}
