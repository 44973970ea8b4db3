package dashboards

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// grafana runs a dashboard's queries against a running vigil as Grafana's
// Prometheus data source does, with every variable at its default, All: the
// test sees the numbers a user would see, not only that the metrics exist.
type grafana struct {
	v *vigilProc
	// start and end are the dashboard's time range.
	start, end time.Time
	// step is the range queries' step; $__rate_interval is derived from it
	// and the scrape interval as Grafana does.
	step, scrapeInterval time.Duration
}

// series is one result series: its labels and its values, one for an
// instant query.
type series struct {
	Metric map[string]string
	Values []float64
}

// rangeVar is $__range: the time range in whole seconds.
func (g *grafana) rangeVar() string {
	return fmt.Sprintf("%ds", int(math.Ceil(g.end.Sub(g.start).Seconds())))
}

// rateInterval is $__rate_interval: max(step + scrape interval, 4 × scrape
// interval).
func (g *grafana) rateInterval() string {
	return fmt.Sprintf("%ds", int(max(g.step+g.scrapeInterval, 4*g.scrapeInterval).Seconds()))
}

// variables returns each query variable of d as Grafana writes it into a
// query when All is chosen, resolving them in order as Grafana does, so that
// one variable's query can use the ones before it.
func (g *grafana) variables(d dashboard) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if v.Regex != "" {
			return nil, fmt.Errorf("variable %s: regex filters are not emulated", v.Name)
		}
		q, err := variableQuery(v.Query)
		if err != nil {
			return nil, err
		}
		m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			return nil, fmt.Errorf("variable %s: only label_values(expr, label) is emulated, not %q", v.Name, q)
		}
		expr, err := g.interpolate(m[1], out)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		values, err := g.labelValues(m[2], expr)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		out[v.Name] = formatAll(v, values)
	}
	return out, nil
}

// formatAll is how Grafana's Prometheus data source writes a variable set to
// All into a query: allValue verbatim when the variable has one, otherwise
// the listed values, regex-escaped, alone or joined as (a|b). A variable
// without All takes its first value.
func formatAll(v variable, values []string) string {
	if !v.Multi && !v.IncludeAll {
		if len(values) == 0 {
			return ""
		}
		return regularEscape(values[0])
	}
	if v.IncludeAll && v.AllValue != "" {
		return v.AllValue
	}
	escaped := make([]string, len(values))
	for i, s := range values {
		escaped[i] = regexEscape(s)
	}
	if len(escaped) == 1 {
		return escaped[0]
	}
	return "(" + strings.Join(escaped, "|") + ")"
}

// regexMeta is what Grafana escapes in a multi-value variable's values.
var regexMeta = regexp.MustCompile(`[$^*{}\[\]'+?.()|]`)

// regexEscape escapes a value for a regex inside a PromQL string, as
// Grafana's prometheusSpecialRegexEscape does.
func regexEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\\\`)
	return regexMeta.ReplaceAllString(s, `\\$0`)
}

// regularEscape escapes a single value for a PromQL string, as Grafana's
// prometheusRegularEscape does.
func regularEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, `'`, `\\'`)
}

// interpolate replaces Grafana's interval variables and the dashboard's
// variables in expr.
func (g *grafana) interpolate(expr string, vars map[string]string) (string, error) {
	var err error
	expr = grafanaIntervals.ReplaceAllStringFunc(expr, func(m string) string {
		switch strings.Trim(m, "${}") {
		case "__range":
			return g.rangeVar()
		case "__rate_interval":
			return g.rateInterval()
		default:
			return fmt.Sprintf("%ds", int(g.step.Seconds()))
		}
	})
	expr = grafanaVars.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		if strings.Contains(name, ":") {
			err = fmt.Errorf("%s: variable formats are not emulated", m)
			return m
		}
		val, ok := vars[name]
		if !ok {
			err = fmt.Errorf("%s: no such variable", m)
			return m
		}
		return val
	})
	return expr, err
}

// labelValues asks for a label's values among the series expr selects in
// the range, as label_values(expr, label) does.
func (g *grafana) labelValues(label, expr string) ([]string, error) {
	q := url.Values{"match[]": {expr}, "start": {unix(g.start)}, "end": {unix(g.end)}}
	b, err := g.v.get("/api/v1/label/" + label + "/values?" + q.Encode())
	if err != nil {
		return nil, err
	}
	var env struct {
		Data []string `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("label values: %w", err)
	}
	return env.Data, nil
}

// query runs expr once at the end of the range (instant) or over the range.
func (g *grafana) query(expr string, instant bool) ([]series, error) {
	var path string
	if instant {
		path = "/api/v1/query?" + url.Values{"query": {expr}, "time": {unix(g.end)}}.Encode()
	} else {
		path = "/api/v1/query_range?" + url.Values{
			"query": {expr}, "start": {unix(g.start)}, "end": {unix(g.end)}, "step": {strconv.Itoa(int(g.step.Seconds()))},
		}.Encode()
	}
	b, err := g.v.get(path)
	if err != nil {
		return nil, err
	}
	return parseResult(b)
}

func unix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// parseResult reads a query answer: a vector, a matrix or a scalar.
func parseResult(b []byte) ([]series, error) {
	var env struct {
		Data struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("query answer: %w", err)
	}
	type sample [2]json.RawMessage
	value := func(s sample) (float64, error) {
		var str string
		if err := json.Unmarshal(s[1], &str); err != nil {
			return 0, fmt.Errorf("sample %s: %w", s[1], err)
		}
		return strconv.ParseFloat(str, 64)
	}
	var out []series
	switch env.Data.ResultType {
	case "vector", "matrix":
		var rs []struct {
			Metric map[string]string `json:"metric"`
			Value  *sample           `json:"value"`
			Values []sample          `json:"values"`
		}
		if err := json.Unmarshal(env.Data.Result, &rs); err != nil {
			return nil, fmt.Errorf("query result: %w", err)
		}
		for _, r := range rs {
			samples := r.Values
			if r.Value != nil {
				samples = []sample{*r.Value}
			}
			s := series{Metric: r.Metric}
			for _, smp := range samples {
				f, err := value(smp)
				if err != nil {
					return nil, err
				}
				s.Values = append(s.Values, f)
			}
			out = append(out, s)
		}
	case "scalar":
		var smp sample
		if err := json.Unmarshal(env.Data.Result, &smp); err != nil {
			return nil, fmt.Errorf("query result: %w", err)
		}
		f, err := value(smp)
		if err != nil {
			return nil, err
		}
		out = append(out, series{Metric: map[string]string{}, Values: []float64{f}})
	default:
		return nil, fmt.Errorf("result type %q", env.Data.ResultType)
	}
	return out, nil
}

// panelResult is what one query of a panel returned.
type panelResult struct {
	refID, expr string
	series      []series
}

// panel runs every query of the panel titled title (there must be exactly
// one) with vars.
func (g *grafana) panel(t *testing.T, file string, d dashboard, vars map[string]string, title string) []panelResult {
	t.Helper()
	var found []panel
	for _, p := range allPanels(d.Panels) {
		if p.Type != "row" && p.Title == title {
			found = append(found, p)
		}
	}
	require.Lenf(t, found, 1, "%s: panels titled %q", file, title)
	return g.run(t, file, found[0], vars)
}

func (g *grafana) run(t *testing.T, file string, p panel, vars map[string]string) []panelResult {
	t.Helper()
	var out []panelResult
	for _, tg := range p.Targets {
		expr, err := g.interpolate(tg.Expr, vars)
		require.NoErrorf(t, err, "%s: panel %q query %s", file, p.Title, tg.RefID)
		ss, err := g.query(expr, tg.Instant)
		require.NoErrorf(t, err, "%s: panel %q query %s: %s", file, p.Title, tg.RefID, expr)
		out = append(out, panelResult{refID: tg.RefID, expr: expr, series: ss})
	}
	return out
}

// byLabel returns a one-query instant panel's values by the value of label
// ("" for a panel without it), failing on two series with the same value.
func byLabel(t *testing.T, title string, rs []panelResult, label string) map[string]float64 {
	t.Helper()
	require.Lenf(t, rs, 1, "panel %q: queries", title)
	out := map[string]float64{}
	for _, s := range rs[0].series {
		k := s.Metric[label]
		require.NotContainsf(t, out, k, "panel %q: two series with %s=%q: %s", title, label, k, rs[0].expr)
		require.Lenf(t, s.Values, 1, "panel %q: an instant query has one value", title)
		out[k] = s.Values[0]
	}
	return out
}

func TestFormatAll(t *testing.T) {
	multi := variable{Multi: true, IncludeAll: true}
	tests := []struct {
		name   string
		v      variable
		values []string
		want   string
	}{
		{name: "one value", v: multi, values: []string{"database"}, want: `database`},
		{name: "values joined", v: multi, values: []string{"app", "checkout"}, want: `(app|checkout)`},
		{name: "regex characters escaped", v: multi, values: []string{"127.0.0.1:9090", `a\b`}, want: `(127\\.0\\.0\\.1:9090|a\\\\b)`},
		{name: "allValue wins", v: variable{Multi: true, IncludeAll: true, AllValue: ".*"}, values: []string{"app"}, want: `.*`},
		{name: "nothing listed", v: multi, want: `()`},
		{name: "single-value variable", v: variable{}, values: []string{"a.b", "c"}, want: `a.b`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, formatAll(tc.v, tc.values))
		})
	}
}

func TestInterpolate(t *testing.T) {
	g := &grafana{start: time.Unix(0, 0), end: time.Unix(90, 500), step: 2 * time.Second, scrapeInterval: time.Second}
	vars := map[string]string{"app": "(app|db)", "instance": `127\\.0\\.0\\.1:80`}
	got, err := g.interpolate(`sum(increase(x{app=~"$app", instance=~"${instance}"}[$__range])) / rate(y[$__rate_interval]) + z[${__interval}]`, vars)
	require.NoError(t, err)
	require.Equal(t, `sum(increase(x{app=~"(app|db)", instance=~"127\\.0\\.0\\.1:80"}[91s])) / rate(y[4s]) + z[2s]`, got)

	_, err = g.interpolate(`x{a=~"$nope"}`, vars)
	require.ErrorContains(t, err, "no such variable")
}
