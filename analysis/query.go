package analysis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-sh/vigil/config"
)

// queries are the PromQL expressions of one analysis's measurements. Each
// returns one series per version (split) or one for the whole app
// (whole); %[1]s is the step's range.
type queries struct {
	requests, errors, latency, cpu, memory, failures string
}

// byVersion scopes a per-instance expression to versions: each instance's
// value is summed under the version its *_build_info says it runs.
func byVersion(expr, app, label string) string {
	return fmt.Sprintf(`sum by (%[3]s) ((%[1]s) * on (instance) group_left (%[3]s) max by (instance, %[3]s) ({__name__=~".+_build_info", app=%[2]s, %[3]s!=""}))`,
		expr, strconv.Quote(app), label)
}

// newQueries builds the expressions for the app's series under the
// analysis settings; split tells versions apart, else the app is one.
func newQueries(a config.AnalysisConfig, app string, split bool) queries {
	sel := fmt.Sprintf(`app=%s`, strconv.Quote(app))
	req := fmt.Sprintf(`sum by (instance) (increase(%s{%s}[%%[1]s]))`, a.RequestsMetric, sel)
	errs := fmt.Sprintf(`sum by (instance) (increase(%[1]s{%[2]s, code=~"5.."}[%%[1]s]) or increase(%[1]s{%[2]s, status=~"5.."}[%%[1]s]))`, a.RequestsMetric, sel)
	lat := fmt.Sprintf(`sum by (instance, le) (rate(%s_bucket{%s}[%%[1]s]))`, a.Latency.Metric, sel)
	cpu := fmt.Sprintf(`avg by (instance) (avg_over_time(cpu_usage{%s}[%%[1]s]))`, sel)
	mem := fmt.Sprintf(`avg by (instance) (avg_over_time(memory_usage{%s}[%%[1]s]))`, sel)
	q := quantile(a.Latency.Quantile)
	if !split {
		return queries{
			requests: `sum(` + req + `)`,
			errors:   `sum(` + errs + `)`,
			latency:  fmt.Sprintf(`histogram_quantile(%s, sum by (le) (%s))`, q, lat),
			cpu:      `avg(` + cpu + `)`,
			memory:   `avg(` + mem + `)`,
			// Each side "or vector(0)": an app with no probe (or no
			// scrape) still counts the failures of the other.
			failures: fmt.Sprintf(`(sum(count_over_time(probe_success{%[1]s}[%%[1]s]) - sum_over_time(probe_success{%[1]s}[%%[1]s])) or vector(0)) `+
				`+ (sum(count_over_time(up{%[1]s}[%%[1]s]) - sum_over_time(up{%[1]s}[%%[1]s])) or vector(0))`, sel),
		}
	}
	l := a.VersionLabel
	return queries{
		requests: byVersion(req, app, l),
		errors:   byVersion(errs, app, l),
		latency: fmt.Sprintf(`histogram_quantile(%s, sum by (%s, le) (%s * on (instance) group_left (%[2]s) max by (instance, %[2]s) ({__name__=~".+_build_info", app=%[4]s, %[2]s!=""})))`,
			q, l, lat, strconv.Quote(app)),
		// cpu and memory are averages over the version's instances.
		cpu:    fmt.Sprintf(`avg by (%[2]s) ((%[1]s) * on (instance) group_left (%[2]s) max by (instance, %[2]s) ({__name__=~".+_build_info", app=%[3]s, %[2]s!=""}))`, cpu, l, strconv.Quote(app)),
		memory: fmt.Sprintf(`avg by (%[2]s) ((%[1]s) * on (instance) group_left (%[2]s) max by (instance, %[2]s) ({__name__=~".+_build_info", app=%[3]s, %[2]s!=""}))`, mem, l, strconv.Quote(app)),
	}
}

func quantile(q float64) string { return strconv.FormatFloat(q, 'g', -1, 64) }

// measure returns the figures by version (the key "" for the whole app) of
// the interval rng ending at t.
func (m *Manager) measure(ctx context.Context, qs queries, label string, t time.Time, rng time.Duration) (map[string]*Figures, error) {
	out := map[string]*Figures{}
	get := func(v string) *Figures {
		f, ok := out[v]
		if !ok {
			f = &Figures{Version: v, Signals: map[string]float64{}}
			out[v] = f
		}
		return f
	}
	r := model.Duration(rng).String()
	type result struct {
		expr string
		set  func(f *Figures, v float64)
	}
	errs := map[string]float64{}
	for _, x := range []result{
		{qs.requests, func(f *Figures, v float64) { f.Requests = v }},
		{qs.errors, func(f *Figures, v float64) { errs[f.Version] = v }},
		{qs.latency, func(f *Figures, v float64) { f.Signals[config.SignalLatency] = v }},
		{qs.cpu, func(f *Figures, v float64) { f.Signals[config.SignalCPUUsage] = v }},
		{qs.memory, func(f *Figures, v float64) { f.Signals[config.SignalMemoryUsage] = v }},
		{qs.failures, func(f *Figures, v float64) { f.Failures = v }},
	} {
		if x.expr == "" {
			continue
		}
		vec, err := m.instant(ctx, fmt.Sprintf(x.expr, r), t)
		if err != nil {
			return nil, err
		}
		for _, s := range vec {
			if isNaN(s.F) {
				continue
			}
			x.set(get(s.Metric.Get(label)), s.F)
		}
	}
	for _, f := range out {
		if f.Requests > 0 {
			f.Signals[config.SignalErrorRate] = 100 * errs[f.Version] / f.Requests
		}
	}
	return out, nil
}

func (m *Manager) instant(ctx context.Context, expr string, t time.Time) (promql.Vector, error) {
	q, err := m.engine.NewInstantQuery(ctx, m.queryable, nil, expr, t)
	if err != nil {
		return nil, fmt.Errorf("analysis query %q: %w", expr, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("analysis query %q: %w", expr, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		return nil, fmt.Errorf("analysis query %q: %w", expr, err)
	}
	return vec, nil
}

func isNaN(f float64) bool { return f != f }
