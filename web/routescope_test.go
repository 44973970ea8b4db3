package web

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// TestRouteAccessColumn: every row of the route table says whether its
// permission must reach every app or is checked per app, not both.
func TestRouteAccessColumn(t *testing.T) {
	env := newTestEnv(t)
	for _, r := range env.h.routes {
		require.True(t, (r.access&allApps != 0) != (r.access&perApp != 0),
			"%s %s: say allApps or perApp", r.method, r.path)
	}
}

// scopeCase is how one perApp route treats the things of app "app": a
// request, and what its answer must be for a user whose permissions reach
// the app (allowed) and for one whose permissions reach only the database.
type scopeCase struct {
	path, body string
	check      func(t *testing.T, rec *httptest.ResponseRecorder, allowed bool)
}

// shows: the answer is 200 and holds marker only when allowed.
func shows(marker string) func(*testing.T, *httptest.ResponseRecorder, bool) {
	return func(t *testing.T, rec *httptest.ResponseRecorder, allowed bool) {
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		if allowed {
			require.Contains(t, rec.Body.String(), marker)
		} else {
			require.NotContains(t, rec.Body.String(), marker)
		}
	}
}

// answers: the answer is ok when allowed, refused otherwise.
func answers(ok, refused int) func(*testing.T, *httptest.ResponseRecorder, bool) {
	return func(t *testing.T, rec *httptest.ResponseRecorder, allowed bool) {
		if allowed {
			require.Equal(t, ok, rec.Code, rec.Body.String())
			return
		}
		require.Equal(t, refused, rec.Code, rec.Body.String())
		if refused == http.StatusForbidden {
			require.Contains(t, rec.Body.String(), `app \"app\"`)
		}
	}
}

// TestOtherAppRefused walks the route table with a user whose every
// permission reaches the database only, while the incidents, alerts,
// deploys, rollbacks and analyses asked for belong to app "app". A perApp
// route must have a case below (a new one cannot be added without saying
// what it hides or refuses), and each case is checked both ways: refused
// (or left out) for that user, changing nothing, and served to a user whose
// permissions reach every app. Every other guarded route refuses the user
// outright: its permission must reach every app.
func TestOtherAppRefused(t *testing.T) {
	token, hash, err := auth.NewToken()
	require.NoError(t, err)
	authFor := func(resources string) *auth.Authenticator {
		doc := fmt.Sprintf("service: checkout\nenvironment: production\n"+
			"roles:\n  everything: {permissions: [%s]}\nusers:\n  - {name: u, role: everything, tokens: [%q]}\n",
			strings.Join(config.BuiltinPermissions, ", "), hash)
		if resources != "" {
			// The app collector names "app", so the database alone is not
			// every app.
			doc += "collectors:\n  app: {labels: {app: app}}\npermissions:\n"
			for _, p := range config.BuiltinPermissions {
				doc += fmt.Sprintf("  %s: {resources: [%s]}\n", p, resources)
			}
		}
		cfg, err := config.Parse([]byte(doc), "vigil.yml")
		require.NoError(t, err)
		a, err := auth.New(cfg)
		require.NoError(t, err)
		return a
	}
	databaseOnly, everyApp := authFor("database"), authFor("")
	current := everyApp

	appLabels := map[string]string{"app": "app"}
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"a": {ID: "a", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "AppIncident", Labels: appLabels},
			Rollback: &notifier.RollbackRecord{BadVersion: "1.2.2", Outcome: notifier.OutcomeDelivered, At: time.Now()}},
		"a1": {ID: "a1", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "AppIncident", Labels: appLabels}},
		"a2": {ID: "a2", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "AppIncident", Labels: appLabels}},
		"a3": {ID: "a3", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "AppIncident", Labels: appLabels}},
		"a4": {ID: "a4", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "AppIncident", Labels: appLabels}},
		"d":  {ID: "d", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "DBIncident", Labels: map[string]string{"app": "database"}}},
	}}
	deploys := &fakeDeploys{
		list:   []rollback.Deploy{{Service: "checkout", Version: "1.2.3", At: time.Now()}},
		manual: []rollback.ManualRollback{{Reason: "drill-rollback", By: "admin"}},
	}
	am := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return current }
		o.Incidents = incs
		o.Deploys = deploys
		o.Analyses = fakeAnalyses{"7": failedAnalysis()}
		o.Alertmanager = am
	})
	env.h.SetReady(true)
	do := func(method, path, body string) *httptest.ResponseRecorder {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		return serve(env.h, "127.0.0.1", method, path, bearer(token), rd)
	}
	require.Equal(t, http.StatusOK, do(http.MethodPost, amPrefix+"/alerts", `[{"labels": {"alertname": "PostedAppAlert", "app": "app"}}]`).Code)
	// The rules' HighCPU fires for app "app" (web_test.go's samples).
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(do(http.MethodGet, "/alerts", "").Body.String(), `"alertname":"HighCPU"`) {
		require.True(t, time.Now().Before(deadline), "HighCPU never fired")
		time.Sleep(20 * time.Millisecond)
	}

	cases := map[string]scopeCase{
		"GET /":                                    {path: "/", check: shows("AppIncident")},
		"GET /alerts":                              {path: "/alerts", check: shows(`"alertname":"HighCPU"`)},
		"POST /ui/incidents/:id/ack":               {path: "/ui/incidents/a1/ack", body: "comment=x", check: answers(http.StatusSeeOther, http.StatusNotFound)},
		"POST /ui/incidents/:id/resolve":           {path: "/ui/incidents/a2/resolve", body: "comment=x", check: answers(http.StatusSeeOther, http.StatusNotFound)},
		"POST /ui/rollback":                        {path: "/ui/rollback", body: "reason=x", check: answers(http.StatusSeeOther, http.StatusForbidden)},
		"GET " + apiPrefix + "/incidents":          {path: apiPrefix + "/incidents", check: shows(`"id":"a"`)},
		"GET " + apiPrefix + "/incidents/:id":      {path: apiPrefix + "/incidents/a", check: answers(http.StatusOK, http.StatusNotFound)},
		"POST " + apiPrefix + "/incidents/:id/ack": {path: apiPrefix + "/incidents/a3/ack", body: `{}`, check: answers(http.StatusOK, http.StatusNotFound)},
		"POST " + apiPrefix + "/incidents/:id/resolve": {path: apiPrefix + "/incidents/a4/resolve", body: `{}`,
			check: answers(http.StatusOK, http.StatusNotFound)},
		"GET " + apiPrefix + "/deploys":              {path: apiPrefix + "/deploys", check: shows(`"version":"1.2.3"`)},
		"POST " + apiPrefix + "/deploys":             {path: apiPrefix + "/deploys", body: `{"version": "1.2.4"}`, check: answers(http.StatusOK, http.StatusForbidden)},
		"GET " + apiPrefix + "/deploys/:id/analysis": {path: apiPrefix + "/deploys/7/analysis", check: answers(http.StatusOK, http.StatusNotFound)},
		"POST " + apiPrefix + "/rollback":            {path: apiPrefix + "/rollback", body: `{"reason": "x"}`, check: answers(http.StatusOK, http.StatusForbidden)},
		"GET " + apiPrefix + "/rollbacks": {path: apiPrefix + "/rollbacks", check: func(t *testing.T, rec *httptest.ResponseRecorder, allowed bool) {
			shows("drill-rollback")(t, rec, allowed)
			shows(`"badVersion":"1.2.2"`)(t, rec, allowed)
		}},
		"POST " + amPrefix + "/alerts": {path: amPrefix + "/alerts", body: `[{"labels": {"alertname": "AnotherAppAlert", "app": "app"}}]`,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, allowed bool) {
				if allowed {
					require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
					return
				}
				require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
				require.Contains(t, rec.Body.String(), `may not post alerts of app \"app\"`)
			}},
		"GET " + amPrefix + "/alerts": {path: amPrefix + "/alerts", check: shows("PostedAppAlert")},
	}

	// state is what a refused request must leave as it was.
	state := func() string {
		// Posted alerts reach their incidents asynchronously: wait for the
		// ones posted so far.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, am.FlushIngest(ctx))
		all, err := am.Incidents("")
		require.NoError(t, err)
		var b strings.Builder
		for _, id := range slices.Sorted(maps.Keys(incs.m)) {
			fmt.Fprintf(&b, "%s:%s ", id, incs.m[id].State)
		}
		fmt.Fprintf(&b, "deploys:%d manual:%d posted:%d", len(deploys.list), len(deploys.manual), len(all))
		return b.String()
	}
	for _, r := range env.h.routes {
		key := r.method + " " + r.path
		if !r.scoped() {
			if r.permission == permOpen || r.permission == permSlack {
				continue
			}
			current = databaseOnly
			rec := do(r.method, fillPath(r.path), "")
			msg := requireAPIError(t, rec, http.StatusForbidden, "forbidden")
			require.Contains(t, msg, fmt.Sprintf("lacks the permission %q", r.permission), key)
			continue
		}
		tc, ok := cases[key]
		require.True(t, ok, "%s is a perApp route: add a case saying what a user of another app gets there", key)
		delete(cases, key)
		t.Run(key, func(t *testing.T) {
			current = databaseOnly
			before := state()
			tc.check(t, do(r.method, tc.path, tc.body), false)
			require.Equal(t, before, state(), "a refused request changed something")
			current = everyApp
			tc.check(t, do(r.method, tc.path, tc.body), true)
		})
	}
	require.Empty(t, cases, "cases of routes that are not perApp routes of the table")
}
