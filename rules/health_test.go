package rules

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// syncBuffer is a log destination the test reads while the manager writes.
type syncBuffer struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.String()
}

// The seed's high_network_usage on a machine without link speed: no
// network_usage series, so the rule can never fire. vigil says so after
// absent_after, not before, once in the log, in a metric and in
// DeadRules, and takes it back when the series appears.
func TestDeadRuleInputs(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Now().Truncate(time.Second)
	var clock struct {
		sync.Mutex
		now time.Time
	}
	clock.now = t0
	setNow := func(d time.Duration) {
		clock.Lock()
		defer clock.Unlock()
		clock.now = t0.Add(d)
	}
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	m, err := New(&Options{
		Queryable: db, Appendable: db, Engine: newTestEngine(),
		HealthInterval: time.Hour, // the test drives the check
		Now: func() time.Time {
			clock.Lock()
			defer clock.Unlock()
			return clock.now
		},
	}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	require.NoError(t, err)
	cfg := &config.Config{
		Service: "checkout", Environment: "production",
		Metrics: config.MetricsConfig{Interval: config.Duration(time.Hour)},
		Alerts: config.AlertsConfig{
			EvaluationInterval: config.Duration(time.Hour), // no evaluation needed
			AbsentAfter:        config.Duration(10 * time.Minute),
			Rules: []config.RuleConfig{
				{Name: "high_disk_usage", Condition: "disk_usage > 80", Duration: config.Duration(5 * time.Minute), Severity: "warning",
					Labels: map[string]string{"app": "infrastructure", "environment": "production"}},
				{Name: "high_network_usage", Condition: "network_usage > 80", Duration: config.Duration(5 * time.Minute), Severity: "warning",
					Labels: map[string]string{"app": "infrastructure", "environment": "production"}},
				{Name: "nothing_missing", Condition: `absent(up{job="gone"})`, Severity: "warning"},
			},
		},
	}
	require.NoError(t, m.ApplyConfig(cfg))
	runManager(t, m)

	disk := labels.FromStrings("__name__", "disk_usage", "app", "infrastructure", "environment", "production", "mountpoint", "/")
	netSel := `network_usage{app="infrastructure",environment="production"}`
	diskSel := `disk_usage{app="infrastructure",environment="production"}`
	absent := func(rule, sel string) float64 {
		return testutil.ToFloat64(onlySeries(t, reg, "vigil_rule_inputs_absent", map[string]string{"rule_group": SeedGroupName, "rule": rule, "selector": sel}))
	}
	warnings := func() int { return strings.Count(logs.String(), "rule input matches no series") }

	for _, step := range []struct {
		at        time.Duration
		appendNet bool
		wantDead  []string
	}{
		{at: 0},               // just started: nothing judged
		{at: 5 * time.Minute}, // still within absent_after of the start
		{at: 10 * time.Minute, wantDead: []string{netSel}},
		{at: 11 * time.Minute, wantDead: []string{netSel}},
		{at: 12 * time.Minute, appendNet: true}, // the link speed was configured
	} {
		setNow(step.at)
		appendSamples(t, db, t0.Add(step.at), 50, disk)
		if step.appendNet {
			appendSamples(t, db, t0.Add(step.at), 50, labels.FromStrings("__name__", "network_usage", "app", "infrastructure", "environment", "production", "device", "eth0"))
		}
		m.CheckHealth(context.Background())

		var got []string
		for _, d := range m.DeadRules() {
			require.Equal(t, "high_network_usage", d.Rule)
			require.Equal(t, SeedGroupName, d.Group)
			require.Equal(t, t0, d.Since)
			got = append(got, d.Selector)
		}
		require.Equal(t, step.wantDead, got, "at %s", step.at)
		want := 0.0
		if len(step.wantDead) > 0 {
			want = 1
		}
		require.Equal(t, want, absent("high_network_usage", netSel), "at %s", step.at)
		require.Equal(t, 0.0, absent("high_disk_usage", diskSel), "at %s", step.at)
	}
	require.Equal(t, 1, warnings(), "the dead rule is logged once:\n%s", logs.String())
	require.Contains(t, logs.String(), "rule input matches series again")
	// absent() is meant to see nothing: never an input of a dead rule.
	require.NotContains(t, logs.String(), `gone`)
}

// onlySeries returns the one series of name whose labels include want.
func onlySeries(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
			g.Set(mt.GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return nil
}

// A rule over 20,000 series with alerts.limit 1,000: the recording rule
// writes nothing, the alerting rule raises no alert, both say why in
// vigil_rule_limit_exceeded; a rule under the limit and a group whose own
// limit is higher still work.
func TestRuleLimitBoundsSeries(t *testing.T) {
	const series, limit = 20_000, 1_000
	db := openTestDB(t)
	t0 := time.Now().Truncate(time.Second)
	ls := make([]labels.Labels, series)
	for i := range ls {
		ls[i] = labels.FromStrings("__name__", "x", "i", fmt.Sprint(i))
	}
	appendSamples(t, db, t0, 1, ls...)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "storm.yml"), []byte(`groups:
- name: storm
  rules:
  - record: x_copy
    expr: x
  - alert: x_storm
    expr: x > 0
  - record: x_few
    expr: x{i=~"1.."}
- name: own_limit
  limit: 30000
  rules:
  - record: x_copy_allowed
    expr: x
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "seed.yml"), []byte(`alerts:
  limit: 5
  rules:
    - name: x_seed_storm
      condition: x > 0
      severity: warning
`), 0o644))
	reg := prometheus.NewRegistry()
	m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine()}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	cfg := &config.Config{
		Service: "checkout", Environment: "production", File: filepath.Join(dir, "vigil.yml"),
		Metrics:   config.MetricsConfig{Interval: config.Duration(time.Hour)},
		Alerts:    config.AlertsConfig{EvaluationInterval: config.Duration(time.Hour), Limit: limit},
		RuleFiles: []string{"storm.yml", "seed.yml"},
	}
	require.NoError(t, m.ApplyConfig(cfg))
	runManager(t, m)

	// Evaluate each group once, at the samples' time.
	groups := m.RuleGroups()
	require.Len(t, groups, 3)
	for _, g := range groups {
		g.Eval(context.Background(), t0)
	}

	exceeded := func(group, rule string) float64 {
		return testutil.ToFloat64(onlySeries(t, reg, "vigil_rule_limit_exceeded", map[string]string{"rule_group": group, "rule": rule}))
	}
	for _, tc := range []struct {
		group, rule string
		wantErr     string
		wantSeries  int
	}{
		{"storm", "x_copy", "exceeded limit of 1000 with 20000 series", 0},
		{"storm", "x_storm", "exceeded limit of 1000 with 20000 alerts", 0},
		{"storm", "x_few", "", 100},
		{"own_limit", "x_copy_allowed", "", series},
		{"seed", "x_seed_storm", "exceeded limit of 5 with 20000 alerts", 0},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			var lastErr error
			var active int
			for _, g := range groups {
				for _, r := range g.Rules() {
					if g.Name() == tc.group && r.Name() == tc.rule {
						lastErr = r.LastError()
					}
				}
			}
			for _, ar := range m.AlertingRules() {
				if ar.Name() == tc.rule {
					active = len(ar.ActiveAlerts())
				}
			}
			if tc.wantErr == "" {
				require.NoError(t, lastErr)
				require.Equal(t, 0.0, exceeded(tc.group, tc.rule))
				require.Equal(t, tc.wantSeries, countSeries(t, db, tc.rule))
				return
			}
			require.EqualError(t, lastErr, tc.wantErr)
			require.Equal(t, 1.0, exceeded(tc.group, tc.rule))
			require.Zero(t, active, "alerts of a rule over its limit")
			require.Zero(t, countSeries(t, db, tc.rule), "series written by a rule over its limit")
		})
	}
}

// countSeries counts the series of one metric name in db.
func countSeries(t *testing.T, db *tsdb.DB, name string) int {
	t.Helper()
	q, err := db.Querier(0, timestamp.FromTime(time.Now().Add(time.Hour)))
	require.NoError(t, err)
	defer q.Close()
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", name)
	ss := q.Select(context.Background(), false, nil, m)
	n := 0
	for ss.Next() {
		n++
	}
	require.NoError(t, ss.Err())
	return n
}

// Two alerting rules of one name in one group (a warning and a critical
// threshold, as Prometheus allows) share the health series: gathering the
// registry must not fail on a duplicate series.
func TestRuleHealthSameNameTwice(t *testing.T) {
	db := openTestDB(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "twice.yml"), []byte(`groups:
- name: cpu
  rules:
  - alert: high_cpu
    expr: cpu_usage > 80
    labels: {severity: warning}
  - alert: high_cpu
    expr: cpu_usage > 95
    labels: {severity: critical}
`), 0o644))
	reg := prometheus.NewRegistry()
	m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine()}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(&config.Config{
		Service: "checkout", Environment: "production", File: filepath.Join(dir, "vigil.yml"),
		Metrics:   config.MetricsConfig{Interval: config.Duration(time.Hour)},
		Alerts:    config.AlertsConfig{EvaluationInterval: config.Duration(time.Hour)},
		RuleFiles: []string{"twice.yml"},
	}))
	runManager(t, m)
	_, err = reg.Gather()
	require.NoError(t, err)
	require.Equal(t, 0.0, testutil.ToFloat64(onlySeries(t, reg, "vigil_rule_limit_exceeded", map[string]string{"rule_group": "cpu", "rule": "high_cpu"})))
}

// countingQueryable counts the health check's selects by metric name.
type countingQueryable struct {
	storage.Queryable
	mtx     sync.Mutex
	selects map[string]int
}

func (c *countingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := c.Queryable.Querier(mint, maxt)
	return countingQuerier{Querier: q, c: c}, err
}

type countingQuerier struct {
	storage.Querier
	c *countingQueryable
}

func (q countingQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if hints != nil && hints.Func == "series" {
		q.c.mtx.Lock()
		for _, m := range ms {
			if m.Name == labels.MetricName {
				q.c.selects[m.Value]++
			}
		}
		q.c.mtx.Unlock()
	}
	return q.Querier.Select(ctx, sorted, hints, ms...)
}

// A selector that many rules share is queried once per health check, and
// each rule still reports it.
func TestRuleHealthQueriesASharedSelectorOnce(t *testing.T) {
	db := openTestDB(t)
	cq := &countingQueryable{Queryable: db, selects: map[string]int{}}
	reg := prometheus.NewRegistry()
	m, err := New(&Options{Queryable: cq, Appendable: db, Engine: newTestEngine(), HealthInterval: time.Hour},
		slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	lbls := map[string]string{"app": "infrastructure", "environment": "production"}
	require.NoError(t, m.ApplyConfig(&config.Config{
		Service: "checkout", Environment: "production",
		Metrics: config.MetricsConfig{Interval: config.Duration(time.Hour)},
		Alerts: config.AlertsConfig{
			EvaluationInterval: config.Duration(time.Hour),
			AbsentAfter:        config.Duration(10 * time.Minute),
			Rules: []config.RuleConfig{
				{Name: "disk_warning", Condition: "disk_usage > 80", Severity: "warning", Labels: lbls},
				{Name: "disk_critical", Condition: "disk_usage > 95", Severity: "critical", Labels: lbls},
			},
		},
	}))
	runManager(t, m)
	cq.mtx.Lock()
	clear(cq.selects)
	cq.mtx.Unlock()
	m.CheckHealth(context.Background())
	cq.mtx.Lock()
	require.Equal(t, 1, cq.selects["disk_usage"])
	cq.mtx.Unlock()
	sel := `disk_usage{app="infrastructure",environment="production"}`
	for _, rule := range []string{"disk_warning", "disk_critical"} {
		require.Equal(t, 0.0, testutil.ToFloat64(onlySeries(t, reg, "vigil_rule_inputs_absent", map[string]string{"rule_group": SeedGroupName, "rule": rule, "selector": sel})))
	}
}
