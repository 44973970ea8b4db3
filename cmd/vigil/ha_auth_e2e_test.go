package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
)

// call sends body (may be empty) to path with token and returns the
// status code and the answer.
func (p *vigilProc) call(method, path, token, body string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.url(path), strings.NewReader(body))
	require.NoError(p.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	return resp.StatusCode, string(b)
}

// TestHAUsersShared: two gateways on one PostgreSQL database agree on the
// runtime users. A user created on A signs in on B; once A deletes it, B
// refuses its token within auth.RefreshInterval (polled for 5 × that, so
// a slow machine does not fail the test); one name created on both at
// once is created once; and each gateway's audit log lists the other's
// calls.
func TestHAUsersShared(t *testing.T) {
	dsn := freshDatabase(t, haDSN(t))
	app := newGaugeApp(t, 10)
	hooks := newHAHooks(t)
	procs := startHAPair(t, dsn, app, hooks)
	a, b := procs[0], procs[1]

	tok, hash, err := auth.NewToken()
	require.NoError(t, err)
	code, body := a.call(http.MethodPost, "/api/v1/users", e2eToken, `{"name":"ci","roles":["viewer"],"tokens":["`+hash+`"]}`)
	require.Equal(t, http.StatusCreated, code, body)
	status := func(p *vigilProc) func() int {
		return func() int { c, _ := p.call(http.MethodGet, "/api/v1/incidents", tok, ""); return c }
	}
	require.Eventually(t, func() bool { return status(b)() == http.StatusOK },
		5*auth.RefreshInterval, 100*time.Millisecond, "B lets in the user created on A")

	code, body = a.call(http.MethodDelete, "/api/v1/users/ci", e2eToken, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, http.StatusUnauthorized, status(a)())
	start := time.Now()
	// Refused is 401, or 429 once this client's failures (B's polls
	// before it knew the user) pass the failure limit.
	refused := func(code int) bool { return code == http.StatusUnauthorized || code == http.StatusTooManyRequests }
	require.Eventually(t, func() bool { return refused(status(b)()) },
		5*auth.RefreshInterval, 100*time.Millisecond, "B refuses the token of the user deleted on A")
	t.Logf("B refused the deleted user's token %s after A deleted it (RefreshInterval %s)", time.Since(start).Round(time.Millisecond), auth.RefreshInterval)

	// One name on both at once: one 201, one 409.
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, p := range procs {
		_, h, err := auth.NewToken()
		require.NoError(t, err)
		wg.Go(func() {
			codes[i], _ = p.call(http.MethodPost, "/api/v1/users", e2eToken, `{"name":"ops","roles":["viewer"],"tokens":["`+h+`"]}`)
		})
	}
	wg.Wait()
	require.ElementsMatch(t, []int{http.StatusCreated, http.StatusConflict}, codes)

	// The audit log of each lists the other's calls.
	for i, p := range procs {
		code, body := p.call(http.MethodGet, "/api/v1/audit?limit=10", e2eToken, "")
		require.Equal(t, http.StatusOK, code, body)
		var got struct {
			Data []struct {
				Method string `json:"method"`
				Path   string `json:"path"`
				Status int    `json:"status"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		var calls []string
		for _, r := range got.Data {
			if strings.HasPrefix(r.Path, "/api/v1/users") {
				calls = append(calls, r.Method+" "+r.Path)
			}
		}
		require.Equal(t, []string{"POST /api/v1/users", "POST /api/v1/users", "DELETE /api/v1/users/ci", "POST /api/v1/users"}, calls, "gateway %d", i)
	}
}
