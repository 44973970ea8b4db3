package web

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogsRoute(t *testing.T) {
	var gotLimit int
	env := newTestEnv(t, func(o *Options) {
		o.LogLines = func(log string, limit int) (any, error) {
			if log != "app" {
				return nil, errors.New(`no log "` + log + `"`)
			}
			gotLimit = limit
			return []map[string]string{{"line": "hello", "level": "info"}}, nil
		}
	})
	env.h.SetReady(true)

	status, body := do(t, http.MethodGet, env.srv.URL+"/api/v1/logs?log=app&limit=5", nil)
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, `{"status":"success","data":[{"line":"hello","level":"info"}]}`, body)
	require.Equal(t, 5, gotLimit)

	status, _ = do(t, http.MethodGet, env.srv.URL+"/api/v1/logs?log=app", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, defaultLogLimit, gotLimit)

	status, _ = do(t, http.MethodGet, env.srv.URL+"/api/v1/logs?log=app&limit=1000000", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, maxLogLimit, gotLimit)

	for _, q := range []string{"", "?log=app&limit=x", "?log=app&limit=-1"} {
		status, body = do(t, http.MethodGet, env.srv.URL+"/api/v1/logs"+q, nil)
		require.Equal(t, http.StatusBadRequest, status, body)
	}
	status, body = do(t, http.MethodGet, env.srv.URL+"/api/v1/logs?log=nope", nil)
	require.Equal(t, http.StatusNotFound, status, body)
	require.Contains(t, body, `no log \"nope\"`)
}
