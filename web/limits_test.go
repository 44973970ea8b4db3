package web

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// promAnswer is the Prometheus API's envelope.
type promAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func decodeProm(t *testing.T, rec *httptest.ResponseRecorder) promAnswer {
	t.Helper()
	var a promAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a), rec.Body.String())
	return a
}

// TestQueryBounds: expressions and forms over the query block's bounds are
// refused with an error that names the bound, before PromQL's parser,
// formatter or evaluator can spend seconds or gigabytes on them (issue 13
// item 3); queries within them are answered.
func TestQueryBounds(t *testing.T) {
	env := newTestEnv(t)
	env.h.SetReady(true)
	long := "1" + strings.Repeat("+1", 10_000) // 20 KB, over 16 KiB
	deep := "1" + strings.Repeat("+1", 150)    // short, 151 levels deep
	multipartBody := func(size int) (string, *bytes.Buffer) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField("query", "up"))
		fw, err := mw.CreateFormFile("junk", "junk.bin")
		require.NoError(t, err)
		_, err = fw.Write(bytes.Repeat([]byte("x"), size))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		return mw.FormDataContentType(), &b
	}
	ct, big := multipartBody(2 << 20)
	bigMultipart := httptest.NewRequest(http.MethodPost, "/api/v1/query", big)
	bigMultipart.Header.Set("Content-Type", ct)

	for _, tc := range []queryCase{
		{"long query", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+url.QueryEscape(long), nil),
			400, "bad_data", "query is 20001 bytes long; at most 16KiB are accepted (query.max_length)"},
		{"long query_range", httptest.NewRequest(http.MethodPost, "/api/v1/query_range",
			strings.NewReader(url.Values{"query": {long}, "start": {"0"}, "end": {"60"}, "step": {"1"}}.Encode())),
			400, "bad_data", "(query.max_length)"},
		{"long parse_query", httptest.NewRequest(http.MethodGet, "/api/v1/parse_query?query="+url.QueryEscape(long), nil),
			400, "bad_data", "(query.max_length)"},
		{"long match[]", httptest.NewRequest(http.MethodGet, "/api/v1/series?match[]="+url.QueryEscape(`{a="`+strings.Repeat("x", 20_000)+`"}`), nil),
			400, "bad_data", "match[] is 20006 bytes long"},
		{"deep format_query", httptest.NewRequest(http.MethodGet, "/api/v1/format_query?query="+url.QueryEscape(deep), nil),
			400, "bad_data", "query nests 151 levels deep; at most 100 are accepted"},
		{"deep query", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+url.QueryEscape(deep), nil),
			400, "bad_data", "query nests 151 levels deep"},
		{"big form", httptest.NewRequest(http.MethodPost, "/api/v1/query",
			strings.NewReader(url.Values{"query": {"up"}, "junk": {strings.Repeat("x", 1<<20)}}.Encode())),
			413, "bad_data", "the request's form is larger than 256KiB (query.max_form_size)"},
		{"big multipart form", bigMultipart, 413, "bad_data", "(query.max_form_size)"},
		{"big query string", httptest.NewRequest(http.MethodGet, "/api/v1/labels?junk="+strings.Repeat("x", 300<<10), nil),
			413, "bad_data", "(query.max_form_size)"},
		{"query within bounds", httptest.NewRequest(http.MethodGet, "/api/v1/query?query="+url.QueryEscape("sum(up) + "+strings.Repeat("1 + ", 90)+"1"), nil),
			200, "", ""},
		{"format_query within bounds", httptest.NewRequest(http.MethodGet, "/api/v1/format_query?query="+url.QueryEscape(strings.Repeat("abs(", 90)+"up"+strings.Repeat(")", 90)), nil),
			200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tc.check(t, env.h)
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// queryCase is a request to the Prometheus API's query routes and the
// answer it must get: the status code, the error type and a part of the
// error (both empty for a success).
type queryCase struct {
	name       string
	req        *http.Request
	code       int
	errType    string
	errContain string
}

// check sends the request to h (a POST without a content type as a form)
// and compares the answer.
func (tc queryCase) check(t *testing.T, h *Handler) {
	t.Helper()
	if tc.req.Method == http.MethodPost && tc.req.Header.Get("Content-Type") == "" {
		tc.req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, tc.req)
	require.Equal(t, tc.code, rec.Code, rec.Body.String())
	a := decodeProm(t, rec)
	require.Equal(t, tc.errType, a.ErrorType)
	require.Contains(t, a.Error, tc.errContain)
}

// TestQueryConcurrency: at most query.max_concurrency queries run at once;
// one that finds no turn within query.timeout is refused with 503, saying
// why, and the turn comes back once a query ends.
func TestQueryConcurrency(t *testing.T) {
	env := newTestEnv(t)
	env.h.SetReady(true)
	cfg := testConfig()
	cfg.Query = config.QueryConfig{MaxConcurrency: 1, Timeout: config.Duration(200 * time.Millisecond),
		MaxLength: config.DefaultQueryMaxLength, MaxFormSize: config.DefaultQueryMaxFormSize}
	require.NoError(t, env.h.ApplyConfig(cfg))

	release, err := env.h.queryGate.acquire(context.Background(), 1, time.Second)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	a := decodeProm(t, rec)
	require.Equal(t, "unavailable", a.ErrorType)
	require.Contains(t, a.Error, "too many queries: 1 run at once (query.max_concurrency) and this one waited 200ms (query.timeout)")

	// Other routes of the API do not wait.
	rec = httptest.NewRecorder()
	env.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/status/buildinfo", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	release()
	rec = httptest.NewRecorder()
	env.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// TestQueryEngineBoundsNeedRestart: a reload that changes the bounds the
// query engine took at start says that they wait for a restart.
func TestQueryEngineBoundsNeedRestart(t *testing.T) {
	var logs bytes.Buffer
	h := New(&Options{}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	cfg := testConfig()
	cfg.Query.MaxSamples = config.DefaultQueryMaxSamples
	require.NoError(t, h.ApplyConfig(cfg))
	require.NoError(t, h.ApplyConfig(cfg))
	require.NotContains(t, logs.String(), "restarts")
	next := testConfig()
	next.Query.MaxSamples = 2 * config.DefaultQueryMaxSamples
	require.NoError(t, h.ApplyConfig(next))
	require.Contains(t, logs.String(), "query.max_samples, query.timeout and query.lookback_delta take effect when vigil restarts")
}
