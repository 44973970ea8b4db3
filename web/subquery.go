package web

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// maxQueryRangePoints is the Prometheus API's own bound on a range query's
// steps; a query over it is Prometheus's to refuse, in its words.
const maxQueryRangePoints = 11_000

// subquerySteps is the largest number of steps any subquery of expr is
// evaluated at when expr runs over [start, end] every step (step 0: an
// instant query): the size of the grid of the evaluator Prometheus starts for
// that subquery. defaultStep stands for a subquery written without a step
// (the engine's NoStepSubqueryIntervalFn); 0 leaves such subqueries out.
//
// Prometheus v0.314 to v0.316 (not v0.310) allocate two int64 per step of
// that grid (per-step sample statistics) for every subquery before they
// evaluate it or check max_samples: `sum_over_time(vector(1)[1d:1ms])`
// allocates 1.4 GB at once where v0.310 stopped at 84 MB on max_samples.
// The web layer refuses such queries first.
//
// expr is preprocessed (duration expressions evaluated, step-invariant parts
// marked) as the engine does; the caller's tree is changed.
func subquerySteps(expr parser.Expr, start, end time.Time, step, defaultStep time.Duration) (int64, error) {
	expr, err := promql.PreprocessExpr(expr, start, end, step)
	if err != nil {
		return 0, err
	}
	span := end.Sub(start).Milliseconds()
	if step > 0 {
		// The engine's last step is the last whole step before end.
		span = span / step.Milliseconds() * step.Milliseconds()
	}
	var most int64
	var walk func(n parser.Node, span int64)
	walk = func(n parser.Node, span int64) {
		switch e := n.(type) {
		case *parser.StepInvariantExpr:
			// Evaluated once, at the first step.
			walk(e.Expr, 0)
			return
		case *parser.SubqueryExpr:
			sub := e.Step
			if sub == 0 {
				sub = defaultStep
			}
			if sub.Milliseconds() <= 0 {
				return
			}
			if e.Timestamp != nil || e.StartOrEnd != 0 {
				// @ pins every parent step to one window.
				span = 0
			}
			// The child grid covers the parent's span plus the subquery's
			// range; offsets shift it without widening it.
			child := span + e.Range.Milliseconds()
			most = max(most, child/sub.Milliseconds()+1)
			walk(e.Expr, child/sub.Milliseconds()*sub.Milliseconds())
			return
		}
		for _, c := range parser.Children(n) {
			walk(c, span)
		}
	}
	walk(expr, span)
	return most, nil
}

// querySubquerySteps reads the evaluation grid of an /api/v1/query or
// /api/v1/query_range request and returns subquerySteps for expr. ok is
// false when the request's times are not Prometheus's to evaluate (it will
// answer their error itself).
func querySubquerySteps(r *http.Request, path string, expr parser.Expr, defaultStep time.Duration) (steps int64, ok bool) {
	now := time.Now()
	start, end, step := now, now, time.Duration(0)
	if path == apiPrefix+"/query_range" {
		var err1, err2, err3 error
		start, err1 = parseAPITime(r.FormValue("start"))
		end, err2 = parseAPITime(r.FormValue("end"))
		step, err3 = parseAPIDuration(r.FormValue("step"))
		if err1 != nil || err2 != nil || err3 != nil || end.Before(start) || step <= 0 ||
			end.Sub(start)/step > maxQueryRangePoints {
			return 0, false
		}
	}
	steps, err := subquerySteps(expr, start, end, step, defaultStep)
	if err != nil {
		return 0, false
	}
	return steps, true
}

// parseAPITime reads a time as the Prometheus API does: Unix seconds or
// RFC 3339.
func parseAPITime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1000)/1000*float64(time.Second))).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// parseAPIDuration reads a step as the Prometheus API does: seconds or a
// Prometheus duration.
func parseAPIDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		d := f * float64(time.Second)
		if math.IsNaN(d) || d >= math.MaxInt64 || d < math.MinInt64 {
			return 0, strconv.ErrRange
		}
		return time.Duration(d), nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}
