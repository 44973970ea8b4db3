package postgres

import "github.com/prometheus/client_golang/prometheus"

// The metric names are the seed's signals and the DESIGN.md contract: no
// namespace, and no app/environment/service labels (the scrape adds them).
var (
	connectionsDesc = prometheus.NewDesc("connections",
		"Client connections to the server (client backends in pg_stat_activity).", nil, nil)
	connectionsByStateDesc = prometheus.NewDesc("connections_by_state",
		"Client connections to the server by state.", []string{"state"}, nil)
	connectionsByDatabaseDesc = prometheus.NewDesc("connections_by_database",
		"Client connections to the server by database.", []string{"datname"}, nil)
	connectionsMaxDesc = prometheus.NewDesc("connections_max",
		"The server's max_connections setting.", nil, nil)
	queryDurationDesc = prometheus.NewDesc("query_duration",
		"Seconds the longest running active statement has been running, 0 when none.", nil, nil)
	queryDurationMeanDesc = prometheus.NewDesc("query_duration_mean_seconds",
		"Mean execution time per call over all statements in pg_stat_statements.", nil, nil)
	statementsTotalDesc = prometheus.NewDesc("statements_total_seconds",
		"Total execution time of all statements in pg_stat_statements (resets with it).", nil, nil)
	statementsCallsDesc = prometheus.NewDesc("statements_calls_total",
		"Calls of all statements in pg_stat_statements (resets with it).", nil, nil)
	databaseSizeDesc = prometheus.NewDesc("database_size_bytes",
		"Disk space used by the database.", []string{"datname"}, nil)
	deadlocksDesc = prometheus.NewDesc("deadlocks_total",
		"Deadlocks detected in the database.", []string{"datname"}, nil)
	transactionsDesc = prometheus.NewDesc("transactions_total",
		"Transactions in the database by result (commit or rollback).", []string{"datname", "result"}, nil)
	blocksHitDesc = prometheus.NewDesc("blocks_hit_total",
		"Disk blocks found in the buffer cache.", []string{"datname"}, nil)
	blocksReadDesc = prometheus.NewDesc("blocks_read_total",
		"Disk blocks read from disk (missed in the buffer cache).", []string{"datname"}, nil)
	cacheHitRatioDesc = prometheus.NewDesc("cache_hit_ratio",
		"Buffer cache hits over all block accesses since the statistics reset (0..1); absent before any access.", []string{"datname"}, nil)
	replicationLagDesc = prometheus.NewDesc("replication_lag_seconds",
		"Seconds since the last replayed transaction on a replica, 0 when it has replayed all it received; only on replicas.", nil, nil)
	inRecoveryDesc = prometheus.NewDesc("in_recovery",
		"1 when the server is a replica (pg_is_in_recovery()), else 0.", nil, nil)
	replayLagDesc = prometheus.NewDesc("replication_replay_lag_seconds",
		"On a primary, a streaming replica's replay_lag (pg_stat_replication), 0 when it has caught up; needs pg_read_all_stats.", []string{"application_name", "client_addr"}, nil)
	archivedDesc = prometheus.NewDesc("archiver_archived_total",
		"WAL files archived (pg_stat_archiver.archived_count).", nil, nil)
	archiveFailedDesc = prometheus.NewDesc("archiver_failed_total",
		"Failed attempts to archive WAL files (pg_stat_archiver.failed_count).", nil, nil)
	lastArchivedDesc = prometheus.NewDesc("archiver_last_archived_timestamp_seconds",
		"Unix time the last WAL file was archived (pg_stat_archiver.last_archived_time); absent before the first.", nil, nil)
	lastArchiveFailedDesc = prometheus.NewDesc("archiver_last_failed_timestamp_seconds",
		"Unix time archiving last failed (pg_stat_archiver.last_failed_time); absent before the first failure.", nil, nil)
	walPendingDesc = prometheus.NewDesc("archiver_wal_pending",
		"1 when WAL has been written past the last archived WAL file (data not yet in the archive), else 0; only on a primary with archive_mode on.", nil, nil)
)
