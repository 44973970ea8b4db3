package web

import (
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/promqlparse"
	"github.com/vigil-sh/vigil/notifier"
)

func TestGraphExpr(t *testing.T) {
	for _, tc := range []struct {
		expr, draw string
		threshold  float64
		ok         bool
	}{
		{`cpu_usage{app="app"} > 80`, `cpu_usage{app="app"}`, 80, true},
		{`(error_rate > (1))`, `error_rate`, 1, true},
		{`query_duration > 1s`, `query_duration`, 1, true},
		{`up == 0`, `up`, 0, true},
		{`disk_usage <= 10`, `disk_usage`, 10, true},
		{`cpu_usage > bool 80`, `cpu_usage > bool 80`, 0, false},
		{`cpu_usage > memory_usage`, `cpu_usage > memory_usage`, 0, false},
		{`80 < cpu_usage`, `80 < cpu_usage`, 0, false},
		{`absent(up)`, `absent(up)`, 0, false},
	} {
		e, err := promqlparse.ParseExpr(tc.expr)
		require.NoError(t, err)
		draw, threshold, ok := graphExpr(e)
		require.Equal(t, tc.draw, draw.String(), tc.expr)
		require.Equal(t, tc.threshold, threshold, tc.expr)
		require.Equal(t, tc.ok, ok, tc.expr)
	}
}

// svgDoc is what the graph tests read of the SVG.
type svgDoc struct {
	XMLName  xml.Name `xml:"svg"`
	Labelled string   `xml:"aria-labelledby,attr"`
	Role     string   `xml:"role,attr"`
	Title    struct {
		ID   string `xml:"id,attr"`
		Text string `xml:",chardata"`
	} `xml:"title"`
	Desc struct {
		ID   string `xml:"id,attr"`
		Text string `xml:",chardata"`
	} `xml:"desc"`
	Paths []struct {
		D string `xml:"d,attr"`
	} `xml:"path"`
	Lines []struct {
		Class string `xml:"class,attr"`
		Y1    string `xml:"y1,attr"`
		Y2    string `xml:"y2,attr"`
	} `xml:"line"`
	Texts   []string `xml:"text"`
	Circles []struct {
		CX string `xml:"cx,attr"`
	} `xml:"circle"`
}

// renderGraph renders a graph with the page's template and parses it.
func renderGraph(t *testing.T, g *graphView) svgDoc {
	t.Helper()
	var b strings.Builder
	require.NoError(t, pageTemplate.ExecuteTemplate(&b, "graph", g))
	var doc svgDoc
	require.NoError(t, xml.Unmarshal([]byte(b.String()), &doc), b.String())
	return doc
}

var pathPoint = regexp.MustCompile(`[ML]([\d.]+),([\d.]+)`)

func TestDrawGraph(t *testing.T) {
	end := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	start := end.Add(-graphRange)
	// 61 points, one a minute, from 60 up to 100.
	var ramp []promql.FPoint
	for i := range 61 {
		ramp = append(ramp, promql.FPoint{T: start.Add(time.Duration(i) * time.Minute).UnixMilli(), F: 60 + float64(i)*40/60})
	}
	src := &graphSource{threshold: 80, hasThreshold: true, unit: unitPercent}
	src.draw, _ = promqlparse.ParseExpr(`cpu_usage{app="app"}`)

	t.Run("ramp with threshold", func(t *testing.T) {
		g := drawGraph("inc-1", "high_cpu", src, []graphSeries{{metric: labels.FromStrings("instance", "a"), points: ramp}}, start, end)
		doc := renderGraph(t, g)
		require.Equal(t, "img", doc.Role)
		require.Equal(t, "graph-inc-1-title graph-inc-1-desc", doc.Labelled)
		require.Equal(t, "graph-inc-1-title", doc.Title.ID)
		require.Equal(t, `high_cpu over the last hour: cpu_usage{app="app"}`, doc.Title.Text)
		require.Equal(t, "Lowest 60%, highest 100%, latest 100% at 12:00 UTC. Threshold 80%.", doc.Desc.Text)
		require.Len(t, doc.Paths, 1)
		pts := pathPoint.FindAllStringSubmatch(doc.Paths[0].D, -1)
		require.Len(t, pts, 61, "one point a minute")
		require.True(t, strings.HasPrefix(doc.Paths[0].D, "M"))
		require.Equal(t, 1, strings.Count(doc.Paths[0].D, "M"), "no gaps")
		// The ramp runs from the bottom left to the top right of the plot.
		require.Equal(t, []string{"52.0", "74.0"}, pts[0][1:])
		require.Equal(t, []string{"312.0", "12.0"}, pts[60][1:])
		// 80 is half way between 60 and 100: half way down the plot.
		require.Len(t, doc.Lines, 1)
		require.Equal(t, "threshold", doc.Lines[0].Class)
		require.Equal(t, "43.0", doc.Lines[0].Y1)
		require.Equal(t, doc.Lines[0].Y1, doc.Lines[0].Y2)
		require.Contains(t, doc.Texts, "100%")
		require.Contains(t, doc.Texts, "60%")
	})

	t.Run("threshold above the data widens the axis", func(t *testing.T) {
		low := []promql.FPoint{{T: start.UnixMilli(), F: 40}, {T: end.UnixMilli(), F: 60}}
		g := drawGraph("x", "high_cpu", src, []graphSeries{{points: low}}, start, end)
		require.Equal(t, "80%", g.YMax)
		require.Equal(t, "40%", g.YMin)
		require.Equal(t, "12.0", g.Threshold, "the threshold is the top of the plot, level with its label")
	})

	t.Run("a gap breaks the line and a lone point is a dot", func(t *testing.T) {
		pts := append(append([]promql.FPoint{}, ramp[:10]...), ramp[20:59]...)
		pts = append(pts, ramp[60])
		g := drawGraph("x", "high_cpu", src, []graphSeries{{points: pts}}, start, end)
		require.Len(t, g.Paths, 1)
		require.Equal(t, 2, strings.Count(g.Paths[0], "M"), "two lines")
		require.Len(t, pathPoint.FindAllString(g.Paths[0], -1), 49)
		require.Equal(t, []graphDot{{X: "312.0", Y: "12.0"}}, g.Dots, "and a dot")
		doc := renderGraph(t, g)
		require.Len(t, doc.Circles, 1)
	})

	t.Run("flat line, no threshold, seconds", func(t *testing.T) {
		flat := &graphSource{unit: unitSeconds}
		flat.draw, _ = promqlparse.ParseExpr(`query_duration`)
		g := drawGraph("x", "slow", flat, []graphSeries{{points: []promql.FPoint{{T: start.UnixMilli(), F: 0.25}, {T: end.UnixMilli(), F: 0.25}}}}, start, end)
		doc := renderGraph(t, g)
		require.Empty(t, doc.Lines)
		require.Equal(t, "1.25 s", g.YMax)
		require.Equal(t, "-750 ms", g.YMin)
		require.Equal(t, "Lowest 250 ms, highest 250 ms, latest 250 ms at 12:00 UTC.", doc.Desc.Text)
	})

	t.Run("no data", func(t *testing.T) {
		g := drawGraph("x", "high_cpu", src, nil, start, end)
		doc := renderGraph(t, g)
		require.Empty(t, doc.Paths)
		require.Empty(t, doc.Lines)
		require.Equal(t, "No data in the last hour. Threshold 80%.", doc.Desc.Text)
		require.Contains(t, doc.Texts, "no data")
	})

	t.Run("NaN is skipped", func(t *testing.T) {
		g := drawGraph("x", "high_cpu", src, []graphSeries{{points: []promql.FPoint{{T: start.UnixMilli(), F: math.NaN()}}}}, start, end)
		require.Empty(t, g.Paths)
	})
}

// TestPageGraphs: the open incidents of a rule each get a graph of their
// own series, drawn from the TSDB through the API's engine; the first
// graphIncidents only.
func TestPageGraphs(t *testing.T) {
	incs := &fakeIncidents{m: map[string]notifier.Incident{}}
	now := time.Now()
	highCPU := func(id, app, instance string, age time.Duration) notifier.Incident {
		return notifier.Incident{ID: id, State: notifier.StateTriggered, Priority: notifier.PriorityCritical, CreatedAt: now.Add(-age),
			Alert: notifier.Alert{Name: "HighCPU", Value: 95.00000000000001,
				Labels: map[string]string{"alertname": "HighCPU", "app": app, "instance": instance, "severity": "critical"}}}
	}
	incs.m["cpu-a"] = highCPU("cpu-a", "app", "c", 0)
	incs.m["cpu-b"] = highCPU("cpu-b", "database", "d", time.Second)
	incs.m["other"] = notifier.Incident{ID: "other", State: notifier.StateTriggered, CreatedAt: now.Add(-time.Minute), Alert: notifier.Alert{Name: "NoSuchRule"}}
	for i := range graphIncidents {
		id := fmt.Sprint("old-", i)
		incs.m[id] = highCPU(id, "app", "c", time.Hour+time.Duration(i)*time.Second)
	}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	// An hour of instance c climbing from 51 to 109; d stays at 60. (The
	// TSDB's head takes no sample an hour older than its newest, nor one
	// older than its series' last: appendSamples wrote a and b.)
	app := env.db.Appender(context.Background())
	for i := 1; i < 60; i++ {
		ts := now.Add(-time.Hour + time.Duration(i)*time.Minute).UnixMilli()
		_, err := app.Append(0, labels.FromStrings("__name__", "cpu_usage", "app", "app", "instance", "c"), ts, float64(50+i))
		require.NoError(t, err)
		_, err = app.Append(0, labels.FromStrings("__name__", "cpu_usage", "app", "database", "instance", "d"), ts, 60)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())

	waitFiring(t, env)
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	card := func(id string) string {
		i := strings.Index(page, `id="incident-`+id+`"`)
		require.Positive(t, i, id)
		j := strings.Index(page[i:], "</article>")
		return page[i : i+j]
	}

	a := card("cpu-a")
	require.Contains(t, a, `<dd class="value">95%</dd>`, "the value is rounded, in percent")
	require.Equal(t, 1, strings.Count(a, "<svg"), "the incident has a graph")
	require.Equal(t, 1, strings.Count(a, `<path class="series"`), "of its own series only")
	require.Contains(t, a, `<line class="threshold"`)
	require.Contains(t, a, "Threshold 80%.")
	require.Contains(t, a, `Lowest 51%, highest 109%`, "from the TSDB: the hour's samples")
	path := regexp.MustCompile(`<path class="series" d="([^"]*)"`).FindStringSubmatch(a)
	require.GreaterOrEqual(t, len(pathPoint.FindAllString(path[1], -1)), 58, "a point a minute")

	b := card("cpu-b")
	require.Contains(t, b, "Lowest 60%, highest 60%", "d's own series")

	require.NotContains(t, card("other"), "<svg", "no rule, no graph")

	require.Equal(t, graphIncidents, strings.Count(page, `<svg class="graph"`))
	require.Equal(t, 1, strings.Count(page, fmt.Sprintf("Only the first %d incidents have a graph", graphIncidents)), "said once")

	// A user who may not query metrics sees no graph. (anyone has no user:
	// every incident is visible.)
	anyone, _ := gin.CreateTestContext(httptest.NewRecorder())
	d := &pageData{Now: time.Now()}
	env.h.pageIncidents(anyone, d)
	env.h.pageGraphs(context.Background(), d, env.h.alertingRules())
	for _, inc := range d.Incidents {
		require.Nil(t, inc.Graph, "no view_metrics, no graph")
	}
	d.canGraph = true
	env.h.pageGraphs(context.Background(), d, env.h.alertingRules())
	require.NotNil(t, d.Incidents[0].Graph)

	// Past the page's time for graphs, the cards say so instead.
	d = &pageData{Now: time.Now(), canGraph: true}
	env.h.pageIncidents(anyone, d)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	env.h.pageGraphs(done, d, env.h.alertingRules())
	require.Nil(t, d.Incidents[0].Graph)
	require.Equal(t, "No graph: the page's time for graphs ran out", d.Incidents[0].GraphNote)

	// The alerts table rounds the same way.
	require.Contains(t, page, `class="value">95%</td>`)
}

// TestPageGraphsTakeTheirTurn: the page's graphs are queries of the API's
// engine and take their turn through the query gate like any API query,
// so that page loads cannot run more at once than query.max_concurrency
// (the memory budget of the query block assumes no more).
func TestPageGraphsTakeTheirTurn(t *testing.T) {
	incs := &fakeIncidents{m: map[string]notifier.Incident{}}
	incs.m["cpu-a"] = notifier.Incident{ID: "cpu-a", State: notifier.StateTriggered, Priority: notifier.PriorityCritical, CreatedAt: time.Now(),
		Alert: notifier.Alert{Name: "HighCPU", Labels: map[string]string{"alertname": "HighCPU", "app": "app", "instance": "c", "severity": "critical"}}}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	waitFiring(t, env)

	lim := env.h.queryLimits()
	for range lim.maxConcurrency {
		release, err := env.h.queryGate.acquire(context.Background(), lim.maxConcurrency, time.Second)
		require.NoError(t, err)
		defer release()
	}
	anyone, _ := gin.CreateTestContext(httptest.NewRecorder())
	d := &pageData{Now: time.Now(), canGraph: true}
	env.h.pageIncidents(anyone, d)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	env.h.pageGraphs(ctx, d, env.h.alertingRules())
	require.Len(t, d.Incidents, 1)
	require.Nil(t, d.Incidents[0].Graph, "a graph drawn while every query turn was taken")
	require.NotEmpty(t, d.Incidents[0].GraphNote)
}
