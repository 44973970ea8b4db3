package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-sh/vigil/notifier"
)

// Each open incident's card shows its alert's expression over the last
// hour as a small SVG drawn on the server: the shape at a glance, without
// Grafana and without a script.

// Bounds of the incident graphs, so that an alert storm cannot make a
// refresh of the page expensive.
const (
	// graphIncidents is how many open incidents (the first, most urgent,
	// ones) get a graph; the page says so once when there are more.
	graphIncidents = 20
	// graphRange and graphStep give 61 points, one a minute.
	graphRange = time.Hour
	graphStep  = time.Minute
	// graphTimeout bounds the queries of one page together; the graphs
	// not drawn by then say so.
	graphTimeout = 2 * time.Second
	// graphMaxSeries bounds the lines in one graph.
	graphMaxSeries = 5
)

// The SVG's coordinates: a viewBox of graphWidth × graphHeight, the plot
// inside the margins that hold the axis labels.
const (
	graphWidth  = 320
	graphHeight = 96
	plotLeft    = 52
	plotRight   = graphWidth - 8
	plotTop     = 8
	plotBottom  = graphHeight - 18
	plotInset   = 4
)

// graphView is one incident's graph as the template draws it.
type graphView struct {
	// ID makes the ids of the SVG's title and description unique.
	ID            string
	Title, Desc   string
	Width, Height int
	// Left, Right, Top and Bottom bound the plot.
	Left, Right, Top, Bottom int
	// Paths are the series' lines, an SVG path each; Dots are the points
	// with no neighbour to join.
	Paths []string
	Dots  []graphDot
	// Threshold is the y of the condition's number, when it has one.
	Threshold    string
	HasThreshold bool
	// YMax and YMin label the top and the bottom of the plot.
	YMax, YMin string
}

// graphDot is a lone point of a graph.
type graphDot struct{ X, Y string }

// graphExpr splits a condition of the form `expr > number` (or <, >=, <=,
// ==, !=) into what to draw and the threshold; any other expression is
// drawn as it is.
func graphExpr(e parser.Expr) (draw parser.Expr, threshold float64, ok bool) {
	e = unparen(e)
	b, isBinary := e.(*parser.BinaryExpr)
	if !isBinary || !b.Op.IsComparisonOperator() || b.ReturnBool {
		return e, 0, false
	}
	if n, isNumber := unparen(b.RHS).(*parser.NumberLiteral); isNumber {
		return b.LHS, n.Val, true
	}
	return e, 0, false
}

// unparen strips the parentheses around an expression.
func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// graphSource is a rule's expression evaluated once for every incident of
// the rule on the page.
type graphSource struct {
	draw         parser.Expr
	threshold    float64
	hasThreshold bool
	unit         unit
	series       []graphSeries
	err          error
}

// graphSeries is one series of a range query, copied out of the engine's
// pooled memory.
type graphSeries struct {
	metric labels.Labels
	points []promql.FPoint
}

// pageGraphs draws the graphs of the first graphIncidents open incidents,
// evaluating each rule's expression once, within graphTimeout; none for a
// user without view_metrics.
func (h *Handler) pageGraphs(ctx context.Context, d *pageData, byName map[string][]*rules.AlertingRule) {
	if h.queryEngine == nil || len(d.Incidents) == 0 || !d.canGraph {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, graphTimeout)
	defer cancel()
	end := d.Now.Truncate(time.Second)
	start := end.Add(-graphRange)
	sources := map[*rules.AlertingRule]*graphSource{}
	for i := range d.Incidents {
		inc := &d.Incidents[i]
		if i >= graphIncidents {
			d.GraphsFor = graphIncidents
			break
		}
		rule := ruleOf(byName, inc.Alert)
		if rule == nil {
			continue
		}
		src, ok := sources[rule]
		if !ok {
			src = h.graphSource(ctx, rule, start, end)
			sources[rule] = src
		}
		if src.err != nil {
			inc.GraphNote = "No graph: " + src.err.Error()
			continue
		}
		var mine []graphSeries
		for _, s := range src.series {
			if seriesOf(s.metric, inc.Alert.Labels, rule.Labels()) && len(mine) < graphMaxSeries {
				mine = append(mine, s)
			}
		}
		inc.Graph = drawGraph(inc.ID, inc.Alert.Name, src, mine, start, end)
	}
}

// ruleOf finds the alerting rule of an alert: its name, and its own labels
// among the alert's.
func ruleOf(byName map[string][]*rules.AlertingRule, a notifier.Alert) *rules.AlertingRule {
	for _, r := range byName[a.Name] {
		match := true
		r.Labels().Range(func(l labels.Label) {
			if a.Labels[l.Name] != l.Value {
				match = false
			}
		})
		if match {
			return r
		}
	}
	return nil
}

// seriesOf reports whether a series of the rule's expression is the
// incident's: its labels are the alert's, but for the metric name (which
// alerts drop) and those the rule sets itself.
func seriesOf(metric labels.Labels, alert map[string]string, ruleLabels labels.Labels) bool {
	match := true
	metric.Range(func(l labels.Label) {
		if l.Name == labels.MetricName || ruleLabels.Has(l.Name) {
			return
		}
		if v, ok := alert[l.Name]; !ok || v != l.Value {
			match = false
		}
	})
	return match
}

// graphSource evaluates what to draw of a rule over [start, end].
func (h *Handler) graphSource(ctx context.Context, rule *rules.AlertingRule, start, end time.Time) *graphSource {
	src := &graphSource{}
	src.draw, src.threshold, src.hasThreshold = graphExpr(rule.Query())
	src.unit = unitOfExpr(src.draw)
	if err := ctx.Err(); err != nil {
		src.err = errors.New("the page's time for graphs ran out")
		return src
	}
	// A turn through the API's query gate: the graphs run on the API's
	// engine, whose memory budget counts query.max_concurrency queries.
	lim := h.queryLimits()
	release, err := h.queryGate.acquire(ctx, lim.maxConcurrency, lim.timeout)
	if err != nil {
		h.queryGate.refused.WithLabelValues("busy").Inc()
		src.err = errors.New("too many queries run now; reload the page")
		if ctx.Err() == nil && !errors.Is(err, errBusy) {
			src.err = fmt.Errorf("the query failed: %w", err)
		}
		return src
	}
	defer release()
	q, err := h.queryEngine.NewRangeQuery(ctx, h.storage, nil, src.draw.String(), start, end, graphStep)
	if err != nil {
		src.err = fmt.Errorf("the query failed: %w", err)
		return src
	}
	// Close hands the result's memory back to the engine: copy it first.
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		src.err = fmt.Errorf("the query failed: %w", res.Err)
		if errors.Is(res.Err, context.DeadlineExceeded) || ctx.Err() != nil {
			src.err = errors.New("the page's time for graphs ran out")
		}
		return src
	}
	switch v := res.Value.(type) {
	case promql.Matrix:
		for _, s := range v {
			src.series = append(src.series, graphSeries{metric: s.Metric, points: append([]promql.FPoint(nil), s.Floats...)})
		}
	default:
		src.err = fmt.Errorf("the query returned a %s", res.Value.Type())
	}
	return src
}

// drawGraph lays out series over [start, end] in the SVG's coordinates.
func drawGraph(id, alert string, src *graphSource, series []graphSeries, start, end time.Time) *graphView {
	g := &graphView{
		ID: "graph-" + id, Width: graphWidth, Height: graphHeight,
		Left: plotLeft, Right: plotRight, Top: plotTop, Bottom: plotBottom,
		Title: fmt.Sprintf("%s over the last hour: %s", alert, src.draw),
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	var last promql.FPoint
	for _, s := range series {
		for _, p := range s.points {
			if math.IsNaN(p.F) || math.IsInf(p.F, 0) {
				continue
			}
			lo, hi = min(lo, p.F), max(hi, p.F)
			if p.T >= last.T {
				last = p
			}
		}
	}
	if math.IsInf(lo, 1) {
		g.Desc = "No data in the last hour."
		if src.hasThreshold {
			g.Desc += " Threshold " + formatValue(src.threshold, src.unit) + "."
		}
		return g
	}
	g.Desc = fmt.Sprintf("Lowest %s, highest %s, latest %s at %s.", formatValue(lo, src.unit), formatValue(hi, src.unit),
		formatValue(last.F, src.unit), time.UnixMilli(last.T).UTC().Format("15:04 UTC"))
	if src.hasThreshold {
		lo, hi = min(lo, src.threshold), max(hi, src.threshold)
		g.Desc += " Threshold " + formatValue(src.threshold, src.unit) + "."
	}
	if hi == lo {
		pad := math.Max(math.Abs(hi)*0.1, 1)
		lo, hi = lo-pad, hi+pad
	}
	g.YMax, g.YMin = formatValue(hi, src.unit), formatValue(lo, src.unit)
	x := func(t int64) float64 {
		return plotLeft + float64(t-start.UnixMilli())/float64(end.Sub(start).Milliseconds())*(plotRight-plotLeft)
	}
	// The lowest and highest values sit plotInset inside the plot's box,
	// level with their labels, so that a line along them stays visible.
	y := func(v float64) float64 {
		return plotBottom - plotInset - (v-lo)/(hi-lo)*(plotBottom-plotTop-2*plotInset)
	}
	for _, s := range series {
		// Runs of consecutive steps: a missing step breaks the line rather
		// than bridging the gap, and a run of one point is a dot.
		var runs [][]promql.FPoint
		prev := int64(math.MinInt64)
		for _, p := range s.points {
			if math.IsNaN(p.F) || math.IsInf(p.F, 0) {
				prev = math.MinInt64
				continue
			}
			if prev == math.MinInt64 || p.T-prev > graphStep.Milliseconds()*3/2 {
				runs = append(runs, nil)
			}
			runs[len(runs)-1] = append(runs[len(runs)-1], p)
			prev = p.T
		}
		var b strings.Builder
		for _, run := range runs {
			if len(run) == 1 {
				g.Dots = append(g.Dots, graphDot{X: fmt.Sprintf("%.1f", x(run[0].T)), Y: fmt.Sprintf("%.1f", y(run[0].F))})
				continue
			}
			for i, p := range run {
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				cmd := "L"
				if i == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&b, "%s%.1f,%.1f", cmd, x(p.T), y(p.F))
			}
		}
		if b.Len() > 0 {
			g.Paths = append(g.Paths, b.String())
		}
	}
	if src.hasThreshold {
		g.HasThreshold = true
		g.Threshold = fmt.Sprintf("%.1f", y(src.threshold))
	}
	return g
}

// PlotWidth is the plot's width, for the template.
func (g *graphView) PlotWidth() int { return g.Right - g.Left }

// PlotHeight is the plot's height, for the template.
func (g *graphView) PlotHeight() int { return g.Bottom - g.Top }

// LabelX is where the y axis labels end, left of the plot.
func (g *graphView) LabelX() int { return g.Left - 4 }

// MaxY is the y of the highest value.
func (g *graphView) MaxY() int { return g.Top + plotInset }

// MinY is the y of the lowest value.
func (g *graphView) MinY() int { return g.Bottom - plotInset }

// MidX is the plot's centre, across.
func (g *graphView) MidX() int { return (g.Left + g.Right) / 2 }

// MidY is the plot's centre, down.
func (g *graphView) MidY() int { return (g.Top + g.Bottom) / 2 }
