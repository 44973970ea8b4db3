package web

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
)

// maxQueryRangePoints is the Prometheus API's own bound on a range query's
// steps; a query over it is Prometheus's to refuse, in its words.
const maxQueryRangePoints = 11_000

// subquerySteps is the largest number of subquery steps the evaluation of
// expr over [start, end] every step (step 0: an instant query) holds at
// once: the engine starts an evaluator on its own grid for each subquery,
// and a nested subquery's evaluator runs while its parents' are alive, so
// the steps along a chain of nested subqueries add up. defaultStep stands
// for a subquery written without a step (the engine's
// NoStepSubqueryIntervalFn); 0 leaves such subqueries out.
//
// Prometheus v0.314 to v0.316 (not v0.310) allocate two int64 per step of
// each subquery's grid (per-step sample statistics) before they evaluate it
// or check max_samples: `sum_over_time(vector(1)[1d:1ms])` allocates 1.4 GB
// at once where v0.310 stopped at 84 MB on max_samples. The web layer
// refuses such queries first.
//
// The grids are the engine's (subqueryTimeRange and
// subqueryEvaluationTimes in promql/engine.go): the parent's last step, the
// subquery's offset and range, its first step aligned to its own
// resolution. A subquery pinned with @ is placed from the offset the
// engine gives it against its parent's first step.
//
// expr is preprocessed (duration expressions evaluated, step-invariant parts
// marked, start() and end() made timestamps) as the engine does; the
// caller's tree is changed.
func subquerySteps(expr parser.Expr, start, end time.Time, step, defaultStep time.Duration) (int64, error) {
	expr, err := promql.PreprocessExpr(expr, start, end, step)
	if err != nil {
		return 0, err
	}
	// The query's own evaluator: an instant query is one step of 1 ms.
	s, e, iv := start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	if step <= 0 {
		e, iv = s, 1
	}
	var most int64
	// walk visits n, evaluated on the grid from s to e every iv, while
	// held steps of enclosing subqueries are alive.
	var walk func(n parser.Node, s, e, iv, held int64)
	walk = func(n parser.Node, s, e, iv, held int64) {
		switch x := n.(type) {
		case *parser.StepInvariantExpr:
			// Evaluated once, at the first step.
			walk(x.Expr, s, s, iv, held)
			return
		case *parser.SubqueryExpr:
			sub := x.Step.Milliseconds()
			if x.Step == 0 {
				sub = defaultStep.Milliseconds()
			}
			if sub <= 0 {
				return
			}
			offset := x.OriginalOffset.Milliseconds()
			if x.Timestamp != nil {
				offset += s - *x.Timestamp
			}
			cs, ce := subqueryGrid(s, e, iv, offset, x.Range.Milliseconds(), sub, x.Timestamp != nil)
			if ce >= cs {
				held += (ce-cs)/sub + 1
			}
			most = max(most, held)
			walk(x.Expr, cs, ce, sub, held)
			return
		}
		for _, c := range parser.Children(n) {
			walk(c, s, e, iv, held)
		}
	}
	walk(expr, s, e, iv, 0)
	return most, nil
}

// subqueryGrid is the first and last step (ms) of a subquery's evaluator
// under a parent evaluating from start to end every interval, as the
// engine's subqueryEvaluationTimes: the parent's end cut to its last step
// (its first step when the subquery is pinned with @), then the range and
// offset applied and the first step aligned to the subquery's own step.
func subqueryGrid(start, end, interval, offset, rangeMillis, sub int64, fixed bool) (int64, int64) {
	if fixed {
		end = start
	} else if interval > 0 {
		end = start + (end-start)/interval*interval
	}
	first := sub * ((start - offset - rangeMillis) / sub)
	if first <= start-offset-rangeMillis {
		first += sub
	}
	return first, end - offset
}

// querySubquerySteps reads the evaluation grid of an /api/v1/query or
// /api/v1/query_range request and returns subquerySteps for expr. ok is
// false when the request's times are not Prometheus's to evaluate (it will
// answer their error itself).
func querySubquerySteps(r *http.Request, path string, expr parser.Expr, defaultStep time.Duration) (steps int64, ok bool) {
	now := time.Now()
	start, end, step := now, now, time.Duration(0)
	switch {
	case path == apiPrefix+"/query" && r.FormValue("time") != "":
		t, err := parseAPITime(r.FormValue("time"))
		if err != nil {
			return 0, false
		}
		start, end = t, t
	case path == apiPrefix+"/query_range":
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

// parseAPITime reads a time as the Prometheus API does: Unix seconds,
// RFC 3339, or the API's own earliest and latest times (years a 4-digit
// RFC 3339 parser cannot read).
func parseAPITime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1000)/1000*float64(time.Second))).UTC(), nil
	}
	switch s {
	case apiv1.MinTime.Format(time.RFC3339Nano):
		return apiv1.MinTime, nil
	case apiv1.MaxTime.Format(time.RFC3339Nano):
		return apiv1.MaxTime, nil
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
