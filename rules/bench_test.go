package rules

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/timestamp"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
	"github.com/vigil-sh/vigil/storage"
)

const (
	benchApps      = 1000
	benchInstances = 5
	benchRules     = 1000
	benchStep      = 15 * time.Second
	benchSpan      = 10 * time.Minute
)

// benchStart is where the benchmark's samples begin; evaluation is at its end.
var benchStart = time.Unix(1_700_000_000, 0).UTC()

// benchDB fills a TSDB head with 10k series (cpu_usage and
// http_requests_total for 1,000 apps x 5 instances), 10 minutes at 15s. The
// TSDB is opened as vigil opens it (storage.Open: isolation off among
// others), so that the figures are those of vigil's read path.
func benchDB(b *testing.B) *tsdb.DB {
	b.Helper()
	db, err := storage.Open(&storage.Options{Dir: b.TempDir()}, nil, nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, db.Close()) })
	refs := make([]struct {
		cpu, req labels.Labels
	}, 0, benchApps*benchInstances)
	for a := range benchApps {
		for i := range benchInstances {
			app, inst := fmt.Sprintf("app%d", a), fmt.Sprintf("i%d", i)
			refs = append(refs, struct{ cpu, req labels.Labels }{
				labels.FromStrings("__name__", "cpu_usage", "app", app, "environment", "production", "instance", inst),
				labels.FromStrings("__name__", "http_requests_total", "app", app, "environment", "production", "instance", inst),
			})
		}
	}
	for step := 0; time.Duration(step)*benchStep <= benchSpan; step++ {
		app := db.Appender(context.Background())
		ts := timestamp.FromTime(benchStart.Add(time.Duration(step) * benchStep))
		for n, r := range refs {
			_, err := app.Append(0, r.cpu, ts, float64((n*7+step*3)%100))
			require.NoError(b, err)
			_, err = app.Append(0, r.req, ts, float64(step*(n%50+1)))
			require.NoError(b, err)
		}
		require.NoError(b, app.Commit())
	}
	return db
}

// benchSeedRules are 1,000 seed rules over the benchmark's series: plain
// thresholds, rates, aggregations and range functions, each scoped to its app.
func benchSeedRules() []config.RuleConfig {
	rs := make([]config.RuleConfig, 0, benchRules)
	for n := range benchRules {
		var cond string
		switch n % 4 {
		case 0:
			cond = fmt.Sprintf("cpu_usage > %d", 50+n%50)
		case 1:
			cond = fmt.Sprintf("rate(http_requests_total[5m]) > %d", n%20)
		case 2:
			cond = fmt.Sprintf("avg by (instance) (cpu_usage) > %d", 40+n%60)
		default:
			cond = fmt.Sprintf("max_over_time(cpu_usage[5m]) > %d", 60+n%40)
		}
		rs = append(rs, config.RuleConfig{
			Name: fmt.Sprintf("rule_%d", n), Condition: cond,
			Duration: config.Duration(time.Minute), Severity: "warning",
			Labels: map[string]string{"app": fmt.Sprintf("app%d", n%benchApps), "environment": "production"},
		})
	}
	return rs
}

// BenchmarkRuleGroupEval evaluates one group of 1,000 seed rules, loaded
// through vigil's Manager (translation, scoping, GroupLoader), once per
// iteration.
func BenchmarkRuleGroupEval(b *testing.B) {
	db := benchDB(b)
	m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine()}, nil, nil)
	require.NoError(b, err)
	cfg := &config.Config{
		// Long intervals: the scheduled evaluation never runs here (at
		// the default 1 s it would write ALERTS at the wall clock's time,
		// after which the benchmark's own appends are out of bounds).
		Metrics: config.MetricsConfig{Interval: config.Duration(time.Hour)},
		Alerts: config.AlertsConfig{Rules: benchSeedRules(),
			EvaluationInterval: config.Duration(time.Hour)},
	}
	require.NoError(b, m.ApplyConfig(cfg))
	stop := runBenchManager(b, m)
	defer stop()

	groups := m.RuleGroups()
	require.Len(b, groups, 1)
	g := groups[0]
	require.Len(b, g.Rules(), benchRules)
	for _, ar := range g.AlertingRules() {
		ar.SetRestored(true)
	}
	benchEval(b, g, benchStart.Add(benchSpan), time.Second)
}

// BenchmarkRuleGroupEvalPrometheus evaluates the same 1,000 rules in a group
// built directly with Prometheus's rules.NewGroup, for comparison.
func BenchmarkRuleGroupEvalPrometheus(b *testing.B) {
	db := benchDB(b)
	engine := newTestEngine()
	rgs, errs := SeedGroups("bench", benchSeedRules(), nil)
	require.Empty(b, errs)
	logger := slog.New(slog.DiscardHandler)
	var rs []promrules.Rule
	for _, r := range rgs.Groups[0].Rules {
		rs = append(rs, plainRule(b, r, logger))
	}
	g := promrules.NewGroup(promrules.GroupOptions{
		Name: "bench", File: "bench.yml", Interval: time.Hour, Rules: rs,
		Opts: &promrules.ManagerOptions{
			QueryFunc:    promrules.EngineQueryFunc(engine, db),
			AppendableV2: db,
			Queryable:    db,
			Context:      context.Background(),
			Logger:       logger,
			NotifyFunc:   func(context.Context, string, ...*promrules.Alert) {},
		},
	})
	benchEval(b, g, benchStart.Add(benchSpan), time.Second)
}

func plainRule(b *testing.B, r rulefmt.Rule, logger *slog.Logger) promrules.Rule {
	expr, err := promqlparse.ParseExpr(r.Expr)
	require.NoError(b, err)
	return promrules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), 0,
		labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, logger)
}

// benchEval evaluates g once per iteration, the first at from, each every
// after the last, and fails on a rule's error.
func benchEval(b *testing.B, g *promrules.Group, from time.Time, every time.Duration) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		g.Eval(ctx, from.Add(time.Duration(i)*every))
	}
	b.StopTimer()
	for _, r := range g.Rules() {
		require.NoError(b, r.LastError(), r.Name())
	}
}

func runBenchManager(b *testing.B, m *Manager) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(b, func() bool {
		m.mtx.Lock()
		defer m.mtx.Unlock()
		return m.started
	}, 10*time.Second, time.Millisecond)
	return func() {
		cancel()
		require.NoError(b, <-done)
	}
}
