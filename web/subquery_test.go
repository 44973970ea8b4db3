package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// TestSubquerySteps counts the steps of the evaluator Prometheus starts for
// each subquery, for instant and range queries, nested, pinned with @, with
// a default step and with a duration expression as the step.
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
		{"a day at 1ms", `sum_over_time(vector(1)[1d:1ms])`, time.Time{}, 0, 86_400_001},
		{"an hour at 1s, offset", `sum_over_time(vector(1)[1h:1s] offset 1d)`, time.Time{}, 0, 3601},
		{"default step", `max_over_time(up[1h:])`, time.Time{}, 15 * time.Second, 241},
		{"default step unknown", `max_over_time(up[1h:])`, time.Time{}, 0, 0},
		// The outer subquery's 61 steps span an hour; the inner one covers
		// that hour and its own 10m, at 1s.
		{"nested", `max_over_time(max_over_time(vector(1)[10m:1s])[1h:1m])`, time.Time{}, 0, 4201},
		{"range query", `sum_over_time(vector(1)[1h:1s])`, t1, 0, 7201},
		{"range query, pinned with @", `sum_over_time(vector(1)[1h:1s] @ 1000000)`, t1, 0, 3601},
		{"range query, step()", `sum_over_time(vector(1)[1h:step()])`, t1, 0, 121},
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
	for _, tc := range []struct {
		name       string
		req        *http.Request
		code       int
		errType    string
		errContain string
	}{
		{"instant, a day at 1ms", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+url.QueryEscape("sum_over_time(vector(1)[1d:1ms])"), nil),
			422, "execution", "a subquery would be evaluated at 86400001 steps; at most 1000000 are accepted (query.max_samples)"},
		{"range, an hour at 1ms", httptest.NewRequest(http.MethodPost, "/api/v1/query_range",
			strings.NewReader(url.Values{"query": {"max_over_time(vector(1)[1h:1ms])"}, "start": {"0"}, "end": {"3600"}, "step": {"60"}}.Encode())),
			422, "execution", "at 7200001 steps"},
		// 900,001 steps of two series: within the step bound, over
		// max_samples, which Prometheus's engine enforces as before.
		{"instant, two series for 15m at 1ms", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+
			url.QueryEscape(`sum_over_time((vector(1) or label_replace(vector(1), "a", "b", "", ""))[15m:1ms])`), nil),
			422, "execution", "query processing would load too many samples into memory in query execution"},
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
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.Method == http.MethodPost {
				tc.req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			env.h.ServeHTTP(rec, tc.req)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			a := decodeProm(t, rec)
			require.Equal(t, tc.errType, a.ErrorType)
			require.Contains(t, a.Error, tc.errContain)
		})
	}
}
