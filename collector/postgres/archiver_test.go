package postgres

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/collector/postgres/pgtest"
)

// TestArchiver: on a throwaway cluster that archives WAL by copying it into
// a directory, the collector reports the archived file's time and nothing
// pending; once archive_command fails, the failures, their time, and WAL
// pending past the last archived file, while the last archived time stays.
func TestArchiver(t *testing.T) {
	if _, err := pgtest.FindBin(); err != nil {
		t.Skipf("PostgreSQL server binaries are missing: %v", err)
	}
	dir := pgtest.ArchiveDir(t)
	cl := pgtest.StartCluster(t, pgtest.WithArchive())
	ctx := context.Background()
	c := newTestCollector(t, cl.DSN(), 2, nil)
	admin := mustConnect(t, cl.DSN())
	exec := func(sql string) {
		t.Helper()
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	// eventually polls the collector until cond holds, for at most 20 s
	// (the archiver retries a failed file after a second).
	eventually := func(what string, cond func(fs families) bool) families {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			fs := mustGather(t, c)
			if cond(fs) {
				return fs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s; metrics: %v", what, fs.names())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	exec("ALTER SYSTEM SET archive_command = '" + pgtest.CopyArchiveCommand(dir) + "'")
	exec("SELECT pg_reload_conf()")
	exec("CREATE TABLE t (x int)")
	exec("INSERT INTO t SELECT generate_series(1, 1000)")
	before := time.Now()
	exec("SELECT pg_switch_wal()")
	fs := eventually("the switched WAL file is archived", func(fs families) bool {
		if v, ok := fs.value("archiver_wal_pending"); ok && v == 0 && fs.mustValue(t, "archiver_archived_total") >= 1 {
			return true
		}
		// A background WAL record (a standby snapshot) may have followed
		// the switch: switch again.
		exec("SELECT pg_switch_wal()")
		return false
	})
	last := fs.mustValue(t, "archiver_last_archived_timestamp_seconds")
	require.InDelta(t, float64(time.Now().Unix()), last, float64(time.Since(before)/time.Second)+2)
	require.Equal(t, 0.0, fs.mustValue(t, "archiver_failed_total"))
	_, ok := fs.value("archiver_last_failed_timestamp_seconds")
	require.False(t, ok, "no failure yet")
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, files, "archive_command copied the WAL file")

	exec("ALTER SYSTEM SET archive_command = 'false'")
	exec("SELECT pg_reload_conf()")
	// The archiver rereads its config when it next wakes: until then a
	// switched file may still be copied, so switch until one fails.
	fs = eventually("archiving fails", func(fs families) bool {
		if fs.mustValue(t, "archiver_failed_total") >= 1 {
			return true
		}
		exec("INSERT INTO t SELECT generate_series(1, 1000)")
		exec("SELECT pg_switch_wal()")
		return false
	})
	require.Equal(t, 1.0, fs.mustValue(t, "archiver_wal_pending"), "the switched file is not archived")
	lastNow := fs.mustValue(t, "archiver_last_archived_timestamp_seconds")
	require.GreaterOrEqual(t, lastNow, last)
	require.GreaterOrEqual(t, fs.mustValue(t, "archiver_last_failed_timestamp_seconds"), lastNow)
	_, ok = fs.value("replication_replay_lag_seconds")
	require.False(t, ok, "no replica streams from this primary")
}

// TestReplication: a primary reports its streaming replica's replay lag;
// the replica reports its own lag and that it is in recovery, and no WAL
// pending (it does not archive).
func TestReplication(t *testing.T) {
	if _, err := pgtest.FindBin(); err != nil {
		t.Skipf("PostgreSQL server binaries are missing: %v", err)
	}
	primary := pgtest.StartCluster(t, pgtest.WithArchive())
	replica := primary.StartReplica(t)
	pc := newTestCollector(t, primary.DSN(), 1, nil)
	rc := newTestCollector(t, replica.DSN(), 1, nil)
	admin := mustConnect(t, primary.DSN())
	_, err := admin.Exec(context.Background(), "CREATE TABLE r AS SELECT generate_series(1, 1000) AS x")
	require.NoError(t, err)

	deadline := time.Now().Add(20 * time.Second)
	var fs families
	for {
		fs = mustGather(t, pc)
		if _, ok := fs.value("replication_replay_lag_seconds"); ok {
			break
		}
		require.True(t, time.Now().Before(deadline), "the replica did not stream within 20s: %v", fs.names())
		time.Sleep(100 * time.Millisecond)
	}
	lag := fs.mustValue(t, "replication_replay_lag_seconds", "application_name", "walreceiver", "client_addr", "127.0.0.1")
	require.GreaterOrEqual(t, lag, 0.0)
	require.Less(t, lag, 20.0)
	require.Equal(t, 0.0, fs.mustValue(t, "in_recovery"))

	rs := mustGather(t, rc)
	require.Equal(t, 1.0, rs.mustValue(t, "in_recovery"))
	require.GreaterOrEqual(t, rs.mustValue(t, "replication_lag_seconds"), 0.0)
	_, ok := rs.value("archiver_wal_pending")
	require.False(t, ok, "a replica does not archive")
	_, ok = rs.value("replication_replay_lag_seconds")
	require.False(t, ok, "nothing streams from the replica")
}
