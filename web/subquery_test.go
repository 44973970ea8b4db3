package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// TestSubquerySteps counts the steps of the evaluators Prometheus starts for
// subqueries, for instant and range queries, nested, pinned with @, with a
// default step and with a duration expression as the step. Each figure is
// worked out by hand from the engine's subqueryEvaluationTimes: the first
// step is the first multiple of the subquery's step after start − offset −
// range, the last is the parent's last step less the offset.
func TestSubquerySteps(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	t1 := t0.Add(time.Hour) // range queries: an hour every minute
	for _, tc := range []struct {
		name        string
		expr        string
		end         time.Time // zero: an instant query at t0
		defaultStep time.Duration
		want        int64
	}{
		{"no subquery", `sum(rate(up[5m]))`, time.Time{}, 0, 0},
		{"a day at 1ms", `sum_over_time(vector(1)[1d:1ms])`, time.Time{}, 0, 86_400_000},
		{"an hour at 1s, offset", `sum_over_time(vector(1)[1h:1s] offset 1d)`, time.Time{}, 0, 3600},
		{"default step", `max_over_time(up[1h:])`, time.Time{}, 15 * time.Second, 240},
		{"default step unknown", `max_over_time(up[1h:])`, time.Time{}, 0, 0},
		// The outer subquery's 60 steps run from 996,420 s to 999,960 s;
		// the inner one covers them and its own 10m at 1s (4,140 steps)
		// while the outer one's are held: 4,200.
		{"nested", `max_over_time(max_over_time(vector(1)[10m:1s])[1h:1m])`, time.Time{}, 0, 4200},
		// Two levels of 10,000 steps each, held at once.
		{"nested, adding up", `count_over_time(count_over_time(vector(1)[1ms:1ms])[10s:1ms])`, time.Time{}, 0, 20_000},
		// Side by side, not nested: one at a time.
		{"siblings", `sum_over_time(vector(1)[10s:1ms]) + sum_over_time(vector(1)[5s:1ms])`, time.Time{}, 0, 10_000},
		{"range query", `sum_over_time(vector(1)[1h:1s])`, t1, 0, 7200},
		{"range query, pinned with @", `sum_over_time(vector(1)[1h:1s] @ 1000000)`, t1, 0, 3600},
		{"range query, step()", `sum_over_time(vector(1)[1h:step()])`, t1, 0, 120},
		{"step-invariant part of a range query", `sum_over_time(vector(1)[1h:1s] @ start())`, t1, 0, 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end, step := t0, time.Duration(0)
			if !tc.end.IsZero() {
				end, step = tc.end, time.Minute
			}
			e, err := promqlparse.ParseExpr(tc.expr)
			require.NoError(t, err)
			got, err := subquerySteps(e, t0, end, step, tc.defaultStep)
			require.NoError(t, err)
			require.Equal(t, tc.want, got, tc.expr)
		})
	}
}

// TestSubqueryStepsBound: a query with a subquery of more steps than
// query.max_samples is refused before Prometheus's engine allocates its
// per-step statistics; one within the bound is evaluated, and still stopped
// by the engine at max_samples.
func TestSubqueryStepsBound(t *testing.T) {
	env := newTestEnv(t)
	env.h.SetReady(true)
	for _, tc := range []queryCase{
		{"instant, a day at 1ms", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+url.QueryEscape("sum_over_time(vector(1)[1d:1ms])"), nil),
			422, "execution", "subqueries would be evaluated at 86400000 steps at once; at most 1000000 are accepted (query.max_samples)"},
		// At the time asked for; a time Prometheus cannot read is its to
		// refuse, in its words.
		{"instant at a time, a day at 1ms", httptest.NewRequest(http.MethodGet, "/api/v1/query?time=1000000&query="+url.QueryEscape("sum_over_time(vector(1)[1d:1ms])"), nil),
			422, "execution", "at 86400000 steps at once"},
		{"instant at a bad time", httptest.NewRequest(http.MethodGet, "/api/v1/query?time=x&query="+url.QueryEscape("sum_over_time(vector(1)[1d:1ms])"), nil),
			400, "bad_data", `invalid parameter "time"`},
		{"range, an hour at 1ms", httptest.NewRequest(http.MethodPost, "/api/v1/query_range",
			strings.NewReader(url.Values{"query": {"max_over_time(vector(1)[1h:1ms])"}, "start": {"0"}, "end": {"3600"}, "step": {"60"}}.Encode())),
			422, "execution", "at 7200000 steps"},
		// 900,001 steps of two series: within the step bound, over
		// max_samples, which Prometheus's engine enforces as before.
		{"instant, two series for 15m at 1ms", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+
			url.QueryEscape(`sum_over_time((vector(1) or label_replace(vector(1), "a", "b", "", ""))[15m:1ms])`), nil),
			422, "execution", "query processing would load too many samples into memory in query execution"},
		// Each level is within the bound; the two held at once are not.
		{"instant, nested levels adding up", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+
			url.QueryEscape("count_over_time(count_over_time(vector(1)[1ms:1ms])[600s:1ms])"), nil),
			422, "execution", "at 1200000 steps at once"},
		// Prometheus's own earliest time, which RFC 3339 cannot spell.
		{"range from the API's earliest time", httptest.NewRequest(http.MethodPost, "/api/v1/query_range",
			strings.NewReader(url.Values{"query": {"count_over_time(vector(1)[1h:1ms])"},
				"start": {apiv1.MinTime.Format(time.RFC3339Nano)},
				"end":   {strconv.FormatInt(apiv1.MinTime.Unix()+3600, 10)}, "step": {"60"}}.Encode())),
			422, "execution", "at 7200000 steps"},
		{"instant, an hour at 1s", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+url.QueryEscape("sum_over_time(vector(1)[1h:1s])"), nil),
			200, "", ""},
		{"range, an hour at 10s", httptest.NewRequest(http.MethodPost, "/api/v1/query_range",
			strings.NewReader(url.Values{"query": {"max_over_time(vector(1)[1h:10s])"}, "start": {"0"}, "end": {"3600"}, "step": {"60"}}.Encode())),
			200, "", ""},
		// Times Prometheus refuses are left to it, in its words.
		{"range, bad step", httptest.NewRequest(http.MethodPost, "/api/v1/query_range",
			strings.NewReader(url.Values{"query": {"max_over_time(vector(1)[1h:1ms])"}, "start": {"0"}, "end": {"3600"}, "step": {"x"}}.Encode())),
			400, "bad_data", `invalid parameter "step"`},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, env.h) })
	}
}

// TestSubqueryStepsBoundIsTheEngines: the engine keeps the max_samples it
// was built with until a restart, and so does the bound; a reload that
// raises query.max_samples does not let a larger subquery through.
func TestSubqueryStepsBoundIsTheEngines(t *testing.T) {
	env := newTestEnv(t, func(o *Options) { o.QueryMaxSamples = 1_000_000 })
	env.h.SetReady(true)
	cfg := testConfig()
	cfg.Query.MaxSamples = 50_000_000
	require.NoError(t, env.h.ApplyConfig(cfg))
	queryCase{"raised by a reload", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+
		url.QueryEscape("count_over_time(vector(1)[20000s:1ms])"), nil),
		http.StatusUnprocessableEntity, "execution", "at most 1000000 are accepted"}.check(t, env.h)
}
