package rules

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	promrules "github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"
)

// RunUnitTests runs rule unit test files in promtool's format and writes a
// report like promtool's to out: "Unit Testing:  FILE", then "  SUCCESS" or
// "  FAILED:" and one message per failed expectation. rule_files in a test
// file are relative to it, may be globs and may be in either shape LoadFile
// accepts. It reports whether any test failed.
func RunUnitTests(files []string, out io.Writer) (failed bool) {
	for _, f := range files {
		fmt.Fprintf(out, "Unit Testing:  %s\n", f)
		errs := runTestFile(f, out)
		if len(errs) > 0 {
			failed = true
			fmt.Fprintln(out, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(out, e.Error())
				fmt.Fprintln(out)
			}
		} else {
			fmt.Fprintln(out, "  SUCCESS")
		}
		fmt.Fprintln(out)
	}
	return failed
}

// unitTestFile is one test file in promtool's format.
type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	GroupEvalOrder     []string       `yaml:"group_eval_order"`
	Tests              []testGroup    `yaml:"tests"`
}

// testGroup is a set of input series and the expectations on them.
type testGroup struct {
	Name            string            `yaml:"name"`
	Interval        model.Duration    `yaml:"interval"`
	InputSeries     []inputSeries     `yaml:"input_series"`
	AlertRuleTests  []alertTest       `yaml:"alert_rule_test"`
	PromQLExprTests []exprTest        `yaml:"promql_expr_test"`
	ExternalLabels  map[string]string `yaml:"external_labels"`
	ExternalURL     string            `yaml:"external_url"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTest struct {
	EvalTime  model.Duration  `yaml:"eval_time"`
	Alertname string          `yaml:"alertname"`
	ExpAlerts []expectedAlert `yaml:"exp_alerts"`
}

type expectedAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type exprTest struct {
	Expr       string           `yaml:"expr"`
	EvalTime   model.Duration   `yaml:"eval_time"`
	ExpSamples []expectedSample `yaml:"exp_samples"`
}

type expectedSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// runTestFile runs every test group of one file and returns the failures.
func runTestFile(file string, out io.Writer) []error {
	b, err := os.ReadFile(file)
	if err != nil {
		return []error{err}
	}
	var tf unitTestFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil && !errors.Is(err, io.EOF) {
		return []error{fmt.Errorf("%s: %w", file, err)}
	}

	var ruleFiles []string
	for _, p := range tf.RuleFiles {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return []error{fmt.Errorf("%s: rule_files: %w", file, err)}
		}
		if len(m) == 0 {
			fmt.Fprintln(out, "  WARNING: no file match pattern", p)
		}
		ruleFiles = append(ruleFiles, m...)
	}
	if tf.EvaluationInterval == 0 {
		tf.EvaluationInterval = model.Duration(time.Minute)
	}
	order := map[string]int{}
	for i, g := range tf.GroupEvalOrder {
		if _, ok := order[g]; ok {
			return []error{fmt.Errorf("group name repeated in group_eval_order: %s", g)}
		}
		order[g] = i
	}

	var errs []error
	for i, tg := range tf.Tests {
		if tg.Interval == 0 {
			tg.Interval = tf.EvaluationInterval
		}
		if tg.Name == "" {
			tg.Name = fmt.Sprintf("unnamed#%d", i)
		}
		errs = append(errs, tg.run(time.Duration(tf.EvaluationInterval), order, ruleFiles)...)
	}
	return errs
}

// run loads the input series, evaluates the rule groups at every evaluation
// interval from 0 to the latest eval_time, checks the alerts at their
// eval_time on the way, and finally the PromQL expressions.
func (tg *testGroup) run(evalInterval time.Duration, order map[string]int, ruleFiles []string) (errs []error) {
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", tg.Interval)
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	if err != nil {
		return []error{fmt.Errorf("    name: %s,\n    input_series: %w", tg.Name, err)}
	}
	defer func() {
		if err := suite.Close(); err != nil {
			errs = append(errs, err)
		}
	}()
	suite.SubqueryInterval = evalInterval

	mgr := promrules.NewManager(&promrules.ManagerOptions{
		QueryFunc:   promrules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		Appendable:  suite.Storage(),
		Queryable:   suite.Storage(),
		Context:     context.Background(),
		NotifyFunc:  func(context.Context, string, ...*promrules.Alert) {},
		Logger:      slog.New(slog.DiscardHandler),
		GroupLoader: NewLoader(),
	})
	var ext labels.Labels
	if len(tg.ExternalLabels) > 0 {
		ext = labels.FromMap(tg.ExternalLabels)
	}
	groupMap, lerrs := mgr.LoadGroups(time.Duration(tg.Interval), ext, tg.ExternalURL, nil, false, ruleFiles...)
	if lerrs != nil {
		return lerrs
	}
	groups, err := orderGroups(groupMap, order)
	if err != nil {
		return []error{err}
	}
	for _, g := range groups {
		for _, ar := range g.AlertingRules() {
			// Nothing to restore from: let the rules write ALERTS at once.
			ar.SetRestored(true)
		}
	}

	alertTimes, err := tg.alertTestsByTime()
	if err != nil {
		return []error{err}
	}
	times := make([]time.Duration, 0, len(alertTimes))
	for t := range alertTimes {
		times = append(times, t)
	}
	slices.Sort(times)

	mint := time.Unix(0, 0).UTC()
	maxt := mint.Add(tg.maxEvalTime())
	next := 0
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		var evalErrs []error
		suite.WithSamplesTill(ts, func(err error) {
			if err != nil {
				evalErrs = append(evalErrs, err)
				return
			}
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					if r.LastError() != nil {
						evalErrs = append(evalErrs, fmt.Errorf("    rule: %s, time: %s, err: %w",
							r.Name(), model.Duration(ts.Sub(mint)), r.LastError()))
					}
				}
			}
		})
		if len(evalErrs) > 0 {
			return append(errs, evalErrs...)
		}
		// An alert expectation at eval_time t is checked against the
		// evaluation at the last step not after t.
		for next < len(times) && times[next] < ts.Add(evalInterval).Sub(mint) {
			errs = append(errs, tg.checkAlerts(times[next], alertTimes[times[next]], groups)...)
			next++
		}
	}

	for _, et := range tg.PromQLExprTests {
		errs = append(errs, tg.checkExpr(suite, mint, et)...)
	}
	return errs
}

// orderGroups puts the groups named in group_eval_order first, in that
// order, then the others by file and name.
func orderGroups(groupMap map[string]*promrules.Group, order map[string]int) ([]*promrules.Group, error) {
	groups := make([]*promrules.Group, 0, len(groupMap))
	names := map[string]struct{}{}
	for _, g := range groupMap {
		groups = append(groups, g)
		names[g.Name()] = struct{}{}
	}
	for n := range order {
		if _, ok := names[n]; !ok {
			return nil, fmt.Errorf("group_eval_order names group %q, which no rule file defines", n)
		}
	}
	rank := func(g *promrules.Group) int {
		if i, ok := order[g.Name()]; ok {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(groups, func(a, b *promrules.Group) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a.File(), b.File()), strings.Compare(a.Name(), b.Name()))
	})
	return groups, nil
}

func (tg *testGroup) alertTestsByTime() (map[time.Duration][]alertTest, error) {
	out := map[time.Duration][]alertTest{}
	for _, at := range tg.AlertRuleTests {
		if at.Alertname == "" {
			return nil, fmt.Errorf("an item under alert_rule_test misses required attribute alertname at eval_time %v (in test %s)", at.EvalTime, tg.Name)
		}
		t := time.Duration(at.EvalTime)
		out[t] = append(out[t], at)
	}
	return out, nil
}

func (tg *testGroup) maxEvalTime() time.Duration {
	var m model.Duration
	for _, at := range tg.AlertRuleTests {
		m = max(m, at.EvalTime)
	}
	for _, et := range tg.PromQLExprTests {
		m = max(m, et.EvalTime)
	}
	return time.Duration(m)
}

// checkAlerts compares the firing alerts of each tested alert name with
// the expectation.
func (tg *testGroup) checkAlerts(t time.Duration, tests []alertTest, groups []*promrules.Group) []error {
	var errs []error
	for _, at := range tests {
		var got alertList
		for _, g := range groups {
			for _, ar := range g.AlertingRules() {
				if ar.Name() != at.Alertname {
					continue
				}
				for _, a := range ar.ActiveAlerts() {
					if a.State == promrules.StateFiring {
						got = append(got, labelsAndAnnotations{a.Labels.Copy(), a.Annotations.Copy()})
					}
				}
			}
		}
		var exp alertList
		for _, ea := range at.ExpAlerts {
			lb := labels.NewBuilder(labels.FromMap(ea.ExpLabels))
			lb.Set(labels.AlertName, at.Alertname)
			exp = append(exp, labelsAndAnnotations{lb.Labels(), labels.FromMap(ea.ExpAnnotations)})
		}
		got.sort()
		exp.sort()
		if !exp.equal(got) {
			errs = append(errs, fmt.Errorf("%s    alertname: %s, time: %s, \n        exp:%s, \n        got:%s",
				tg.nameLine(), at.Alertname, model.Duration(t), indent(exp.String(), "            "), indent(got.String(), "            ")))
		}
	}
	return errs
}

// checkExpr evaluates one promql_expr_test and compares its samples.
func (tg *testGroup) checkExpr(suite *promqltest.LazyLoader, mint time.Time, et exprTest) []error {
	fail := func(err error) []error {
		return []error{fmt.Errorf("%s    expr: %q, time: %s, err: %w", tg.nameLine(), et.Expr, et.EvalTime, err)}
	}
	q, err := suite.QueryEngine().NewInstantQuery(suite.Context(), suite.Queryable(), nil, et.Expr, mint.Add(time.Duration(et.EvalTime)))
	if err != nil {
		return fail(err)
	}
	defer q.Close()
	res := q.Exec(suite.Context())
	if res.Err != nil {
		return fail(res.Err)
	}
	var got sampleList
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			got = append(got, sample{s.Metric.Copy(), s.F})
		}
	case promql.Scalar:
		got = append(got, sample{labels.EmptyLabels(), v.V})
	default:
		return fail(fmt.Errorf("expression returns a %s, not a vector or scalar", res.Value.Type()))
	}
	var exp sampleList
	for _, es := range et.ExpSamples {
		lbls, err := parser.ParseMetric(es.Labels)
		if err != nil {
			return fail(fmt.Errorf("labels %q: %w", es.Labels, err))
		}
		exp = append(exp, sample{lbls, es.Value})
	}
	got.sort()
	exp.sort()
	if !exp.equal(got) {
		return []error{fmt.Errorf("%s    expr: %q, time: %s,\n        exp: %s\n        got: %s",
			tg.nameLine(), et.Expr, et.EvalTime, exp, got)}
	}
	return nil
}

func (tg *testGroup) nameLine() string {
	if strings.HasPrefix(tg.Name, "unnamed#") {
		return ""
	}
	return fmt.Sprintf("    name: %s,\n", tg.Name)
}

type labelsAndAnnotations struct {
	Labels, Annotations labels.Labels
}

type alertList []labelsAndAnnotations

func (l alertList) sort() {
	slices.SortFunc(l, func(a, b labelsAndAnnotations) int {
		return cmp.Or(labels.Compare(a.Labels, b.Labels), labels.Compare(a.Annotations, b.Annotations))
	})
}

func (l alertList) equal(o alertList) bool {
	return slices.EqualFunc(l, o, func(a, b labelsAndAnnotations) bool {
		return labels.Equal(a.Labels, b.Labels) && labels.Equal(a.Annotations, b.Annotations)
	})
}

func (l alertList) String() string {
	if len(l) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i, a := range l {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "%d:\n  Labels:%s\n  Annotations:%s", i, a.Labels, a.Annotations)
	}
	b.WriteString("\n]")
	return b.String()
}

type sample struct {
	Labels labels.Labels
	Value  float64
}

type sampleList []sample

func (l sampleList) sort() {
	slices.SortFunc(l, func(a, b sample) int { return labels.Compare(a.Labels, b.Labels) })
}

func (l sampleList) equal(o sampleList) bool {
	return slices.EqualFunc(l, o, func(a, b sample) bool {
		return labels.Equal(a.Labels, b.Labels) &&
			(a.Value == b.Value || (math.IsNaN(a.Value) && math.IsNaN(b.Value)))
	})
}

func (l sampleList) String() string {
	if len(l) == 0 {
		return "nil"
	}
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = s.Labels.String() + " " + strconv.FormatFloat(s.Value, 'E', -1, 64)
	}
	return strings.Join(parts, ", ")
}

// indent prefixes every line but the first with prefix.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
