package rules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// TestOwnRulesAreAGroupApart: the built-in default runs the seed's rules in
// the seed group and vigil's own rules in a group of their own.
func TestOwnRulesAreAGroupApart(t *testing.T) {
	cfg := config.Default()
	ids, virtual, err := loadSources(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Contains(t, ids, SeedIdentifier(cfg))
	require.Contains(t, ids, OwnIdentifier(cfg))

	seed := virtual[SeedIdentifier(cfg)].Groups
	require.Len(t, seed, 1)
	require.Equal(t, SeedGroupName, seed[0].Name)
	require.Len(t, seed[0].Rules, 9)

	own := virtual[OwnIdentifier(cfg)].Groups
	require.Len(t, own, 1)
	require.Equal(t, OwnGroupName, own[0].Name)
	var names []string
	for _, r := range own[0].Rules {
		names = append(names, r.Alert)
	}
	require.Equal(t, []string{"app_down", "infra_high_cpu", "infra_high_memory", config.RuleLimitRuleName}, names)
	// Scoped to their app only: no environment matcher is added.
	require.Equal(t, `cpu_usage{app="infrastructure"} > 90`, own[0].Rules[1].Expr)
}

// TestRuleLimitPages: a rule pushed over alerts.limit sends no alert at
// all (Prometheus drops the evaluation), so vigil's own rule_limit_exceeded
// fires for it, naming the rule, once vigil_rule_limit_exceeded is scraped.
// Its input exists at 0 for every loaded rule (its own included), so the
// dead-rule check never reports it while no rule is over the limit.
func TestRuleLimitPages(t *testing.T) {
	const series = 50
	db := openTestDB(t)
	t0 := time.Now().Truncate(time.Second)
	ls := make([]labels.Labels, series)
	for i := range ls {
		ls[i] = labels.FromStrings("__name__", "x", "i", string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yml")
	require.NoError(t, os.WriteFile(file, []byte(`alerts:
  limit: 10
  evaluation_interval: 1h
  absent_after: 10m
  rules:
    - name: x_storm
      condition: x > 0
      severity: warning
`), 0o644))
	cfg, err := config.Load(file)
	require.NoError(t, err)

	now := t0
	reg := prometheus.NewRegistry()
	m, err := New(&Options{Queryable: db, Appendable: db, Engine: newTestEngine(), HealthInterval: time.Hour,
		Now: func() time.Time { return now }}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	var cleared []string
	m.OnLimitCleared(func(group, rule string) { cleared = append(cleared, group+"/"+rule) })
	runManager(t, m)

	// scrapeSelf appends vigil's gathered vigil_rule_limit_exceeded as the
	// self scrape does (app="vigil").
	scrapeSelf := func(at time.Time) int {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		n := 0
		for _, mf := range mfs {
			if mf.GetName() != "vigil_rule_limit_exceeded" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				b := labels.NewBuilder(labels.FromStrings("__name__", mf.GetName(), "app", "vigil"))
				for _, lp := range mt.GetLabel() {
					b.Set(lp.GetName(), lp.GetValue())
				}
				appendSamples(t, db, at, mt.GetGauge().GetValue(), b.Labels())
				n++
			}
		}
		return n
	}
	evalAll := func(at time.Time) {
		for _, g := range m.RuleGroups() {
			g.Eval(context.Background(), at)
		}
	}
	firing := func() []string {
		var out []string
		for _, ar := range m.AlertingRules() {
			if ar.Name() != config.RuleLimitRuleName {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				out = append(out, a.Labels.Get("rule")+"/"+a.Labels.Get("severity"))
			}
		}
		return out
	}

	// Under the limit: the input exists at 0 for every rule, nothing fires,
	// and after absent_after the limit rule is not dead.
	appendSamples(t, db, t0, 1, ls[:5]...)
	evalAll(t0)
	require.Equal(t, 2, scrapeSelf(t0), "one series per loaded rule, its own included")
	evalAll(t0)
	require.Empty(t, firing())
	now = t0.Add(11 * time.Minute)
	scrapeSelf(now)
	m.CheckHealth(context.Background())
	m.CheckHealth(context.Background())
	now = t0.Add(22 * time.Minute)
	scrapeSelf(now)
	m.CheckHealth(context.Background())
	for _, d := range m.DeadRules() {
		require.NotEqual(t, config.RuleLimitRuleName, d.Rule, "dead: %+v", d)
	}

	// Over the limit: x_storm sends nothing, rule_limit_exceeded fires.
	at := t0.Add(23 * time.Minute)
	appendSamples(t, db, at, 1, ls...)
	evalAll(at)
	scrapeSelf(at)
	evalAll(at.Add(time.Second))
	require.Equal(t, []string{"x_storm/critical"}, firing())
	require.True(t, m.OverLimit("x_storm"))
	require.False(t, m.OverLimit(config.RuleLimitRuleName))
	m.CheckHealth(context.Background())
	require.Empty(t, cleared)

	// Back under the limit: the check says so once, for the incidents'
	// reconcile.
	at = t0.Add(30 * time.Minute) // past the lookback of the storm's samples
	appendSamples(t, db, at, 1, ls[:5]...)
	evalAll(at)
	require.False(t, m.OverLimit("x_storm"))
	m.CheckHealth(context.Background())
	m.CheckHealth(context.Background())
	require.Equal(t, []string{SeedGroupName + "/x_storm"}, cleared)
}
