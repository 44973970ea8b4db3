package web

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	vigilrules "github.com/vigil-sh/vigil/rules"
)

// A rule that cannot fire is named on the page and listed by
// /api/v1/rules/dead (what `vigil check config --live` reads).
func TestDeadRules(t *testing.T) {
	since := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	dead := []vigilrules.DeadRule{{File: "vigil.yml#alerts", Group: "vigil", Rule: "high_network_usage",
		Selector: `network_usage{app="infrastructure",environment="production"}`, Since: since}}
	env := newTestEnv(t, func(o *Options) { o.DeadRules = func() []vigilrules.DeadRule { return dead } })

	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `<b>high_network_usage</b> (vigil): <code>network_usage{app=&#34;infrastructure&#34;,environment=&#34;production&#34;}</code>`)

	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/rules/dead", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var got struct {
		Status string                `json:"status"`
		Data   []vigilrules.DeadRule `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Equal(t, dead, got.Data)

	// Nothing dead: no block on the page, an empty list.
	dead = nil
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.NotContains(t, rec.Body.String(), `id="dead-rules"`)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/rules/dead", "", nil)
	require.JSONEq(t, `{"status":"success","data":[]}`, rec.Body.String())
}
