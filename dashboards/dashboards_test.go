// Package dashboards holds vigil's Grafana dashboards and provisioning files;
// its only Go code is this test, which keeps the dashboards honest: every
// query parses as PromQL and every metric a dashboard reads is one vigil
// really produces.
package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/internal/promqlparse"
	"go.yaml.in/yaml/v3"
)

// datasourceUID is what every panel and query names as its data source: the
// dashboard's `datasource` variable.
const datasourceUID = "${datasource}"

// wantDashboards are the dashboards issue 5 asks for.
var wantDashboards = []string{
	"alerts-escalations.json", "application.json", "database.json", "infrastructure.json", "overview.json",
}

// dsRef is a panel's, target's or variable's data source.
type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	Expr       string `json:"expr"`
	// Instant queries are evaluated once at the end of the range; the
	// others over the range.
	Instant bool `json:"instant"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // a collapsed row's panels
}

type annotation struct {
	Name       string `json:"name"`
	BuiltIn    int    `json:"builtIn"`
	Datasource *dsRef `json:"datasource"`
	Expr       string `json:"expr"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *dsRef          `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	// AllValue replaces the listed values when All is chosen.
	AllValue string `json:"allValue"`
	Regex    string `json:"regex"`
	Current  struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Annotations   struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// query is one PromQL expression of a dashboard and where it sits.
type query struct {
	file, where, expr string
}

// loadDashboards reads every *.json in this folder.
func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	require.NoError(t, err)
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Truef(t, json.Valid(b), "%s is not valid JSON", f)
		var d dashboard
		require.NoError(t, json.Unmarshal(b, &d), f)
		out[f] = d
	}
	return out
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// variableQuery returns a query variable's query, which Grafana writes either
// as a string or as {"query": "..."}.
func variableQuery(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("variable query %s: %w", raw, err)
	}
	return o.Query, nil
}

var (
	// labelValuesRe matches label_values(expr, label); label_values(label)
	// has no expression and reads no metric.
	labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	labelOnlyRe   = regexp.MustCompile(`^label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)
	queryResultRe = regexp.MustCompile(`^query_result\((.+)\)$`)
)

// variableExpr returns the PromQL inside a Prometheus variable query, or ""
// when it reads no metric.
func variableExpr(q string) (string, error) {
	q = strings.TrimSpace(q)
	switch {
	case labelOnlyRe.MatchString(q):
		return "", nil
	case labelValuesRe.MatchString(q):
		return labelValuesRe.FindStringSubmatch(q)[1], nil
	case queryResultRe.MatchString(q):
		return queryResultRe.FindStringSubmatch(q)[1], nil
	}
	return "", fmt.Errorf("variable query %q is neither label_values(...) nor query_result(...)", q)
}

// collectQueries checks the shape of every dashboard (title, uid, the
// datasource variable, every panel on it) and returns its PromQL.
func collectQueries(t *testing.T, dashboards map[string]dashboard) []query {
	t.Helper()
	var out []query
	uids := map[string]string{}
	for file, d := range dashboards {
		require.NotEmptyf(t, d.Title, "%s: no title", file)
		require.NotEmptyf(t, d.UID, "%s: no uid", file)
		require.LessOrEqualf(t, len(d.UID), 40, "%s: Grafana uids are at most 40 characters", file)
		if other, dup := uids[d.UID]; dup {
			t.Fatalf("%s and %s share the uid %q", file, other, d.UID)
		}
		uids[d.UID] = file
		require.GreaterOrEqualf(t, d.SchemaVersion, 36, "%s: schemaVersion", file)

		vars := map[string]variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
			if v.Type != "query" {
				continue
			}
			requireDatasource(t, v.Datasource, "%s: variable %s", file, v.Name)
			q, err := variableQuery(v.Query)
			require.NoError(t, err, "%s: variable %s", file, v.Name)
			expr, err := variableExpr(q)
			require.NoError(t, err, "%s: variable %s", file, v.Name)
			if expr != "" {
				out = append(out, query{file, "variable " + v.Name, expr})
			}
		}
		ds, ok := vars["datasource"]
		require.Truef(t, ok, "%s: no datasource variable", file)
		require.Equalf(t, "datasource", ds.Type, "%s: variable datasource", file)
		q, err := variableQuery(ds.Query)
		require.NoError(t, err)
		require.Equalf(t, "prometheus", q, "%s: variable datasource must list Prometheus data sources", file)

		for _, a := range d.Annotations.List {
			if a.BuiltIn == 1 {
				continue
			}
			requireDatasource(t, a.Datasource, "%s: annotation %s", file, a.Name)
			require.NotEmptyf(t, a.Expr, "%s: annotation %s has no expr", file, a.Name)
			out = append(out, query{file, "annotation " + a.Name, a.Expr})
		}

		ids := map[int]bool{}
		for _, p := range allPanels(d.Panels) {
			require.Falsef(t, ids[p.ID], "%s: panel id %d is used twice", file, p.ID)
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			requireDatasource(t, p.Datasource, "%s: panel %q", file, p.Title)
			require.NotEmptyf(t, p.Targets, "%s: panel %q has no queries", file, p.Title)
			for _, tg := range p.Targets {
				if tg.Datasource != nil {
					requireDatasource(t, tg.Datasource, "%s: panel %q query %s", file, p.Title, tg.RefID)
				}
				require.NotEmptyf(t, tg.Expr, "%s: panel %q query %s has no expr", file, p.Title, tg.RefID)
				out = append(out, query{file, fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr})
			}
		}
	}
	return out
}

func requireDatasource(t *testing.T, ds *dsRef, format string, args ...any) {
	t.Helper()
	where := fmt.Sprintf(format, args...)
	require.NotNilf(t, ds, "%s: no datasource", where)
	require.Equalf(t, datasourceUID, ds.UID, "%s: datasource must be the datasource variable", where)
	require.Equalf(t, "prometheus", ds.Type, "%s: datasource type", where)
}

var (
	// grafanaIntervals are Grafana's built-in range variables, replaced by a
	// duration so the expression parses.
	grafanaIntervals = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
	// grafanaVars are dashboard variables: ${var}, ${var:format} or $var.
	grafanaVars = regexp.MustCompile(`\$\{[a-zA-Z_][a-zA-Z0-9_]*(:[a-z]+)?\}|\$[a-zA-Z_][a-zA-Z0-9_]*`)
)

// expand replaces Grafana's variables by values PromQL accepts wherever the
// dashboards use them: durations in ranges, label values in matchers.
func expand(expr string) string {
	expr = grafanaIntervals.ReplaceAllString(expr, "5m")
	return grafanaVars.ReplaceAllString(expr, "vigil")
}

// metricNames parses expr and returns every metric name it reads. A
// selector without a fixed name is an error: the test could not check it.
func metricNames(expr string) ([]string, error) {
	node, err := promqlparse.ParseExpr(expand(expr))
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	var selErr error
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			selErr = fmt.Errorf("%q: selector %s names no metric", expr, vs)
			return selErr
		}
		names = append(names, name)
		return nil
	})
	return names, selErr
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
		err  bool
	}{
		{expr: `up`, want: []string{"up"}},
		{expr: `sum by (code) (rate(http_requests_total{app=~"$app", instance=~"${instance}"}[$__rate_interval]))`,
			want: []string{"http_requests_total"}},
		{expr: `histogram_quantile(0.9, sum by (le) (increase(x_seconds_bucket[$__range])))`, want: []string{"x_seconds_bucket"}},
		{expr: `a_sum / b_count or vector(0)`, want: []string{"a_sum", "b_count"}},
		{expr: `{__name__="up", job="vigil"}`, want: []string{"up"}},
		{expr: `changes(vigil_deploys_recorded_total[1m]) > 0`, want: []string{"vigil_deploys_recorded_total"}},
		{expr: `{__name__=~"up|x"}`, err: true},
		{expr: `sum(`, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestVariableExpr(t *testing.T) {
	tests := []struct {
		query, want string
		err         bool
	}{
		{query: `label_values(up, app)`, want: `up`},
		{query: `label_values(up{app=~"$app"}, instance)`, want: `up{app=~"$app"}`},
		{query: `label_values(app)`, want: ``},
		{query: `query_result(topk(5, up))`, want: `topk(5, up)`},
		{query: `metrics(up)`, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got, err := variableExpr(tc.query)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// dashboardMetrics returns, for every metric the dashboards read, where.
func dashboardMetrics(t *testing.T) map[string][]string {
	t.Helper()
	dashboards := loadDashboards(t)
	for _, f := range wantDashboards {
		require.Containsf(t, dashboards, f, "dashboard %s is missing", f)
	}
	used := map[string][]string{}
	for _, q := range collectQueries(t, dashboards) {
		names, err := metricNames(q.expr)
		require.NoErrorf(t, err, "%s: %s", q.file, q.where)
		for _, n := range names {
			used[n] = append(used[n], q.file+": "+q.where)
		}
	}
	return used
}

// TestDashboards checks every dashboard's shape and that every query parses.
func TestDashboards(t *testing.T) {
	used := dashboardMetrics(t)
	require.NotEmpty(t, used)
	// The Alerts & Escalations panels.
	for _, m := range []string{
		"vigil_incidents", "vigil_time_to_acknowledge_seconds_bucket", "vigil_time_to_acknowledge_seconds_sum",
		"vigil_time_to_acknowledge_seconds_count", "vigil_time_to_resolve_seconds_bucket",
		"vigil_time_to_resolve_seconds_sum", "vigil_time_to_resolve_seconds_count", "vigil_notifications_total",
		"vigil_escalations_total", "vigil_rollbacks_total", "vigil_deliveries_pending", "vigil_deploys_recorded_total",
	} {
		require.Containsf(t, used, m, "no dashboard reads %s", m)
	}
}

// TestVariablesListValues checks the app and instance variables: All stands
// for the values listed, not for a regex that also lets in apps the
// dashboard is not about (an allValue of ".*" made the Database dashboard's
// Up read the app's target), and vigil's own series (job "vigil") are not
// listed, so the process panels do not mix in vigil's CPU and memory.
func TestVariablesListValues(t *testing.T) {
	for file, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			where := file + ": variable " + v.Name
			require.Emptyf(t, v.AllValue, "%s: allValue", where)
			require.Truef(t, v.Multi && v.IncludeAll, "%s: multi-value with All", where)
			require.JSONEqf(t, `["$__all"]`, string(v.Current.Value), "%s: All by default", where)
			q, err := variableQuery(v.Query)
			require.NoError(t, err, where)
			if v.Name == "pod" {
				// pod lists vigils, not apps: it reads a series every
				// vigil has (TestPodVariable).
				require.Equalf(t, podQuery, q, where)
				continue
			}
			expr, err := variableExpr(q)
			require.NoError(t, err, where)
			node, err := promqlparse.ParseExpr(expand(expr))
			require.NoError(t, err, where)
			vs, ok := node.(*parser.VectorSelector)
			require.Truef(t, ok, "%s: %q is not a selector", where, expr)
			require.Truef(t, slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == "job" && m.Type == labels.MatchNotEqual && m.Value == "vigil"
			}), "%s: %q must leave out job=\"vigil\"", where, expr)
		}
	}
}

// podQuery lists the pods of a fleet of vigils writing to one backend,
// each with global.external_labels.pod: vigil_ready is a series every vigil
// has. On a single vigil without that label it lists nothing.
const podQuery = "label_values(vigil_ready, pod)"

// TestPodVariable checks issue 12's fleet support: every dashboard has the
// pod variable, multi-value with All, and every selector of every query
// (but the pod variable's own) filters by it with pod=~"$pod". On a single
// vigil the variable lists nothing and All becomes "()" (formatAll, as
// Grafana's Prometheus data source joins an empty list), a regex that
// matches only the empty value: series without a pod label, which is every
// series there. TestDashboards runs every query that way against a real
// vigil and checks the figures.
func TestPodVariable(t *testing.T) {
	dashboards := loadDashboards(t)
	for file, d := range dashboards {
		i := slices.IndexFunc(d.Templating.List, func(v variable) bool { return v.Name == "pod" })
		require.Positivef(t, i, "%s: no pod variable after datasource", file)
		pod := d.Templating.List[i]
		require.Equalf(t, "query", pod.Type, "%s: pod", file)
		require.Truef(t, pod.Multi && pod.IncludeAll, "%s: pod is multi-value with All", file)
		for _, v := range d.Templating.List[i+1:] {
			require.NotEqualf(t, "datasource", v.Type, "%s: %s comes before pod", file, v.Name)
		}
	}
	for _, q := range collectQueries(t, dashboards) {
		if q.where == "variable pod" {
			continue
		}
		node, err := promqlparse.ParseExpr(expand(q.expr))
		require.NoError(t, err, "%s: %s", q.file, q.where)
		selectors := 0
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			selectors++
			require.Truef(t, slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == "pod" && m.Type == labels.MatchRegexp
			}), "%s: %s: %s does not filter by pod", q.file, q.where, vs)
			return nil
		})
		require.Equalf(t, selectors, strings.Count(q.expr, `pod=~"$pod"`), "%s: %s: every selector has pod=~\"$pod\": %s", q.file, q.where, q.expr)
	}
}

// TestProvisioning checks Grafana's provisioning files: a Prometheus data
// source at vigil and a file provider reading the dashboards' mount point.
func TestProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, URL, Access string
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile("provisioning/datasources/vigil.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &ds))
	require.Equal(t, 1, ds.APIVersion)
	require.Len(t, ds.Datasources, 1)
	require.Equal(t, "vigil", ds.Datasources[0].Name)
	require.Equal(t, "vigil", ds.Datasources[0].UID)
	require.Equal(t, "prometheus", ds.Datasources[0].Type)
	require.Equal(t, "http://vigil:9090", ds.Datasources[0].URL)
	require.Equal(t, "proxy", ds.Datasources[0].Access)

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile("provisioning/dashboards/vigil.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &prov))
	require.Equal(t, 1, prov.APIVersion)
	require.Len(t, prov.Providers, 1)
	require.Equal(t, "file", prov.Providers[0].Type)
	require.Equal(t, "/var/lib/grafana/dashboards", prov.Providers[0].Options.Path)
}

// TestDashboardMetricsExist runs vigil with everything that produces a
// metric family the dashboards read, fails naming any metric vigil does not
// store, and then checks the values the panels show (checkPanelValues).
//
// A family reaches /api/v1/label/__name__/values only once it has a series,
// and some have none until something happens (ALERTS; the webhook latency).
// Rather than trust /metrics' HELP lines, which promhttp leaves out for
// empty vectors anyway, the test makes them happen: the app answers half its
// requests with 500 so a seed rule on error_rate fires, webhook receivers
// take the three levels, two recorded deploys make the incident roll back,
// and the incident escalates every two seconds (twice, then one repeat), is
// acknowledged and is resolved. The TSDB stores histograms as x_bucket, x_sum
// and x_count, and dashboards query those names, so names are compared
// exactly.
func TestDashboardMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vigil")
	}
	used := dashboardMetrics(t)

	dsn := os.Getenv("VIGIL_TEST_PG_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	requirePostgres(t, dsn)
	app := newTestApp(t)
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hooks.Close)

	bin := buildVigil(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgFile := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil, `service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: info, format: text}
metrics: {interval: 1s}
collectors:
  app:
    targets: ["%[3]s"]
    labels: {app: app}
    health: {url: "%[4]s/health", interval: 1s, timeout: 1s}
  infrastructure: {labels: {app: infrastructure}, link_speed_mbps: 1000}
  database: {dsn: "%[5]s", labels: {app: database}, timeout: 2s}
alerts:
  rules:
    - {name: high_error_rate, condition: error_rate > 10, duration: 1s, severity: critical, labels: {app: app}}
escalation:
  response_times: {critical: 2s, high: 4h, medium: 24h, low: 48h}
  priorities: {critical: critical, warning: medium}
  repeat_limit: 1
  levels:
    - {name: support, notify: [l1]}
    - {name: development, notify: [l2]}
    - {name: management, notify: [l2]}
receivers:
  - {name: l1, webhook: {url: "%[6]s/l1", secret: s1}}
  - {name: l2, webhook: {url: "%[6]s/l2", secret: s1}}
rollback:
  webhook: {url: "%[6]s/rollback", secret: s2}
  when: {severity: critical}
  window: 10m
  cooldown: 1h
users:
  - {name: grafana, role: admin, tokens: [%[7]q]}
`, filepath.Join(dir, "data"), addr, strings.TrimPrefix(app.URL, "http://"), app.URL, dsn, hooks.URL, auth.Hash(testToken)), 0o600))

	started := time.Now()
	v := startVigil(t, bin, cfgFile, addr)

	// vigil stores its own series from its first scrape of itself on; an
	// event before it is in the first sample, where increase() cannot see it.
	v.until(`vigil_deploys_recorded_total{source="api"}`)
	// Two deploys: the incident that follows rolls the second one back.
	v.post("/api/v1/deploys", `{"service":"checkout","version":"1.0.0","environment":"production"}`)
	v.post("/api/v1/deploys", `{"service":"checkout","version":"1.1.0","environment":"production"}`)

	// The alert fires and opens an incident, which escalates every 2s: to
	// development, to management, and once more to management (repeat_limit
	// 1), then waits.
	var id string
	require.Eventually(t, func() bool {
		found, err := v.openIncident()
		id = found
		return err == nil && found != ""
	}, 30*time.Second, 200*time.Millisecond, "no incident opened")
	v.until(`sum(vigil_escalations_total) >= 3`)
	v.post("/api/v1/incidents/"+id+"/ack", `{"by":"dashboards-test","comment":"looking"}`)
	v.post("/api/v1/incidents/"+id+"/resolve", `{"by":"dashboards-test","comment":"fixed"}`)

	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		have, err := v.names()
		require.NoError(t, err)
		missing = missing[:0]
		for name := range used {
			if !have[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("vigil does not produce %s, read by:\n  %s", name, strings.Join(used[name], "\n  "))
	}
	if len(missing) > 0 {
		t.Logf("vigil output:\n%s", v.out.String())
	}

	checkPanelValues(t, v, app, started)
}

// checkPanelValues runs the dashboards' queries after the scripted incident
// as Grafana would, every variable at All, and checks what the panels show.
func checkPanelValues(t *testing.T, v *vigilProc, app *testApp, started time.Time) {
	t.Helper()
	dashboards := loadDashboards(t)
	// Every count is stored (vigil scrapes itself every second) before the
	// panels are read.
	v.until(`sum(vigil_time_to_acknowledge_seconds_count) >= 1 and sum(vigil_incidents_resolved_total) >= 1 ` +
		`and sum(vigil_rollbacks_total{outcome="delivered"}) >= 1`)
	g := &grafana{v: v, start: started, end: time.Now(), step: time.Second, scrapeInterval: time.Second}
	vars := func(file string) map[string]string {
		t.Helper()
		vs, err := g.variables(dashboards[file])
		require.NoError(t, err, file)
		return vs
	}
	panel := func(file, title, label string) map[string]float64 {
		t.Helper()
		return byLabel(t, title, g.panel(t, file, dashboards[file], vars(file), title), label)
	}

	const alerts = "alerts-escalations.json"
	prios := []string{"critical", "high", "medium", "low"}
	perPriority := func(critical float64) map[string]float64 {
		return map[string]float64{"critical": critical, "high": 0, "medium": 0, "low": 0}
	}
	counts := []struct {
		file, title, label string
		want               map[string]float64
	}{
		{alerts, "Rollbacks in range", "", map[string]float64{"": 1}},
		{alerts, "Failed notifications in range", "", map[string]float64{"": 0}},
		{alerts, "Acknowledged by priority", "priority", perPriority(1)},
		{alerts, "Incidents resolved by priority", "priority", perPriority(1)},
		{alerts, "Escalations by level", "level", map[string]float64{"support": 0, "development": 1, "management": 2}},
		{"overview.json", "Deploys in range", "", map[string]float64{"": 2}},
	}
	// assert, not require: one run names every panel that reads wrong.
	for _, c := range counts {
		assert.Equalf(t, c.want, panel(c.file, c.title, c.label), "%s: panel %q", c.file, c.title)
	}
	// Means and quantiles: the critical incident's, finite, and no NaN for
	// the priorities that had none.
	for _, title := range []string{"MTTA by priority (mean)", "MTTA by priority (p90)", "MTTR by priority (mean)", "MTTR by priority (p90)"} {
		got := panel(alerts, title, "priority")
		assert.Containsf(t, got, "critical", "%s: panel %q", alerts, title)
		for _, p := range prios {
			val, ok := got[p]
			switch {
			case !ok:
			case math.IsNaN(val) || math.IsInf(val, 0):
				t.Errorf("%s: panel %q: %s is %v", alerts, title, p, val)
			default:
				assert.Positivef(t, val, "%s: panel %q: %s", alerts, title, p)
			}
		}
	}

	// No panel shows NaN: a priority without incidents has no mean or
	// quantile rather than NaN.
	for _, p := range allPanels(dashboards[alerts].Panels) {
		if p.Type == "row" {
			continue
		}
		for _, r := range g.run(t, alerts, p, vars(alerts)) {
			for _, s := range r.series {
				assert.Falsef(t, slices.ContainsFunc(s.Values, math.IsNaN), "%s: panel %q query %s: NaN in %v: %s",
					alerts, p.Title, r.refID, s.Metric, r.expr)
			}
		}
	}

	// With the app target down, the Database dashboard's Up reads the
	// database's up only, and no panel filtered by $app shows vigil's own
	// series.
	app.Close()
	v.until(`up{job="app"} == 0`)
	g.end = time.Now()
	assert.Equal(t, map[string]float64{"": 1}, panel("database.json", "Up", ""), "database.json: panel \"Up\"")
	for _, title := range []string{"CPU seconds per second", "Resident memory"} {
		rs := g.panel(t, "application.json", dashboards["application.json"], vars("application.json"), title)
		assert.NotEmptyf(t, rs[0].series, "application.json: panel %q", title)
		for _, s := range rs[0].series {
			assert.Equalf(t, "app", s.Metric["app"], "application.json: panel %q shows %v", title, s.Metric)
		}
	}
	for file, d := range dashboards {
		vs := vars(file)
		for _, p := range allPanels(d.Panels) {
			if p.Type == "row" || !slices.ContainsFunc(p.Targets, func(tg target) bool { return strings.Contains(tg.Expr, "$app") }) {
				continue
			}
			for _, r := range g.run(t, file, p, vs) {
				for _, s := range r.series {
					assert.Falsef(t, s.Metric["job"] == "vigil" || s.Metric["app"] == "vigil",
						"%s: panel %q query %s shows vigil's own %v: %s", file, p.Title, r.refID, s.Metric, r.expr)
				}
			}
		}
	}
}

// requirePostgres fails early, naming only host and port (never the
// password), when nothing listens where the DSN points: every database panel
// would otherwise be reported as reading a metric vigil does not produce.
func requirePostgres(t *testing.T, dsn string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return // key=value DSNs: vigil's own error will say what is wrong
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	conn, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		t.Fatalf("no PostgreSQL at %s (set VIGIL_TEST_PG_DSN, or run scripts/pg-ensure.sh): %v", host, err)
	}
	conn.Close()
}

// testApp is the app vigil scrapes: process metrics and a request counter
// with half its requests failing, growing with time so rates are not zero.
type testApp struct {
	*httptest.Server
	start time.Time
}

func newTestApp(t *testing.T) *testApp {
	a := &testApp{start: time.Now()}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		secs := time.Since(a.start).Seconds()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", secs/10)
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 64<<20)
		fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total{code=\"200\"} %d\n", int(secs*20))
		fmt.Fprintf(w, "http_requests_total{code=\"500\"} %d\n", int(secs*20))
	}))
	t.Cleanup(a.Close)
	return a
}

// buildVigil builds cmd/vigil into a temporary directory.
func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects vigil's output while it runs.
type lockedBuffer struct {
	mtx sync.Mutex
	b   strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	return l.b.String()
}

// vigilProc is a running vigil.
type vigilProc struct {
	t    *testing.T
	base string
	out  *lockedBuffer
}

func startVigil(t *testing.T, bin, cfgFile, addr string) *vigilProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v := &vigilProc{t: t, base: "http://" + addr, out: &lockedBuffer{}}
	cmd := exec.CommandContext(ctx, bin, "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = v.out, v.out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("vigil exited early:\n%s", v.out.String())
		default:
		}
		if _, err := v.get("/ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil did not become ready in 30s:\n%s", v.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v
}

// get returns the body of a GET that answered 200. It does not stop the
// test, so that it can run inside require.Eventually's goroutine.
func (v *vigilProc) get(path string) ([]byte, error) {
	resp, err := v.do(http.MethodGet, path, "")
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

func (v *vigilProc) post(path, body string) {
	v.t.Helper()
	resp, err := v.do(http.MethodPost, path, body)
	require.NoError(v.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(v.t, http.StatusOK, resp.StatusCode, "POST %s: %s", path, b)
}

// testToken is the API token of the test's user: production refuses to run
// without users, and the API wants a token.
const testToken = "vgl_dashboards-test-token"

// do sends a request as the test's user.
func (v *vigilProc) do(method, path, body string) (*http.Response, error) {
	req, err := http.NewRequest(method, v.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return http.DefaultClient.Do(req)
}

// names returns the metric names vigil stores.
func (v *vigilProc) names() (map[string]bool, error) {
	b, err := v.get("/api/v1/label/__name__/values")
	if err != nil {
		return nil, err
	}
	var env struct {
		Data []string `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("metric names: %w", err)
	}
	out := make(map[string]bool, len(env.Data))
	for _, n := range env.Data {
		out[n] = true
	}
	return out, nil
}

// until waits up to 30s for expr to return a non-empty vector, failing the
// test with vigil's output when it does not.
func (v *vigilProc) until(expr string) {
	v.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := v.get("/api/v1/query?" + url.Values{"query": {expr}}.Encode())
		if err == nil {
			ss, err := parseResult(b)
			if err == nil && len(ss) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("%s: still empty after 30s (last error %v); vigil output:\n%s", expr, err, v.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openIncident returns the id of a triggered incident, or "".
func (v *vigilProc) openIncident() (string, error) {
	b, err := v.get("/api/v1/incidents?state=triggered")
	if err != nil {
		return "", err
	}
	var env struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return "", fmt.Errorf("incidents: %w", err)
	}
	if len(env.Data) == 0 {
		return "", nil
	}
	return env.Data[0].ID, nil
}
