package rules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/collector/postgres"
	"github.com/vigil-sh/vigil/collector/postgres/pgtest"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/backup"
)

// pgSource runs the database collector's Update as a prometheus.Collector.
type pgSource struct{ c *postgres.Collector }

func (pgSource) Describe(chan<- *prometheus.Desc) {}

func (s pgSource) Collect(out chan<- prometheus.Metric) {
	ch := make(chan prometheus.Metric)
	done := make(chan error, 1)
	go func() {
		done <- s.c.Update(context.Background(), ch)
		close(ch)
	}()
	for m := range ch {
		out <- m
	}
	if err := <-done; err != nil {
		panic(err)
	}
}

// TestDRWatchRules runs the rules the backup and disaster_recovery blocks
// give vigil's own group over a real PostgreSQL that archives its WAL, and
// vigil's backup records, at injected evaluation times: backup_missed fires
// for a per-minute schedule with no backup, and again when the next backup
// is late; rpo_at_risk stays quiet while every WAL file is archived, warns
// when archiving has stopped for longer than half the rpo (1m) and turns
// critical past it; a fresh backup protects the data again.
func TestDRWatchRules(t *testing.T) {
	if _, err := pgtest.FindBin(); err != nil {
		t.Skipf("PostgreSQL server binaries are missing: %v", err)
	}
	archive := pgtest.ArchiveDir(t)
	cl := pgtest.StartCluster(t, pgtest.WithArchive())
	pc, err := postgres.New(&config.DatabaseCollectorConfig{DSN: config.Secret(cl.DSN()), Timeout: config.Duration(5 * time.Second), MaxConns: 1}, nil)
	require.NoError(t, err)
	t.Cleanup(pc.Close)
	pgReg := prometheus.NewRegistry()
	pgReg.MustRegister(pgSource{pc})

	file := filepath.Join(t.TempDir(), "vigil.yml")
	require.NoError(t, os.WriteFile(file, []byte(`alerts:
  evaluation_interval: 1h
backup:
  schedule: "* * * * *"
  retention: 1d
  storage: local
disaster_recovery:
  rto: 10m
  rpo: 1m
`), 0o644))
	cfg, err := config.Load(file)
	require.NoError(t, err)

	store, err := notifier.OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	clock := time.Now().Add(-time.Hour)
	vigilReg := prometheus.NewRegistry()
	backups, err := backup.New(&backup.Options{KV: store.KV("backup"), Clock: func() time.Time { return clock }}, nil, vigilReg)
	require.NoError(t, err)
	require.NoError(t, backups.ApplyConfig(cfg), "the watch starts an hour ago")

	// rulesOver returns scrape, which appends what vigil and the database
	// collector export now, stamped at, as the self scrape and the
	// database scrape would, and firing, which evaluates the rules at a
	// time and returns the firing DR alerts as name/severity → value; each
	// part of the test has its own TSDB and rules, so that its times need
	// not follow the other's.
	rulesOver := func() (func(at time.Time, instance string) map[string]float64, func(at time.Time) map[string]float64) {
		db := openTestDB(t)
		m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine(), HealthInterval: time.Hour},
			slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, m.ApplyConfig(cfg))
		runManager(t, m)
		// scrape appends what vigil and the database collector export now,
		// stamped at, as the self scrape and the database scrape would.
		scrape := func(at time.Time, instance string) map[string]float64 {
			values := map[string]float64{}
			app := db.Appender(context.Background())
			for _, src := range []struct {
				g   prometheus.Gatherer
				app string
			}{{vigilReg, "vigil"}, {pgReg, "database"}} {
				mfs, err := src.g.Gather()
				require.NoError(t, err)
				for _, mf := range mfs {
					for _, mt := range mf.GetMetric() {
						b := labels.NewBuilder(labels.FromStrings("__name__", mf.GetName(), "app", src.app, "instance", instance))
						for _, lp := range mt.GetLabel() {
							b.Set(lp.GetName(), lp.GetValue())
						}
						v := value(mf.GetType(), mt)
						values[mf.GetName()] = v
						_, err := app.Append(0, b.Labels(), at.UnixMilli(), v)
						require.NoError(t, err)
					}
				}
			}
			require.NoError(t, app.Commit())
			return values
		}
		// firing evaluates the rules at and returns the firing DR alerts as
		// name/severity → value.
		firing := func(at time.Time) map[string]float64 {
			for _, g := range m.RuleGroups() {
				g.Eval(context.Background(), at)
			}
			out := map[string]float64{}
			for _, ar := range m.AlertingRules() {
				switch ar.Name() {
				case config.BackupMissedRuleName, config.RPOAtRiskRuleName, config.ReplicationLaggingRuleName:
				default:
					continue
				}
				for _, a := range ar.ActiveAlerts() {
					if a.State == promrules.StateFiring {
						out[ar.Name()+"/"+a.Labels.Get("severity")] = a.Value
					}
				}
			}
			return out
		}
		return scrape, firing
	}
	names := func(m map[string]float64) []string {
		out := []string{}
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	admin, err := pgx.Connect(context.Background(), cl.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	exec := func(sql string) {
		t.Helper()
		_, err := admin.Exec(context.Background(), sql)
		require.NoError(t, err, sql)
	}
	// until gathers the database collector until cond holds, switching WAL
	// files meanwhile, for at most 20 s.
	until := func(what string, cond func(v map[string]float64) bool) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			v := gatherValues(t, pgReg)
			if cond(v) {
				return v
			}
			require.True(t, time.Now().Before(deadline), "%s: not within 20s: %v", what, v)
			exec("INSERT INTO t SELECT generate_series(1, 100)")
			exec("SELECT pg_switch_wal()")
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Archiving works: every WAL file written is archived. An hour without
	// a backup misses the per-minute schedule; the archived WAL protects
	// the data, however long ago the last file was archived.
	exec("ALTER SYSTEM SET archive_command = '" + pgtest.CopyArchiveCommand(archive) + "'")
	exec("SELECT pg_reload_conf()")
	exec("CREATE TABLE t (x int)")
	v := until("archived", func(v map[string]float64) bool {
		p, ok := v["archiver_wal_pending"]
		return ok && p == 0 && v["archiver_archived_total"] >= 1
	})
	scrape, firing := rulesOver()
	archived := time.Unix(0, int64(v["archiver_last_archived_timestamp_seconds"]*1e9))
	at := archived.Add(45 * time.Second)
	scrape(at, "archiving")
	got := firing(at)
	require.Equal(t, []string{"backup_missed/critical"}, names(got), "nothing is pending in the WAL")
	require.InDelta(t, time.Hour.Seconds()+45, got["backup_missed/critical"], 60, "no backup since the watch started")

	// archive_command fails: WAL is pending and ages from the last
	// archived file.
	exec("ALTER SYSTEM SET archive_command = 'false'")
	exec("SELECT pg_reload_conf()")
	v = until("archiving fails", func(v map[string]float64) bool {
		return v["archiver_failed_total"] >= 1 && v["archiver_wal_pending"] == 1
	})
	last := time.Unix(0, int64(v["archiver_last_archived_timestamp_seconds"]*1e9))
	exposure := func(at time.Time) float64 { return at.Sub(last).Seconds() }
	scrape, firing = rulesOver()

	at = last.Add(20 * time.Second)
	scrape(at, "failing")
	require.Equal(t, []string{"backup_missed/critical"}, names(firing(at)), "below half the rpo")
	at = last.Add(45 * time.Second)
	scrape(at, "failing")
	got = firing(at)
	require.Equal(t, []string{"backup_missed/critical", "rpo_at_risk/warning"}, names(got), "over half the rpo")
	require.InDelta(t, exposure(at), got["rpo_at_risk/warning"], 1)
	at = last.Add(90 * time.Second)
	scrape(at, "failing")
	got = firing(at)
	require.Equal(t, []string{"backup_missed/critical", "rpo_at_risk/critical"}, names(got), "over the rpo")
	require.InDelta(t, exposure(at), got["rpo_at_risk/critical"], 1)

	// A backup (as POST /api/v1/backups records it) protects the data
	// again, and meets the schedule.
	clock = at.Add(10 * time.Second)
	_, err = backups.Record(backup.Backup{OK: true, Size: 1 << 20, Location: "file:///backups/1"})
	require.NoError(t, err)
	at = clock.Add(20 * time.Second)
	scrape(at, "failing")
	require.Empty(t, names(firing(at)), "a 20 s old backup")

	// The next backup is late: a per-minute schedule allows 1m and a
	// minute's grace.
	at = clock.Add(2*time.Minute + 10*time.Second)
	scrape(at, "failing")
	got = firing(at)
	require.Equal(t, []string{"backup_missed/critical", "rpo_at_risk/critical"}, names(got))
	require.InDelta(t, 130, got["backup_missed/critical"], 1)
	require.InDelta(t, 130, got["rpo_at_risk/critical"], 1, "the backup is what protects the data now")
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

func gatherValues(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			out[mf.GetName()] = value(mf.GetType(), mt)
		}
	}
	return out
}

// TestInputSelectorsSkipAlternatives: the dead-rule check does not judge
// the sides of `or`, so the DR watch's rules (a backup, archived WAL or a
// replica protects the data, and a setup may have only one) are not dead
// for the ones a setup lacks; other selectors still are judged.
func TestInputSelectorsSkipAlternatives(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vigil.yml")
	require.NoError(t, os.WriteFile(file, []byte(`backup: {schedule: "0 0 * * *", retention: 30d, storage: S3}
disaster_recovery:
  rto: 4h
  rpo: 1h
  replication: {enabled: true, interval: 5m}
`), 0o644))
	cfg, err := config.Load(file)
	require.NoError(t, err)
	for _, r := range cfg.OwnRules {
		expr, err := promqlparse.ParseExpr(r.Condition)
		require.NoError(t, err)
		got := inputSelectors(expr)
		switch r.Name {
		case config.BackupMissedRuleName, config.RPOAtRiskRuleName, config.ReplicationLaggingRuleName:
			require.Empty(t, got, r.Name)
		}
	}
	expr, err := promqlparse.ParseExpr(`cpu_usage > 90 and (disk_usage or network_usage)`)
	require.NoError(t, err)
	got := inputSelectors(expr)
	require.Len(t, got, 1)
	require.Contains(t, got, "cpu_usage")
}
