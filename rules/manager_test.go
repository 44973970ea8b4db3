package rules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func openTestDB(t testing.TB) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func newTestEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
}

func appendSamples(t testing.TB, db *tsdb.DB, ts time.Time, v float64, series ...labels.Labels) {
	t.Helper()
	app := db.Appender(context.Background())
	for _, s := range series {
		_, err := app.Append(0, s, timestamp.FromTime(ts), v)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// notifications records what the Manager hands to NotifyFunc.
type notifications struct {
	mtx    sync.Mutex
	alerts []promrules.Alert
}

func (n *notifications) notify(_ context.Context, _ string, alerts ...*promrules.Alert) {
	n.mtx.Lock()
	defer n.mtx.Unlock()
	for _, a := range alerts {
		n.alerts = append(n.alerts, *a)
	}
}

func (n *notifications) count() int {
	n.mtx.Lock()
	defer n.mtx.Unlock()
	return len(n.alerts)
}

func highCPUConfig(interval, hold time.Duration) *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: "production",
		Metrics:     config.MetricsConfig{Interval: config.Duration(interval)},
		Alerts: config.AlertsConfig{EvaluationInterval: config.Duration(interval), Rules: []config.RuleConfig{{
			Name: "high_cpu", Condition: "cpu_usage > 80", Duration: config.Duration(hold),
			Severity: "critical", Summary: "CPU at {{ $value }}%",
			Labels: map[string]string{"app": "app", "environment": "production"},
		}}},
	}
}

// startManager runs a Manager over db until the returned stop is called.
func startManager(t *testing.T, db *tsdb.DB, opts Options, cfg *config.Config) (*Manager, func()) {
	t.Helper()
	opts.Queryable, opts.Appendable, opts.Engine = db, db, newTestEngine()
	m, err := New(&opts, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	return m, runManager(t, m)
}

// runManager runs m until the returned stop is called.
func runManager(t *testing.T, m *Manager) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	// Run loads the pending rules before it reports itself started.
	require.Eventually(t, func() bool {
		m.mtx.Lock()
		defer m.mtx.Unlock()
		return m.started
	}, 10*time.Second, time.Millisecond)
	return stop
}

// activeAlert returns the one active alert of the only alerting rule.
func activeAlert(m *Manager) *promrules.Alert {
	ars := m.AlertingRules()
	if len(ars) != 1 {
		return nil
	}
	as := ars[0].ActiveAlerts()
	if len(as) != 1 {
		return nil
	}
	return as[0]
}

func TestManagerPendingThenFiring(t *testing.T) {
	db := openTestDB(t)
	appendSamples(t, db, time.Now(), 95,
		labels.FromStrings("__name__", "cpu_usage", "app", "app", "environment", "production", "instance", "a"),
		// Outside the rule's scope: must not alert.
		labels.FromStrings("__name__", "cpu_usage", "instance", "b"),
		labels.FromStrings("__name__", "cpu_usage", "app", "other", "environment", "production"),
	)
	var n notifications
	hold := time.Second
	m, _ := startManager(t, db, Options{NotifyFunc: n.notify}, highCPUConfig(100*time.Millisecond, hold))

	require.Eventually(t, func() bool {
		a := activeAlert(m)
		return a != nil && a.State == promrules.StatePending
	}, 10*time.Second, 5*time.Millisecond, "alert never pending")
	require.Eventually(t, func() bool {
		a := activeAlert(m)
		return a != nil && a.State == promrules.StateFiring
	}, 10*time.Second, 10*time.Millisecond, "alert never firing")

	a := activeAlert(m)
	require.GreaterOrEqual(t, a.FiredAt.Sub(a.ActiveAt), hold)
	require.Equal(t, labels.FromStrings(
		"alertname", "high_cpu", "app", "app", "environment", "production", "instance", "a", "severity", "critical",
	), a.Labels)
	require.Equal(t, "CPU at 95%", a.Annotations.Get("summary"))

	require.Eventually(t, func() bool { return n.count() > 0 }, 10*time.Second, 10*time.Millisecond)
	n.mtx.Lock()
	require.Equal(t, "high_cpu", n.alerts[0].Labels.Get("alertname"))
	n.mtx.Unlock()

	groups := m.RuleGroups()
	require.Len(t, groups, 1)
	require.Equal(t, SeedGroupName, groups[0].Name())
	require.Equal(t, "vigil.yaml#alerts", groups[0].File())
	require.Equal(t, 100*time.Millisecond, groups[0].Interval())
}

func TestManagerRestoresForState(t *testing.T) {
	db := openTestDB(t)
	appendSamples(t, db, time.Now(), 95,
		labels.FromStrings("__name__", "cpu_usage", "app", "app", "environment", "production"))
	cfg := highCPUConfig(100*time.Millisecond, 2*time.Second)
	opts := Options{ForGracePeriod: 300 * time.Millisecond}

	first, stop := startManager(t, db, opts, cfg)
	require.Eventually(t, func() bool {
		a := activeAlert(first)
		return a != nil && a.State == promrules.StateFiring
	}, 15*time.Second, 10*time.Millisecond, "alert never firing before the restart")
	origActiveAt := activeAlert(first).ActiveAt
	stop()

	// A new Manager over the same TSDB, as after a restart.
	second, _ := startManager(t, db, opts, cfg)
	require.Eventually(t, func() bool {
		a := activeAlert(second)
		return a != nil && a.State == promrules.StateFiring
	}, 15*time.Second, 10*time.Millisecond, "alert never firing after the restart")
	// Not restored, the alert would have started pending again, at least
	// `for` (2s) after the original activation. ALERTS_FOR_STATE keeps seconds.
	require.Equal(t, origActiveAt.Unix(), activeAlert(second).ActiveAt.Unix())
}

func TestManagerDefaultForGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		set      time.Duration
		want     time.Duration
	}{
		{name: "three intervals", interval: 15 * time.Second, want: 45 * time.Second},
		{name: "at least 10s", interval: time.Second, want: 10 * time.Second},
		{name: "no interval: evaluation every second", want: 10 * time.Second},
		{name: "explicit", interval: 15 * time.Second, set: time.Second, want: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t)
			m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine(), ForGracePeriod: tc.set}, nil, nil)
			require.NoError(t, err)
			require.NoError(t, m.ApplyConfig(highCPUConfig(tc.interval, time.Minute)))
			require.Equal(t, tc.want, m.promOpts.ForGracePeriod)
			// A reload does not move it, and before Run it replaces the
			// rules Run will load.
			require.NoError(t, m.ApplyConfig(highCPUConfig(time.Hour, 2*time.Minute)))
			require.Equal(t, tc.want, m.promOpts.ForGracePeriod)
			require.Empty(t, m.RuleGroups())

			runManager(t, m)
			groups := m.RuleGroups()
			require.Len(t, groups, 1)
			require.Equal(t, time.Hour, groups[0].Interval())
			require.Equal(t, 2*time.Minute, m.AlertingRules()[0].HoldDuration())
		})
	}
}

func TestManagerApplyConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	write("rules/database.yml", "alerts:\n  rules:\n    - {name: db_down, condition: up == 0, duration: 1m, labels: {app: database}}\n")
	write("rules/recording.yml", "groups:\n  - name: rec\n    rules:\n      - record: app:up:sum\n        expr: sum by (app) (up)\n")
	write("broken/bad.yml", "alerts:\n  rules:\n    - name: oops\n      condition: up ==\n")

	db := openTestDB(t)
	reg := prometheus.NewRegistry()
	m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine()}, nil, reg)
	require.NoError(t, err)

	good := highCPUConfig(15*time.Second, time.Minute)
	good.File = filepath.Join(dir, "vigil.yml")
	good.RuleFiles = []string{"rules/*.yml", "missing/*.yml"}
	require.NoError(t, m.ApplyConfig(good))
	runManager(t, m)

	type groupID struct{ file, name string }
	var got []groupID
	for _, g := range m.RuleGroups() {
		got = append(got, groupID{g.File(), g.Name()})
	}
	require.Equal(t, []groupID{
		{filepath.Join(dir, "rules/database.yml"), "database"},
		{filepath.Join(dir, "rules/recording.yml"), "rec"},
		{good.File + "#alerts", SeedGroupName},
	}, got)
	require.Len(t, m.AlertingRules(), 2)
	require.InDelta(t, 1, testutil.ToFloat64(m.reloadSuccess), 0)
	before := m.RuleGroups()

	for _, tc := range []struct {
		name    string
		mutate  func(c *config.Config)
		wantErr []string
	}{
		{
			name: "bad seed rule in the config",
			mutate: func(c *config.Config) {
				c.Alerts.Rules = append(c.Alerts.Rules, config.RuleConfig{Name: "broken", Condition: "cpu_usage >"})
			},
			wantErr: []string{filepath.Join(dir, "vigil.yml") + `: alerts.rules[1] "broken": condition: parse`},
		},
		{
			name:    "bad rule file",
			mutate:  func(c *config.Config) { c.RuleFiles = append(c.RuleFiles, "broken/*.yml") },
			wantErr: []string{filepath.Join(dir, "broken/bad.yml") + ":3: rule 1 (oops): condition: parse"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := *good
			bad.Alerts.Rules = append([]config.RuleConfig(nil), good.Alerts.Rules...)
			bad.RuleFiles = append([]string(nil), good.RuleFiles...)
			tc.mutate(&bad)
			err := m.ApplyConfig(&bad)
			require.Error(t, err)
			for _, w := range tc.wantErr {
				require.ErrorContains(t, err, w)
			}
			require.ErrorContains(t, err, "previous rules kept")
			require.Equal(t, before, m.RuleGroups(), "old rules must stay")
			require.InDelta(t, 0, testutil.ToFloat64(m.reloadSuccess), 0)
		})
	}

	// The same config again keeps the very same groups (and their state).
	require.NoError(t, m.ApplyConfig(good))
	require.Equal(t, before, m.RuleGroups())
	require.InDelta(t, 1, testutil.ToFloat64(m.reloadSuccess), 0)

	// Prometheus's rule metrics are on the registry we passed.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Contains(t, names, "prometheus_rule_group_rules")
	require.Contains(t, names, "vigil_rules_last_reload_successful")
}

func TestManagerRunTwice(t *testing.T) {
	db := openTestDB(t)
	m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine()}, nil, nil)
	require.NoError(t, err)
	runManager(t, m)
	require.ErrorContains(t, m.Run(context.Background()), "Run called twice")
}

func TestNewRequiresDependencies(t *testing.T) {
	_, err := New(&Options{}, nil, nil)
	require.ErrorContains(t, err, "Engine, Queryable and Appendable must be set")
}
