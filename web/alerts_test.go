package web

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestAlerts(t *testing.T) {
	env := newTestEnv(t)
	waitFiring(t, env)

	// The shape, field by field, of the firing alert.
	status, body := do(t, http.MethodGet, env.srv.URL+"/alerts", nil)
	require.Equal(t, http.StatusOK, status)
	var raw []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &raw), body)
	require.Len(t, raw, 3, body)
	first := raw[0]
	require.ElementsMatch(t,
		[]string{"name", "state", "severity", "labels", "annotations", "value", "activeAt", "firedAt", "group"},
		keys(first))
	require.Equal(t, "HighCPU", first["name"])
	require.Equal(t, "firing", first["state"])
	require.Equal(t, "critical", first["severity"])
	require.Equal(t, "vigil-test", first["group"])
	require.Equal(t, 95.0, first["value"])
	require.Equal(t, map[string]any{
		"alertname": "HighCPU", "severity": "critical", "app": "app", "instance": "a",
	}, first["labels"])
	require.Equal(t, map[string]any{"summary": "CPU at 95%"}, first["annotations"])
	activeAt, err := time.Parse(time.RFC3339Nano, first["activeAt"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), activeAt, time.Minute)
	_, err = time.Parse(time.RFC3339Nano, first["firedAt"].(string))
	require.NoError(t, err)
	for _, pending := range raw[1:] {
		require.Equal(t, "pending", pending["state"])
		require.NotContains(t, pending, "firedAt")
		require.Equal(t, "warning", pending["severity"])
	}

	tests := []struct {
		query      string
		wantStatus int
		wantNames  []string
		wantStates []string
	}{
		{"", 200, []string{"HighCPU", "CPUWarming", "CPUWarming"}, []string{"firing", "pending", "pending"}},
		{"?state=firing", 200, []string{"HighCPU"}, []string{"firing"}},
		{"?state=pending", 200, []string{"CPUWarming", "CPUWarming"}, []string{"pending", "pending"}},
		{"?state=inactive", 400, nil, nil},
	}
	for _, tc := range tests {
		t.Run("query "+tc.query, func(t *testing.T) {
			status, body := do(t, http.MethodGet, env.srv.URL+"/alerts"+tc.query, nil)
			require.Equal(t, tc.wantStatus, status, body)
			if tc.wantStatus != http.StatusOK {
				require.JSONEq(t, `{"status":"error","error":"state must be \"firing\" or \"pending\", not \"inactive\""}`, body)
				return
			}
			var got []alert
			require.NoError(t, json.Unmarshal([]byte(body), &got))
			var names, states []string
			for _, a := range got {
				names = append(names, a.Name)
				states = append(states, a.State)
			}
			require.Equal(t, tc.wantNames, names)
			require.Equal(t, tc.wantStates, states)
		})
	}
}

func TestAlertsEmpty(t *testing.T) {
	tests := []struct {
		name string
		opts *Options
	}{
		{"no rules manager", &Options{}},
		{"no active alerts", &Options{Rules: noRules{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(tc.opts, discardLogger(), prometheus.NewRegistry())
			rec := httptest.NewRecorder()
			h.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/alerts", nil))
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, "[]", rec.Body.String())
		})
	}
}

func TestAlertValueJSON(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{95, `95`},
		{0.5, `0.5`},
		{math.NaN(), `"NaN"`},
		{math.Inf(1), `"+Inf"`},
		{math.Inf(-1), `"-Inf"`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(alertValue(tc.v))
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b))
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
