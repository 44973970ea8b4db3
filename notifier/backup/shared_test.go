package backup

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// pair is two gateways' backup Managers on one PostgreSQL schema; a's KV
// is an InterleaveKV.
func pair(t *testing.T, clock func() time.Time) (a, b *Manager, hook *storetest.InterleaveKV, regA, regB *prometheus.Registry) {
	stores := storetest.SharedPostgres(t, 2)
	hook = &storetest.InterleaveKV{AtomicKV: stores[0].KV("backup").(notifier.AtomicKV)}
	regA, regB = prometheus.NewRegistry(), prometheus.NewRegistry()
	a, err := New(&Options{KV: hook, Clock: clock}, nil, regA)
	require.NoError(t, err)
	b, err = New(&Options{KV: stores[1].KV("backup"), Clock: clock}, nil, regB)
	require.NoError(t, err)
	return a, b, hook, regA, regB
}

func failures(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "vigil_backup_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no vigil_backup_failures_total")
	return 0
}

// TestSharedStoreInterleaved: failed backups posted to two gateways of an
// HA pair at the same time (the same time, even) are all counted and all
// kept, and both gateways export the shared count; of two successes
// recorded at once, the newer stays the last success whatever the order
// of the writes.
func TestSharedStoreInterleaved(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	t.Run("failures", func(t *testing.T) {
		a, b, hook, regA, regB := pair(t, clock)
		at := now.Add(-time.Minute)
		hook.Match = func(op, key string) bool { return op == "list" }
		hook.Between = func() {
			_, err := b.Record(Backup{OK: false, Time: at, Error: "from b"})
			require.NoError(t, err)
		}
		_, err := a.Record(Backup{OK: false, Time: at, Error: "from a"})
		require.NoError(t, err)

		require.Equal(t, 2.0, failures(t, regA), "gateway a")
		require.Equal(t, 2.0, failures(t, regB), "gateway b")
		list, err := b.Backups(0)
		require.NoError(t, err)
		var errs []string
		for _, r := range list {
			errs = append(errs, r.Error)
		}
		require.ElementsMatch(t, []string{"from a", "from b"}, errs, "neither record replaced the other")
	})

	t.Run("last success", func(t *testing.T) {
		a, b, hook, regA, regB := pair(t, clock)
		older, newer := now.Add(-2*time.Hour), now.Add(-time.Hour)
		hook.Match = func(op, key string) bool { return op == "get" && key == keyLastSuccess }
		hook.Between = func() {
			_, err := b.Record(Backup{OK: true, Time: newer, Size: 2})
			require.NoError(t, err)
		}
		_, err := a.Record(Backup{OK: true, Time: older, Size: 1})
		require.NoError(t, err)
		want := fmt.Sprintf(`
# HELP vigil_backup_last_success_timestamp_seconds Unix time of the newest successful backup recorded (POST /api/v1/backups); absent before the first.
# TYPE vigil_backup_last_success_timestamp_seconds gauge
vigil_backup_last_success_timestamp_seconds %g
# HELP vigil_backup_last_size_bytes Size of the newest successful backup recorded.
# TYPE vigil_backup_last_size_bytes gauge
vigil_backup_last_size_bytes 2
`, float64(newer.Unix()))
		for name, reg := range map[string]*prometheus.Registry{"a": regA, "b": regB} {
			require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
				"vigil_backup_last_success_timestamp_seconds", "vigil_backup_last_size_bytes"), "gateway %s", name)
		}
	})
}

// TestSharedWatchStart: the gateway configured second takes the watch
// start the first stored rather than its own, later one.
func TestSharedWatchStart(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	first := now
	a, b, _, regA, regB := pair(t, func() time.Time { return now })
	withBackup := &config.Config{Backup: &config.BackupConfig{Schedule: "0 0 * * *"}}
	require.NoError(t, a.ApplyConfig(withBackup))
	now = now.Add(time.Hour)
	require.NoError(t, b.ApplyConfig(withBackup))
	want := fmt.Sprintf(`
# HELP vigil_backup_watch_start_timestamp_seconds Unix time vigil first had a backup block configured: backup_missed counts from here before the first backup.
# TYPE vigil_backup_watch_start_timestamp_seconds gauge
vigil_backup_watch_start_timestamp_seconds %g
`, float64(first.Unix()))
	for name, reg := range map[string]*prometheus.Registry{"a": regA, "b": regB} {
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "vigil_backup_watch_start_timestamp_seconds"), "gateway %s", name)
	}
}

// TestSharedStoreConcurrent: many failed backups posted at once to both
// gateways are all counted.
func TestSharedStoreConcurrent(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	a, b, _, regA, regB := pair(t, func() time.Time { return now })
	const each = 10
	var wg sync.WaitGroup
	for i := range each {
		for _, m := range []*Manager{a, b} {
			wg.Go(func() {
				_, err := m.Record(Backup{OK: false, Time: now.Add(-time.Duration(i) * time.Second)})
				require.NoError(t, err)
			})
		}
	}
	wg.Wait()
	require.Equal(t, 2.0*each, failures(t, regA))
	require.Equal(t, 2.0*each, failures(t, regB))
	list, err := a.Backups(0)
	require.NoError(t, err)
	require.Len(t, list, 2*each)
}
