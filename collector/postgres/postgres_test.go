package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dsn     string
		address string
		err     string
	}{
		{name: "postgres URL", dsn: "postgres://u:pw@db.example:6543/app?sslmode=disable", address: "db.example:6543"},
		{name: "postgresql URL, seed form", dsn: "postgresql://user:password@host:5432/database", address: "host:5432"},
		{name: "default port", dsn: "postgres://u@10.0.0.7/app", address: "10.0.0.7:5432"},
		{name: "IPv6", dsn: "postgres://u@[::1]:5433/app", address: "[::1]:5433"},
		{name: "key=value", dsn: "host=127.0.0.1 port=5544 user=u password=pw dbname=app", address: "127.0.0.1:5544"},
		{name: "empty", dsn: "", err: "dsn is empty"},
		{name: "bad port", dsn: "postgres://u:pw@host:notaport/app", err: "parse dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(&config.DatabaseCollectorConfig{DSN: config.Secret(tc.dsn)}, nil)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			defer c.Close()
			require.Equal(t, tc.address, c.Address())
			require.Equal(t, DefaultTimeout, c.timeout)
			pc := c.pool.Config()
			require.Equal(t, int32(DefaultMaxConns), pc.MaxConns)
			require.Equal(t, int32(0), pc.MinConns)
			require.Equal(t, idleTimeout, pc.MaxConnIdleTime)
			require.Equal(t, maxLifetime, pc.MaxConnLifetime)
			require.Equal(t, DefaultTimeout, pc.ConnConfig.ConnectTimeout)
			require.Equal(t, ApplicationName, pc.ConnConfig.RuntimeParams["application_name"])
			require.Equal(t, "5000", pc.ConnConfig.RuntimeParams["statement_timeout"])
			require.Equal(t, "5000", pc.ConnConfig.RuntimeParams["lock_timeout"])
		})
	}
}

func TestUpdate(t *testing.T) {
	dsn := testDSN(t)
	c := newTestCollector(t, dsn, 2, nil)
	db := mustConnect(t, dsn).Config().Database

	fs := mustGather(t, c)
	require.GreaterOrEqual(t, fs.mustValue(t, "connections"), 1.0, "the collector's own connection counts")
	require.GreaterOrEqual(t, fs.mustValue(t, "connections_by_state", "state", "active"), 1.0)
	require.GreaterOrEqual(t, fs.mustValue(t, "connections_by_database", "datname", db), 1.0)
	require.Greater(t, fs.mustValue(t, "connections_max"), 0.0)
	require.GreaterOrEqual(t, fs.mustValue(t, "query_duration"), 0.0)
	require.Greater(t, fs.mustValue(t, "database_size_bytes", "datname", db), 0.0)
	require.Greater(t, fs.mustValue(t, "transactions_total", "datname", db, "result", "commit"), 0.0)
	require.GreaterOrEqual(t, fs.mustValue(t, "transactions_total", "datname", db, "result", "rollback"), 0.0)
	require.GreaterOrEqual(t, fs.mustValue(t, "deadlocks_total", "datname", db), 0.0)
	ratio := fs.mustValue(t, "cache_hit_ratio", "datname", db)
	require.True(t, ratio >= 0 && ratio <= 1, "cache_hit_ratio %v", ratio)
	require.Equal(t, 0.0, fs.mustValue(t, "in_recovery"))
	_, ok := fs.value("replication_lag_seconds")
	require.False(t, ok, "replication_lag_seconds only on a replica")
	for _, n := range []string{"up", "app", "environment", "service"} {
		_, ok := fs[n]
		require.False(t, ok, "%s is the scrape's to add", n)
	}
	for _, mf := range fs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				require.NotContains(t, []string{"app", "environment", "service", "instance"}, lp.GetName())
			}
		}
	}
}

// TestConnectionsRise opens connections next to the collector and sees
// them counted. Other tests may use the same server at the same time, so
// a measurement is retried a few times before it counts as a failure.
func TestConnectionsRise(t *testing.T) {
	dsn := testDSN(t)
	c := newTestCollector(t, dsn, 2, nil)
	const extra = 5
	var before, after float64
	for attempt := 0; attempt < 3; attempt++ {
		before = mustGather(t, c).mustValue(t, "connections")
		conns := make([]*pgx.Conn, extra)
		for i := range conns {
			conns[i] = mustConnect(t, dsn)
		}
		after = mustGather(t, c).mustValue(t, "connections")
		for _, conn := range conns {
			conn.Close(context.Background())
		}
		if after-before >= extra {
			return
		}
	}
	t.Fatalf("connections went from %v to %v after opening %d connections", before, after, extra)
}

// TestQueryDuration runs pg_sleep(2) on another connection and polls
// until the collector sees it running, for a bounded time.
func TestQueryDuration(t *testing.T) {
	dsn := testDSN(t)
	c := newTestCollector(t, dsn, 2, nil)
	sleeper := mustConnect(t, dsn)
	done := make(chan error, 1)
	go func() {
		_, err := sleeper.Exec(context.Background(), "SELECT pg_sleep(2)")
		done <- err
	}()

	var seen float64
	deadline := time.Now().Add(10 * time.Second)
	for seen < 1 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			require.NoError(t, err)
			t.Fatalf("pg_sleep(2) ended before the collector saw it run for 1s (last %v)", seen)
		default:
		}
		seen = mustGather(t, c).mustValue(t, "query_duration")
		if seen < 1 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	require.GreaterOrEqual(t, seen, 1.0)
	require.LessOrEqual(t, seen, 3.0)
	require.NoError(t, <-done)
}

func TestUpdateAfterClose(t *testing.T) {
	c, err := New(&config.DatabaseCollectorConfig{DSN: "postgres://u@127.0.0.1:1/x"}, nil)
	require.NoError(t, err)
	c.Close()
	c.Close() // twice is fine
	_, err = gather(context.Background(), c)
	require.ErrorIs(t, err, errPoolClosed)
}

// TestUpdateTimeout: a server that accepts the connection and then says
// nothing makes Update fail at the timeout, with the context's error.
func TestUpdateTimeout(t *testing.T) {
	addr := silentServer(t)
	c, err := New(&config.DatabaseCollectorConfig{
		DSN:     config.Secret("postgres://u@" + addr + "/x?sslmode=disable"),
		Timeout: config.Duration(300 * time.Millisecond),
	}, nil)
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	_, err = gather(context.Background(), c)
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "err %v", err)
	require.Less(t, time.Since(start), 5*time.Second)
}

func mustConnect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestPoolIdleExpiry: idle connections are closed after the idle timeout,
// so a collector nobody scrapes holds no connection.
func TestPoolIdleExpiry(t *testing.T) {
	c, err := newCollector(&config.DatabaseCollectorConfig{DSN: config.Secret(testDSN(t))}, nil, func(pc *pgxpool.Config) {
		pc.MaxConnIdleTime = 200 * time.Millisecond
		pc.HealthCheckPeriod = 50 * time.Millisecond
	})
	require.NoError(t, err)
	defer c.Close()

	// Reused while fresh.
	mustGather(t, c)
	mustGather(t, c)
	require.Equal(t, int32(1), c.pool.Stat().TotalConns())
	require.Equal(t, int64(1), c.pool.Stat().NewConnsCount())

	deadline := time.Now().Add(5 * time.Second)
	for c.pool.Stat().TotalConns() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, int32(0), c.pool.Stat().TotalConns())
	require.Equal(t, int64(1), c.pool.Stat().NewConnsCount())
}
