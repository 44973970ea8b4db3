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
)

// graphView is one incident's graph as the template draws it.
type graphView struct {
	// ID makes the ids of the SVG's title and description unique.
	ID            string
	Title, Desc   string
	Width, Height int
	// Left, Right, Top and Bottom bound the plot.
	Left, Right, Top, Bottom int
	// Paths are the series' lines, an SVG path each.
	Paths []string
	// Threshold is the y of the condition's number, when it has one.
	Threshold    string
	HasThreshold bool
	// YMax and YMin label the top and the bottom of the plot.
	YMax, YMin string
}

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
	y := func(v float64) float64 { return plotBottom - (v-lo)/(hi-lo)*(plotBottom-plotTop) }
	for _, s := range series {
		var b strings.Builder
		prev, run := int64(math.MinInt64), 0
		for _, p := range s.points {
			if math.IsNaN(p.F) || math.IsInf(p.F, 0) {
				prev = math.MinInt64
				continue
			}
			// A missing step breaks the line rather than bridging the gap.
			if prev == math.MinInt64 || p.T-prev > graphStep.Milliseconds()*3/2 {
				if run == 1 {
					// A lone point: a zero-length line that the round cap
					// draws as a dot.
					b.WriteString(" l0,0")
				}
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "M%.1f,%.1f", x(p.T), y(p.F))
				run = 1
			} else {
				fmt.Fprintf(&b, " L%.1f,%.1f", x(p.T), y(p.F))
				run++
			}
			prev = p.T
		}
		if run == 1 {
			b.WriteString(" l0,0")
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

// MidX is the plot's centre, across.
func (g *graphView) MidX() int { return (g.Left + g.Right) / 2 }

// MidY is the plot's centre, down.
func (g *graphView) MidY() int { return (g.Top + g.Bottom) / 2 }
