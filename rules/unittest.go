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

	"github.com/grafana/regexp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	promrules "github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// UnitTestOptions are the switches of `vigil test rules`, the same as
// promtool's `test rules` flags.
type UnitTestOptions struct {
	// Run, when not empty, keeps only the test groups whose name matches
	// one of these regular expressions (promtool's --run).
	Run []string
	// IgnoreUnknownFields accepts unknown keys in rule files (promtool's
	// --ignore-unknown-fields); test files stay strict, as in promtool.
	IgnoreUnknownFields bool
	// Query switches PromQL features of the test engine. The command line
	// enables the @ modifier and negative offsets, as promtool does.
	Query promqltest.LazyLoaderOpts
}

// DefaultUnitTestOptions are the options of `vigil test rules` without
// flags: the @ modifier and negative offsets on, as in promtool.
func DefaultUnitTestOptions() UnitTestOptions {
	return UnitTestOptions{Query: promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true}}
}

// RunUnitTests runs rule unit test files in promtool's format with
// DefaultUnitTestOptions; see RunUnitTestsWith.
func RunUnitTests(files []string, out io.Writer) (failed bool) {
	return RunUnitTestsWith(DefaultUnitTestOptions(), files, out)
}

// RunUnitTestsWith runs rule unit test files in promtool's format and writes
// a report like promtool's to out: "Unit Testing:  FILE", then "  SUCCESS"
// or "  FAILED:" and one message per failed expectation. rule_files in a
// test file are relative to it, may be globs and may be in either shape
// LoadFile accepts. It reports whether any test failed; an invalid Run
// expression fails every file.
func RunUnitTestsWith(opts UnitTestOptions, files []string, out io.Writer) (failed bool) {
	var run *regexp.Regexp
	var runErr error
	if len(opts.Run) > 0 {
		run, runErr = regexp.Compile(strings.Join(opts.Run, "|"))
	}
	for _, f := range files {
		fmt.Fprintf(out, "Unit Testing:  %s\n", f)
		var errs []error
		if runErr != nil {
			errs = []error{fmt.Errorf("--run: %w", runErr)}
		} else {
			errs = runTestFile(f, opts, run, out)
		}
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
	// FuzzyCompare lets floats differ by one unit in the last place.
	FuzzyCompare bool `yaml:"fuzzy_compare"`
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
	StartTimestamp  startTimestamp    `yaml:"start_timestamp"`
}

// startTimestamp is a test group's time zero: RFC 3339 or Unix seconds.
type startTimestamp struct{ time.Time }

// UnmarshalYAML accepts "2024-01-01T00:00:00Z" and 1704067200(.5).
func (t *startTimestamp) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		t.Time = time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC()
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("line %d: start_timestamp %q is neither RFC 3339 nor Unix seconds", n.Line, s)
	}
	t.Time = v
	return nil
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
	// Histogram is a native histogram in promqltest's notation
	// ("{{schema:1 sum:3 count:2 buckets:[1 1]}}"); when set, Value is ignored.
	Histogram string `yaml:"histogram"`
}

// runTestFile runs every test group of one file and returns the failures.
func runTestFile(file string, opts UnitTestOptions, run *regexp.Regexp, out io.Writer) []error {
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
		if run != nil && !run.MatchString(tg.Name) {
			continue
		}
		if tg.Interval == 0 {
			tg.Interval = tf.EvaluationInterval
		}
		if tg.Name == "" {
			tg.Name = fmt.Sprintf("unnamed#%d", i)
		}
		errs = append(errs, tg.run(time.Duration(tf.EvaluationInterval), order, ruleFiles, opts, tf.FuzzyCompare)...)
	}
	return errs
}

// run loads the input series, evaluates the rule groups at every evaluation
// interval from 0 to the latest eval_time, checks the alerts at their
// eval_time on the way, and finally the PromQL expressions.
func (tg *testGroup) run(evalInterval time.Duration, order map[string]int, ruleFiles []string, opts UnitTestOptions, fuzzy bool) (errs []error) {
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", tg.Interval)
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	qopts := opts.Query
	qopts.StartTime = tg.StartTimestamp.Time
	suite, err := promqltest.NewLazyLoader(load.String(), qopts)
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
		QueryFunc:    promrules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		AppendableV2: suite.Storage(),
		Queryable:    suite.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*promrules.Alert) {},
		Logger:       slog.New(slog.DiscardHandler),
		GroupLoader:  NewLoader(),
		Parser:       promqlparse.Parser,
	})
	var ext labels.Labels
	if len(tg.ExternalLabels) > 0 {
		ext = labels.FromMap(tg.ExternalLabels)
	}
	groupMap, lerrs := mgr.LoadGroups(time.Duration(tg.Interval), ext, tg.ExternalURL, nil, opts.IgnoreUnknownFields, ruleFiles...)
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
	if !tg.StartTimestamp.IsZero() {
		mint = tg.StartTimestamp.Time
	}
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
		errs = append(errs, tg.checkExpr(suite, mint, et, fuzzy)...)
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
func (tg *testGroup) checkExpr(suite *promqltest.LazyLoader, mint time.Time, et exprTest, fuzzy bool) []error {
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
			got = append(got, sample{Labels: s.Metric.Copy(), Value: s.F, Histogram: promqltest.HistogramTestExpression(s.H)})
		}
	case promql.Scalar:
		got = append(got, sample{Labels: labels.EmptyLabels(), Value: v.V})
	default:
		return fail(fmt.Errorf("expression returns a %s, not a vector or scalar", res.Value.Type()))
	}
	var exp sampleList
	for _, es := range et.ExpSamples {
		lbls, err := promqlparse.ParseMetric(es.Labels)
		if err != nil {
			return fail(fmt.Errorf("labels %q: %w", es.Labels, err))
		}
		s := sample{Labels: lbls, Value: es.Value}
		if es.Histogram != "" {
			h, err := parseHistogram(es.Histogram)
			if err != nil {
				return fail(fmt.Errorf("labels %q: %w", es.Labels, err))
			}
			s.Value, s.Histogram = 0, promqltest.HistogramTestExpression(h)
		}
		exp = append(exp, s)
	}
	got.sort()
	exp.sort()
	if !exp.equal(got, fuzzy) {
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

// parseHistogram reads one native histogram in promqltest's notation.
func parseHistogram(s string) (*histogram.FloatHistogram, error) {
	_, values, err := promqlparse.ParseSeriesDesc("{} " + s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("histogram: %w", err)
	case len(values) != 1 || values[0].Histogram == nil:
		return nil, fmt.Errorf("histogram %q is not one native histogram", s)
	}
	return values[0].Histogram, nil
}

type sample struct {
	Labels labels.Labels
	Value  float64
	// Histogram is promqltest.HistogramTestExpression of a native
	// histogram sample, empty for a float sample.
	Histogram string
}

type sampleList []sample

func (l sampleList) sort() {
	slices.SortFunc(l, func(a, b sample) int { return labels.Compare(a.Labels, b.Labels) })
}

// equal compares samples; fuzzy lets floats differ by one unit in the
// last place (promtool's fuzzy_compare).
func (l sampleList) equal(o sampleList, fuzzy bool) bool {
	return slices.EqualFunc(l, o, func(a, b sample) bool {
		return labels.Equal(a.Labels, b.Labels) && a.Histogram == b.Histogram &&
			(a.Value == b.Value || (math.IsNaN(a.Value) && math.IsNaN(b.Value)) ||
				(fuzzy && (math.Nextafter(a.Value, math.Inf(-1)) == b.Value || math.Nextafter(a.Value, math.Inf(1)) == b.Value)))
	})
}

func (l sampleList) String() string {
	if len(l) == 0 {
		return "nil"
	}
	parts := make([]string, len(l))
	for i, s := range l {
		if s.Histogram != "" {
			parts[i] = s.Labels.String() + " " + s.Histogram
			continue
		}
		parts[i] = s.Labels.String() + " " + strconv.FormatFloat(s.Value, 'E', -1, 64)
	}
	return strings.Join(parts, ", ")
}

// indent prefixes every line but the first with prefix.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
