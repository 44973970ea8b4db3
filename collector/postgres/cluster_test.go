package postgres

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/collector/postgres/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestCluster runs against a throwaway cluster of its own, with
// pg_stat_statements loaded, for what the shared server cannot give: a
// known set of connections, an extension to install, and a server to stop.
func TestCluster(t *testing.T) {
	cl := pgtest.StartCluster(t, pgtest.WithPreload("pg_stat_statements"))
	ctx := context.Background()
	c := newTestCollector(t, cl.DSN(), 2, nil)

	t.Run("idle server", func(t *testing.T) {
		fs := mustGather(t, c)
		require.Equal(t, 0.0, fs.mustValue(t, "query_duration"), "only the collector's own statement runs")
		require.Equal(t, 1.0, fs.mustValue(t, "connections"))
		_, ok := fs.value("query_duration_mean_seconds")
		require.False(t, ok, "pg_stat_statements is loaded but not installed in the database: skipped")
	})

	t.Run("pg_stat_statements", func(t *testing.T) {
		admin := mustConnect(t, cl.DSN())
		_, err := admin.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
		require.NoError(t, err)
		for range 5 {
			_, err = admin.Exec(ctx, "SELECT pg_sleep(0.02)")
			require.NoError(t, err)
		}
		fs := mustGather(t, c)
		total := fs.mustValue(t, "statements_total_seconds")
		require.GreaterOrEqual(t, total, 0.1, "five 20 ms sleeps")
		mean := fs.mustValue(t, "query_duration_mean_seconds")
		calls := fs.mustValue(t, "statements_calls_total")
		require.Greater(t, calls, 5.0)
		require.InDelta(t, total/calls, mean, 1e-9)
		require.Greater(t, mean, 0.0)

		golden(t, "metrics.golden", fs.shape())
	})

	t.Run("pool limit", func(t *testing.T) {
		watcher := mustConnect(t, cl.DSN())
		stop := make(chan struct{})
		var maxSeen int
		var maxOpen int32 // as the pool counts them
		var watchErr error
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				var n int
				if err := watcher.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", ApplicationName).Scan(&n); err != nil {
					watchErr = err
					return
				}
				maxSeen = max(maxSeen, n)
				maxOpen = max(maxOpen, c.pool.Stat().TotalConns())
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for range 8 {
			wg.Go(func() {
				for range 5 {
					if _, err := gather(ctx, c); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		<-watched
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.NoError(t, watchErr)
		require.LessOrEqual(t, maxSeen, 2, "the server saw more of vigil's connections than max_conns")
		require.GreaterOrEqual(t, maxSeen, 1)
		require.LessOrEqual(t, maxOpen, int32(2))
		require.LessOrEqual(t, c.pool.Stat().NewConnsCount(), int64(3), "connections are reused")
	})

	t.Run("restart between updates", func(t *testing.T) {
		// Both pooled connections are used, then the server restarts: the
		// idle connections are dead, and Update must not fail for them.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { _, _ = gather(ctx, c) })
		}
		wg.Wait()
		require.Positive(t, c.pool.Stat().IdleConns())
		cl.Stop()
		cl.Start()
		fs := mustGather(t, c)
		require.GreaterOrEqual(t, fs.mustValue(t, "connections"), 1.0)
	})

	t.Run("stop and start", func(t *testing.T) {
		mustGather(t, c)
		cl.Stop()
		start := time.Now()
		_, err := gather(ctx, c)
		require.Error(t, err)
		require.Less(t, time.Since(start), c.timeout+time.Second, "Update fails within its timeout")
		_, err = gather(ctx, c)
		require.Error(t, err, "still down")

		cl.Start()
		fs := mustGather(t, c)
		require.GreaterOrEqual(t, fs.mustValue(t, "connections"), 1.0)
	})
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}
