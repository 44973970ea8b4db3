package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSilenceMutesThenEnds: a silence made through the API before the alert
// fires keeps level 1 from being told, while the incident opens and its
// notification says "silenced"; once the silence is expired, the next
// deadline tells level 2.
func TestSilenceMutesThenEnds(t *testing.T) {
	app := newGaugeApp(t, 95)
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, escalationConfig(dir, addr, app, hooks, "4s", ""))
	v := startVigil(t, cfg, addr)

	resp, err := http.Post(v.url("/api/v1/silences"), "application/json",
		strings.NewReader(`{"matchers": "{alertname=\"high_cpu\"}", "duration": "1h", "comment": "load test"}`))
	require.NoError(t, err)
	var created struct {
		Data struct {
			ID        string `json:"id"`
			CreatedBy string `json:"createdBy"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, "e2e", created.Data.CreatedBy)

	var id string
	require.Eventually(t, func() bool {
		list := v.incidents()
		if len(list) == 0 {
			return false
		}
		id = list[0].ID
		return list[0].Level >= 0
	}, 30*time.Second, 100*time.Millisecond, "the alert opened no incident")
	require.Eventually(t, func() bool { return strings.Contains(v.incidentBody(id), `"outcome":"silenced"`) },
		10*time.Second, 100*time.Millisecond, "the muted notification is not recorded")
	require.Zero(t, hooks.tried("/l1"), "a silenced alert was notified")

	req, err := http.NewRequest(http.MethodDelete, v.url("/api/v1/silences/"+created.Data.ID), nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.Eventually(t, func() bool { return len(hooks.accepted("/l2")) > 0 }, 20*time.Second, 100*time.Millisecond,
		"after the silence ended, the next deadline did not notify level 2")
	require.Zero(t, hooks.tried("/l1"), "the muted level-1 message was sent late")
}

// incidentBody is GET /api/v1/incidents/:id as text.
func (p *vigilProc) incidentBody(id string) string {
	p.t.Helper()
	resp, err := http.Get(p.url("/api/v1/incidents/" + id))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(p.t, err)
	return b.String()
}
