package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// The queries read only catalog and statistics views and work on
// PostgreSQL 13 to 17 (pg_stat_statements' total_exec_time is 13+).
const (
	// serverQuery reads server-wide facts, including whether and where
	// pg_stat_statements is installed in the connected database. The lag
	// is 0 when the replica has replayed all it received: an idle primary
	// writes nothing, and the replay timestamp would grow anyway.
	serverQuery = `SELECT current_setting('max_connections')::int,
	pg_is_in_recovery(),
	(CASE WHEN pg_is_in_recovery() THEN
		CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
		ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END
	END)::float8,
	(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_stat_statements')`

	// activityQuery counts client connections by database and state, and
	// the age of the oldest active statement in each group, leaving out
	// the collector's own.
	activityQuery = `SELECT coalesce(datname, ''), coalesce(state, ''), count(*),
	coalesce(max(extract(epoch FROM clock_timestamp() - query_start))
		FILTER (WHERE state = 'active' AND pid <> pg_backend_pid()), 0)::float8
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2`

	// databasesQuery reads per-database statistics; the size only where
	// the user may connect, as pg_database_size requires.
	databasesQuery = `SELECT d.datname, s.xact_commit, s.xact_rollback, s.deadlocks, s.blks_hit, s.blks_read,
	CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END
FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
WHERE d.datallowconn AND NOT d.datistemplate`

	// archiverQuery reads pg_stat_archiver, and whether WAL has been
	// written past the last archived file: pg_walfile_name of the current
	// position names the file being written, or, exactly at a file
	// boundary (just after a switch), the one before it.
	archiverQuery = `SELECT archived_count, failed_count,
	extract(epoch FROM last_archived_time)::float8,
	extract(epoch FROM last_failed_time)::float8,
	current_setting('archive_mode') <> 'off' AND NOT pg_is_in_recovery(),
	CASE WHEN current_setting('archive_mode') <> 'off' AND NOT pg_is_in_recovery() THEN
		last_archived_wal IS NULL OR pg_walfile_name(pg_current_wal_lsn()) > last_archived_wal
	END
FROM pg_stat_archiver`

	// replicationQuery reads the streaming replicas' replay lag on a
	// primary; without pg_read_all_stats the state is hidden and no row
	// is read. A replica that has caught up and is idle has no lag (NULL).
	replicationQuery = `SELECT coalesce(application_name, ''), coalesce(host(client_addr), ''),
	coalesce(extract(epoch FROM replay_lag), 0)::float8
FROM pg_stat_replication WHERE state = 'streaming'`

	// statementsQuery sums pg_stat_statements; the function with
	// showtext=false skips reading the query texts file. %s is the
	// extension's schema, quoted.
	statementsQuery = `SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time), 0)::float8
FROM %s.pg_stat_statements(false)`
)

// collect runs the queries on conn and sends what they read.
func (c *Collector) collect(ctx context.Context, conn *pgx.Conn, ch chan<- prometheus.Metric) error {
	var (
		maxConns   int
		inRecovery bool
		lag        *float64
		pgssSchema *string
	)
	if err := conn.QueryRow(ctx, serverQuery).Scan(&maxConns, &inRecovery, &lag, &pgssSchema); err != nil {
		return fmt.Errorf("server settings: %w", err)
	}
	ch <- prometheus.MustNewConstMetric(connectionsMaxDesc, prometheus.GaugeValue, float64(maxConns))
	ch <- prometheus.MustNewConstMetric(inRecoveryDesc, prometheus.GaugeValue, boolValue(inRecovery))
	if inRecovery && lag != nil {
		ch <- prometheus.MustNewConstMetric(replicationLagDesc, prometheus.GaugeValue, *lag)
	}

	if err := c.collectArchiver(ctx, conn, ch); err != nil {
		return err
	}
	if !inRecovery {
		if err := c.collectReplication(ctx, conn, ch); err != nil {
			return err
		}
	}
	if err := c.collectActivity(ctx, conn, ch); err != nil {
		return err
	}
	if err := c.collectDatabases(ctx, conn, ch); err != nil {
		return err
	}
	if pgssSchema != nil {
		if err := c.collectStatements(ctx, conn, *pgssSchema, ch); err != nil {
			return err
		}
	}
	return nil
}

func (c *Collector) collectActivity(ctx context.Context, conn *pgx.Conn, ch chan<- prometheus.Metric) error {
	rows, err := conn.Query(ctx, activityQuery)
	if err != nil {
		return fmt.Errorf("pg_stat_activity: %w", err)
	}
	var (
		datname, state string
		count          int64
		longest        float64
		total          int64
		maxDuration    float64
		byState        = map[string]int64{}
		byDatabase     = map[string]int64{}
	)
	_, err = pgx.ForEachRow(rows, []any{&datname, &state, &count, &longest}, func() error {
		total += count
		if state == "" {
			// Another user's session, seen without pg_read_all_stats.
			state = "unknown"
		}
		byState[state] += count
		if datname != "" {
			byDatabase[datname] += count
		}
		maxDuration = max(maxDuration, longest)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pg_stat_activity: %w", err)
	}
	ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(queryDurationDesc, prometheus.GaugeValue, maxDuration)
	for s, n := range byState {
		ch <- prometheus.MustNewConstMetric(connectionsByStateDesc, prometheus.GaugeValue, float64(n), s)
	}
	for d, n := range byDatabase {
		ch <- prometheus.MustNewConstMetric(connectionsByDatabaseDesc, prometheus.GaugeValue, float64(n), d)
	}
	return nil
}

func (c *Collector) collectDatabases(ctx context.Context, conn *pgx.Conn, ch chan<- prometheus.Metric) error {
	rows, err := conn.Query(ctx, databasesQuery)
	if err != nil {
		return fmt.Errorf("pg_stat_database: %w", err)
	}
	var (
		datname                                    string
		commits, rollbacks, deadlocks, hits, reads int64
		size                                       *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&datname, &commits, &rollbacks, &deadlocks, &hits, &reads, &size}, func() error {
		ch <- prometheus.MustNewConstMetric(transactionsDesc, prometheus.CounterValue, float64(commits), datname, "commit")
		ch <- prometheus.MustNewConstMetric(transactionsDesc, prometheus.CounterValue, float64(rollbacks), datname, "rollback")
		ch <- prometheus.MustNewConstMetric(deadlocksDesc, prometheus.CounterValue, float64(deadlocks), datname)
		ch <- prometheus.MustNewConstMetric(blocksHitDesc, prometheus.CounterValue, float64(hits), datname)
		ch <- prometheus.MustNewConstMetric(blocksReadDesc, prometheus.CounterValue, float64(reads), datname)
		if hits+reads > 0 {
			ch <- prometheus.MustNewConstMetric(cacheHitRatioDesc, prometheus.GaugeValue, float64(hits)/float64(hits+reads), datname)
		}
		if size != nil {
			ch <- prometheus.MustNewConstMetric(databaseSizeDesc, prometheus.GaugeValue, float64(*size), datname)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pg_stat_database: %w", err)
	}
	return nil
}

// collectStatements reads pg_stat_statements. The extension can be
// installed without being loaded (shared_preload_libraries), and then the
// server refuses the query: that is skipped, as when it is not installed.
func (c *Collector) collectStatements(ctx context.Context, conn *pgx.Conn, schema string, ch chan<- prometheus.Metric) error {
	var calls, totalMillis float64
	err := conn.QueryRow(ctx, fmt.Sprintf(statementsQuery, pgx.Identifier{schema}.Sanitize())).Scan(&calls, &totalMillis)
	if err != nil {
		if isServerError(err) && ctx.Err() == nil {
			c.logger.Debug("pg_stat_statements is installed but cannot be read; skipped", "err", c.redact.wrap(err))
			return nil
		}
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	mean := 0.0
	if calls > 0 {
		mean = totalMillis / calls / 1000
	}
	ch <- prometheus.MustNewConstMetric(queryDurationMeanDesc, prometheus.GaugeValue, mean)
	ch <- prometheus.MustNewConstMetric(statementsTotalDesc, prometheus.GaugeValue, totalMillis/1000)
	ch <- prometheus.MustNewConstMetric(statementsCallsDesc, prometheus.CounterValue, calls)
	return nil
}

// collectArchiver reads pg_stat_archiver: what the RPO watch needs to
// know of WAL archiving.
func (c *Collector) collectArchiver(ctx context.Context, conn *pgx.Conn, ch chan<- prometheus.Metric) error {
	var (
		archived, failed       int64
		lastArchived, lastFail *float64
		archiving              bool
		pending                *bool
	)
	if err := conn.QueryRow(ctx, archiverQuery).Scan(&archived, &failed, &lastArchived, &lastFail, &archiving, &pending); err != nil {
		return fmt.Errorf("pg_stat_archiver: %w", err)
	}
	ch <- prometheus.MustNewConstMetric(archivedDesc, prometheus.CounterValue, float64(archived))
	ch <- prometheus.MustNewConstMetric(archiveFailedDesc, prometheus.CounterValue, float64(failed))
	if lastArchived != nil {
		ch <- prometheus.MustNewConstMetric(lastArchivedDesc, prometheus.GaugeValue, *lastArchived)
	}
	if lastFail != nil {
		ch <- prometheus.MustNewConstMetric(lastArchiveFailedDesc, prometheus.GaugeValue, *lastFail)
	}
	if archiving && pending != nil {
		ch <- prometheus.MustNewConstMetric(walPendingDesc, prometheus.GaugeValue, boolValue(*pending))
	}
	return nil
}

// collectReplication reads the replay lag of a primary's streaming replicas.
func (c *Collector) collectReplication(ctx context.Context, conn *pgx.Conn, ch chan<- prometheus.Metric) error {
	rows, err := conn.Query(ctx, replicationQuery)
	if err != nil {
		return fmt.Errorf("pg_stat_replication: %w", err)
	}
	var (
		app, addr string
		lag       float64
	)
	_, err = pgx.ForEachRow(rows, []any{&app, &addr, &lag}, func() error {
		ch <- prometheus.MustNewConstMetric(replayLagDesc, prometheus.GaugeValue, lag, app, addr)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pg_stat_replication: %w", err)
	}
	return nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
