package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// fakeIncidents keeps incidents in a map.
type fakeIncidents struct{ m map[string]notifier.Incident }

func (f *fakeIncidents) Incidents(state notifier.State) ([]notifier.Incident, error) {
	var out []notifier.Incident
	for _, inc := range f.m {
		if state == "" || inc.State == state {
			out = append(out, inc)
		}
	}
	return out, nil
}

func (f *fakeIncidents) Incident(id string) (notifier.Incident, error) {
	inc, ok := f.m[id]
	if !ok {
		return notifier.Incident{}, fmt.Errorf("incident %q: %w", id, notifier.ErrNotFound)
	}
	return inc, nil
}

func (f *fakeIncidents) Acknowledge(id, by, comment string) (notifier.Incident, error) {
	inc, err := f.Incident(id)
	if err != nil {
		return inc, err
	}
	if inc.State == notifier.StateResolved {
		return inc, notifier.ErrResolved
	}
	inc.State, inc.AcknowledgedBy = notifier.StateAcknowledged, by
	inc.Comments = append(inc.Comments, notifier.Comment{By: by, Text: comment})
	f.m[id] = inc
	return inc, nil
}

func (f *fakeIncidents) Resolve(id, by, _ string) (notifier.Incident, error) {
	inc, err := f.Incident(id)
	if err != nil {
		return inc, err
	}
	inc.State, inc.ResolvedBy = notifier.StateResolved, by
	f.m[id] = inc
	return inc, nil
}

type fakeDeploys struct {
	list   []rollback.Deploy
	manual []rollback.ManualRollback
}

func (f *fakeDeploys) RecordDeploy(d rollback.Deploy) (rollback.Deploy, error) {
	d.At = time.Unix(1700000000, 0).UTC()
	f.list = append([]rollback.Deploy{d}, f.list...)
	return d, nil
}

func (f *fakeDeploys) Deploys(limit int) ([]rollback.Deploy, error) {
	return f.list[:min(limit, len(f.list))], nil
}

func (f *fakeDeploys) FireNow(_ context.Context, reason, by string) (*notifier.RollbackRecord, error) {
	if len(f.list) == 0 {
		return nil, rollback.ErrNoDeploy
	}
	rec := notifier.RollbackRecord{BadVersion: f.list[0].Version, Outcome: notifier.OutcomeDelivered, Attempts: 1, At: time.Now()}
	f.manual = append([]rollback.ManualRollback{{RollbackRecord: rec, Reason: reason, By: by}}, f.manual...)
	return &rec, nil
}

func (f *fakeDeploys) ManualRollbacks(limit int) ([]rollback.ManualRollback, error) {
	return f.manual[:min(limit, len(f.manual))], nil
}

func TestIncidentRoutes(t *testing.T) {
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"a": {ID: "a", State: notifier.StateTriggered, Priority: "critical"},
		"b": {ID: "b", State: notifier.StateResolved, Priority: "low"},
	}}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	env.h.SetReady(true)
	url := env.srv.URL + "/api/v1/incidents"

	status, body := do(t, http.MethodGet, url+"?state=triggered", nil)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"id":"a"`)
	require.NotContains(t, body, `"id":"b"`)

	status, body = do(t, http.MethodGet, url+"?state=sleeping", nil)
	require.Equal(t, http.StatusBadRequest, status, body)

	status, body = do(t, http.MethodGet, url+"/nope", nil)
	require.Equal(t, http.StatusNotFound, status, body)

	status, body = do(t, http.MethodPost, url+"/a/ack", strings.NewReader(`{"by":"alice","comment":"on it"}`))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, notifier.StateAcknowledged, incs.m["a"].State)
	require.Equal(t, "alice", incs.m["a"].AcknowledgedBy)

	// Who is required until authentication says who the caller is.
	status, body = do(t, http.MethodPost, url+"/a/resolve", nil)
	require.Equal(t, http.StatusBadRequest, status, body)
	status, body = do(t, http.MethodPost, url+"/a/resolve", strings.NewReader(`{"by":"alice","bogus":1}`))
	require.Equal(t, http.StatusBadRequest, status, body, "unknown fields are refused")
	status, body = do(t, http.MethodPost, url+"/b/ack", strings.NewReader(`{"by":"alice"}`))
	require.Equal(t, http.StatusConflict, status, body)
	big := strings.NewReader(`{"by":"alice","comment":"` + strings.Repeat("x", maxBodyBytes) + `"}`)
	status, _ = do(t, http.MethodPost, url+"/a/resolve", big)
	require.Equal(t, http.StatusBadRequest, status, "an oversized body is refused")
	require.Equal(t, notifier.StateAcknowledged, incs.m["a"].State, "nothing changed")

	status, body = do(t, http.MethodPost, url+"/a/resolve", strings.NewReader(`{"by":"bob"}`))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, notifier.StateResolved, incs.m["a"].State)
}

func TestDeployRoutes(t *testing.T) {
	deploys := &fakeDeploys{}
	env := newTestEnv(t, func(o *Options) { o.Deploys = deploys })
	env.h.SetReady(true)

	status, body := do(t, http.MethodPost, env.srv.URL+"/api/v1/rollback", strings.NewReader(`{"reason":"bad","by":"alice"}`))
	require.Equal(t, http.StatusConflict, status, body, "nothing deployed, nothing to roll back")

	status, body = do(t, http.MethodPost, env.srv.URL+"/api/v1/deploys", strings.NewReader(`{"service":"checkout"}`))
	require.Equal(t, http.StatusBadRequest, status, body)
	status, body = do(t, http.MethodPost, env.srv.URL+"/api/v1/deploys", strings.NewReader(`{"service":"checkout","version":"1.2.3","environment":"production"}`))
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"version":"1.2.3"`)

	status, body = do(t, http.MethodGet, env.srv.URL+"/api/v1/deploys", nil)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"service":"checkout"`)

	status, body = do(t, http.MethodPost, env.srv.URL+"/api/v1/rollback", strings.NewReader(`{"reason":"bad","by":"alice"}`))
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"outcome":"delivered"`)
}

func TestRollbacksRoute(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"a": {ID: "a", State: notifier.StateResolved, Alert: notifier.Alert{Name: "HighErrorRate"},
			Rollback: &notifier.RollbackRecord{BadVersion: "2.0.0", Outcome: notifier.OutcomeDelivered, At: at}},
		"b": {ID: "b", State: notifier.StateTriggered},
	}}
	deploys := &fakeDeploys{manual: []rollback.ManualRollback{{
		RollbackRecord: notifier.RollbackRecord{BadVersion: "2.1.0", Outcome: notifier.OutcomeFailed, At: at.Add(time.Hour)},
		By:             "alice", Reason: "bad build",
	}}}
	env := newTestEnv(t, func(o *Options) {
		o.Incidents = incs
		o.Deploys = deploys
	})
	code, body := do(t, http.MethodGet, env.srv.URL+"/api/v1/rollbacks", nil)
	require.Equal(t, http.StatusOK, code, body)
	var got struct {
		Data []struct {
			BadVersion string `json:"badVersion"`
			Outcome    string `json:"outcome"`
			Incident   string `json:"incident"`
			Alert      string `json:"alert"`
			By         string `json:"by"`
			Reason     string `json:"reason"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Len(t, got.Data, 2)
	require.Equal(t, "2.1.0", got.Data[0].BadVersion, "newest first")
	require.Equal(t, "alice", got.Data[0].By)
	require.Equal(t, "bad build", got.Data[0].Reason)
	require.Equal(t, "a", got.Data[1].Incident)
	require.Equal(t, "HighErrorRate", got.Data[1].Alert)

	code, body = do(t, http.MethodGet, env.srv.URL+"/api/v1/rollbacks?limit=1", nil)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Len(t, got.Data, 1)
	code, _ = do(t, http.MethodGet, env.srv.URL+"/api/v1/rollbacks?limit=x", nil)
	require.Equal(t, http.StatusBadRequest, code)
}

// TestRollbackActsAsCaller: an authenticated caller cannot put another name
// on a rollback.
func TestRollbackActsAsCaller(t *testing.T) {
	f := newAuthFixture(t)
	deploys := &fakeDeploys{list: []rollback.Deploy{{Version: "2.0.0"}}}
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Deploys = deploys })
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/rollback", bearer(f.tokens["developer"]), strings.NewReader(`{"reason":"bad","by":"alice"}`))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "dave", deploys.manual[0].By)
}
