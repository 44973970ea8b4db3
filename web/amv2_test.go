package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promnotifier "github.com/prometheus/prometheus/notifier"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// startNotifier runs a real notifier Manager for the web tests.
func startNotifier(t *testing.T, resolveTimeout time.Duration) *notifier.Manager {
	t.Helper()
	m, err := notifier.New(&notifier.Options{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	cfg := testConfig()
	cfg.Ingest.ResolveTimeout = config.Duration(resolveTimeout)
	require.NoError(t, m.ApplyConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		require.NoError(t, m.Close())
	})
	return m
}

// incidentsNamed returns the incidents of an alertname, once the alerts
// posted so far are notified (the notifier does it after answering).
func incidentsNamed(t *testing.T, m *notifier.Manager, name string) []notifier.Incident {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, m.FlushIngest(ctx))
	all, err := m.Incidents("")
	require.NoError(t, err)
	var out []notifier.Incident
	for _, inc := range all {
		if inc.Alert.Name == name {
			out = append(out, inc)
		}
	}
	return out
}

// TestAlertmanagerAPIPrometheusNotifier: Prometheus's own notifier, pointed
// at vigil as an Alertmanager with a bearer token, opens an incident; when
// it stops sending, the incident resolves at the alert's endsAt.
func TestAlertmanagerAPIPrometheusNotifier(t *testing.T) {
	f := newAuthFixture(t)
	m := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Alertmanager = m; o.Silences = m })
	u, err := url.Parse(env.srv.URL)
	require.NoError(t, err)

	cfg, err := promconfig.Load(fmt.Sprintf(`
alerting:
  alertmanagers:
  - api_version: v2
    authorization:
      credentials: %q
`, f.tokens["admin"]), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	n := promnotifier.NewManager(&promnotifier.Options{QueueCapacity: 100}, model.UTF8Validation, slog.New(slog.DiscardHandler))
	require.NoError(t, n.ApplyConfig(cfg))
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	tsets <- map[string][]*targetgroup.Group{"config-0": {{
		Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		Source:  "test",
	}}}
	go n.Run(tsets)
	t.Cleanup(n.Stop)
	require.Eventually(t, func() bool { return len(n.Alertmanagers()) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, env.srv.URL+"/api/v2/alerts", n.Alertmanagers()[0].String())

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	// Prometheus sends times to the millisecond (strfmt.DateTime).
	endsAt := time.Now().Add(2 * time.Second).Truncate(time.Millisecond)
	n.Send(&promnotifier.Alert{
		Labels:       labels.FromStrings("alertname", "PromSent", "severity", "critical", "app", "app", "instance", "pod-7"),
		Annotations:  labels.FromStrings("summary", "sent by Prometheus"),
		StartsAt:     start,
		EndsAt:       endsAt,
		GeneratorURL: "http://prometheus.test/graph?g0.expr=up",
	})
	var inc notifier.Incident
	require.Eventually(t, func() bool {
		list := incidentsNamed(t, m, "PromSent")
		if len(list) == 1 {
			inc = list[0]
		}
		return len(list) == 1
	}, 10*time.Second, 10*time.Millisecond, "Prometheus's notifier opened no incident")
	require.Equal(t, notifier.SourceAPI, inc.Alert.Source)
	require.Equal(t, "pod-7", inc.Alert.Labels["instance"])
	require.Equal(t, "sent by Prometheus", inc.Alert.Annotations["summary"])
	require.True(t, inc.Alert.ActiveAt.Equal(start), "startsAt is the incident's alert's activeAt")

	// GET /api/v2/alerts shows it as Alertmanager does.
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/alerts?filter=alertname%3D%22PromSent%22", bearer(f.tokens["viewer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var got []amAlert
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Len(t, got, 1)
	require.Equal(t, "active", got[0].Status.State)
	require.Equal(t, "http://prometheus.test/graph?g0.expr=up", got[0].GeneratorURL)
	require.True(t, endsAt.Equal(got[0].EndsAt), "endsAt %s, got %s", endsAt, got[0].EndsAt)

	// Prometheus stops sending: the alert resolves at its endsAt.
	require.Eventually(t, func() bool {
		list := incidentsNamed(t, m, "PromSent")
		return len(list) == 1 && list[0].State == notifier.StateResolved
	}, 30*time.Second, 20*time.Millisecond, "the incident did not resolve after endsAt")
	inc = incidentsNamed(t, m, "PromSent")[0]
	require.Equal(t, notifier.ResolvedByAlert, inc.ResolvedBy)
	require.True(t, endsAt.Equal(inc.Alert.ResolvedAt), "resolved at endsAt %s, not %s", endsAt, inc.Alert.ResolvedAt)
	require.False(t, inc.ResolvedAt.Before(endsAt), "not before endsAt: resolved %s, endsAt %s", inc.ResolvedAt, endsAt)
}

// TestAlertmanagerAPIBadBatch: one invalid alert among valid ones gets a 400
// that names it, and the valid ones are taken.
func TestAlertmanagerAPIBadBatch(t *testing.T) {
	f := newAuthFixture(t)
	m := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Alertmanager = m })
	now := time.Now().UTC().Format(time.RFC3339)
	body := `[
	  {"labels": {"alertname": "Good1", "severity": "critical"}, "startsAt": "` + now + `"},
	  {"labels": {"alertname": "Bad", "severity": "critical"}, "startsAt": "` + now + `", "endsAt": "2001-01-01T00:00:00Z"},
	  {"labels": {"severity": "critical"}},
	  {"labels": {"alertname": "Good2", "severity": "high", "empty": ""}, "annotations": {"summary": "s"}}
	]`
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", bearer(f.tokens["admin"]), strings.NewReader(body))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	var msg string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &msg), "Alertmanager answers errors as a JSON string")
	require.Contains(t, msg, `alert 1 {alertname="Bad", severity="critical"}: start time must be before end time`)
	require.Contains(t, msg, `alert 2 {severity="critical"}: the label alertname is required`)
	require.NotContains(t, msg, "Good")
	for _, name := range []string{"Good1", "Good2"} {
		list := incidentsNamed(t, m, name)
		require.Len(t, list, 1, "valid alert %s taken", name)
		require.Equal(t, notifier.StateTriggered, list[0].State)
		require.NotContains(t, list[0].Alert.Labels, "empty", "empty labels are dropped")
	}
	require.Empty(t, incidentsNamed(t, m, "Bad"))

	// A body that is not JSON is refused whole; one over the bound too.
	rec = serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", bearer(f.tokens["admin"]), strings.NewReader(`{"labels"`))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	rec = serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", bearer(f.tokens["admin"]),
		strings.NewReader(`[{"labels": {"alertname": "`+strings.Repeat("a", maxAlertsBody)+`"}}]`))
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
}

// TestAlertmanagerAPIAuth: posting needs a token (401) with ingest (403
// for a viewer); reading needs monitor.
func TestAlertmanagerAPIAuth(t *testing.T) {
	f := newAuthFixture(t)
	m := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Alertmanager = m; o.Silences = m })
	body := `[{"labels": {"alertname": "Auth"}}]`
	for _, tc := range []struct {
		who  string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"viewer", http.StatusForbidden},
		{"developer", http.StatusForbidden},
		{noRole, http.StatusForbidden},
		{"admin", http.StatusOK},
	} {
		authz := ""
		if tc.who != "" {
			authz = bearer(f.tokens[tc.who])
		}
		rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", authz, strings.NewReader(body))
		require.Equal(t, tc.want, rec.Code, "%s: %s", tc.who, rec.Body.String())
		if tc.want != http.StatusOK {
			require.Empty(t, incidentsNamed(t, m, "Auth"), "%s: refused, nothing taken", tc.who)
		}
	}
	require.Len(t, incidentsNamed(t, m, "Auth"), 1)
	for path, want := range map[string]int{"/api/v2/alerts": 200, "/api/v2/status": 200, "/api/v2/silences": 200, "/api/v2/receivers": 200} {
		require.Equal(t, http.StatusUnauthorized, serve(env.h, "127.0.0.1", http.MethodGet, path, "", nil).Code, path)
		require.Equal(t, want, serve(env.h, "127.0.0.1", http.MethodGet, path, bearer(f.tokens["viewer"]), nil).Code, path)
		require.Equal(t, http.StatusForbidden, serve(env.h, "127.0.0.1", http.MethodGet, path, bearer(f.tokens[noRole]), nil).Code, path)
	}
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/silences", bearer(f.tokens["viewer"]),
		strings.NewReader(`{"matchers": [{"name": "alertname", "value": "Auth", "isRegex": false}], "endsAt": "2099-01-01T00:00:00Z", "createdBy": "x", "comment": "c"}`))
	require.Equal(t, http.StatusForbidden, rec.Code)
}

// TestAlertmanagerAPISilences: silences in Alertmanager's shape map onto
// vigil's, both ways, and mute the posted alerts they match.
func TestAlertmanagerAPISilences(t *testing.T) {
	f := newAuthFixture(t)
	m := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Alertmanager = m; o.Silences = m })
	admin := bearer(f.tokens["admin"])
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", admin,
		strings.NewReader(`[{"labels": {"alertname": "Muted", "instance": "a"}}, {"labels": {"alertname": "Loud"}}]`))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	end := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rec = serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/silences", bearer(f.tokens["developer"]), strings.NewReader(fmt.Sprintf(
		`{"matchers": [{"name": "alertname", "value": "Muted", "isRegex": false, "isEqual": true}, {"name": "instance", "value": "a|b", "isRegex": true}],
		  "startsAt": "2000-01-01T00:00:00Z", "endsAt": %q, "createdBy": "amtool-user", "comment": "upgrade"}`, end.Format(time.RFC3339))))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &created))
	require.NotEmpty(t, created.SilenceID)

	list, err := m.Silences(false)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, `{alertname="Muted", instance=~"a|b"}`, list[0].Matchers)
	require.Equal(t, "dave", list[0].CreatedBy, "the token's user silences")

	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/silence/"+created.SilenceID, bearer(f.tokens["viewer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var got amSilence
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Equal(t, "active", got.Status.State)
	require.Len(t, got.Matchers, 2)
	require.Equal(t, amMatcher{Name: "instance", Value: "a|b", IsRegex: true, IsEqual: got.Matchers[1].IsEqual}, got.Matchers[1])
	require.True(t, *got.Matchers[1].IsEqual)
	require.True(t, got.EndsAt.Equal(end))

	// The silenced alert is suppressed; silenced=false leaves it out.
	var alerts []amAlert
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/alerts", bearer(f.tokens["viewer"]), nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &alerts))
	require.Len(t, alerts, 2)
	states := map[string]amAlertStatus{}
	for _, a := range alerts {
		states[a.Labels["alertname"]] = a.Status
	}
	require.Equal(t, "suppressed", states["Muted"].State)
	require.Equal(t, []string{created.SilenceID}, states["Muted"].SilencedBy)
	require.Equal(t, "active", states["Loud"].State)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/alerts?silenced=false", bearer(f.tokens["viewer"]), nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &alerts))
	require.Len(t, alerts, 1)
	require.Equal(t, "Loud", alerts[0].Labels["alertname"])

	// Filtered list, then expire.
	var sils []amSilence
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/silences?filter=alertname%3DLoud", bearer(f.tokens["viewer"]), nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &sils))
	require.Empty(t, sils)
	rec = serve(env.h, "127.0.0.1", http.MethodDelete, "/api/v2/silence/"+created.SilenceID, bearer(f.tokens["developer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/silences?filter=alertname%3DMuted", bearer(f.tokens["viewer"]), nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &sils))
	require.Len(t, sils, 1)
	require.Equal(t, "expired", sils[0].Status.State)

	// A post with the id of a silence replaces it; an unknown id is 404.
	post := func(id, comment string) *httptest.ResponseRecorder {
		return serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/silences", bearer(f.tokens["developer"]), strings.NewReader(fmt.Sprintf(
			`{"id": %q, "matchers": [{"name": "alertname", "value": "Loud", "isRegex": false}], "endsAt": %q, "createdBy": "x", "comment": %q}`,
			id, end.Format(time.RFC3339), comment)))
	}
	rec = post("", "first")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var first struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &first))
	rec = post(first.SilenceID, "second")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var second struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &second))
	require.NotEqual(t, first.SilenceID, second.SilenceID)
	active, err := m.Silences(false)
	require.NoError(t, err)
	require.Len(t, active, 1)
	require.Equal(t, second.SilenceID, active[0].ID)
	require.Equal(t, "second", active[0].Comment)
	require.Equal(t, http.StatusNotFound, post("no-such-silence", "third").Code)

	// Status: disabled cluster, the config's shape without secrets.
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/status", bearer(f.tokens["viewer"]), nil)
	var status struct {
		Cluster struct {
			Status string `json:"status"`
		} `json:"cluster"`
		VersionInfo map[string]string `json:"versionInfo"`
		Config      struct {
			Original string `json:"original"`
		} `json:"config"`
		Uptime time.Time `json:"uptime"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &status))
	require.Equal(t, "disabled", status.Cluster.Status)
	require.Equal(t, "0.1.0", status.VersionInfo["version"])
	require.Contains(t, status.Config.Original, "resolve_timeout: 5m")
	require.False(t, status.Uptime.IsZero())
}

// TestAlertmanagerAPIIngestByApp: a sender whose ingest permission reaches
// some apps has its alerts of other apps refused one by one.
func TestAlertmanagerAPIIngestByApp(t *testing.T) {
	token, hash, err := auth.NewToken()
	require.NoError(t, err)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`service: checkout
environment: production
roles:
  sender: {permissions: [ingest]}
permissions:
  ingest: {resources: [app]}
  monitor: {resources: [app, database]}
users:
  - {name: prom, role: sender, tokens: [%q]}
`, hash)), "vigil.yml")
	require.NoError(t, err)
	a, err := auth.New(cfg)
	require.NoError(t, err)
	m := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Alertmanager = m
	})
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", bearer(token), strings.NewReader(
		`[{"labels": {"alertname": "OfApp", "app": "app"}}, {"labels": {"alertname": "OfDB", "app": "database"}}]`))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `alert 1 {alertname=\"OfDB\", app=\"database\"}: user \"prom\" may not post alerts of app \"database\"`)
	require.Len(t, incidentsNamed(t, m, "OfApp"), 1)
	require.Empty(t, incidentsNamed(t, m, "OfDB"))
}

// TestAlertmanagerAPIBadRequests: a silence with no or bad matchers, a body
// that is not a silence, and bad query parameters are each a 400 naming the
// fault, and no silence is made.
func TestAlertmanagerAPIBadRequests(t *testing.T) {
	f := newAuthFixture(t)
	m := startNotifier(t, 5*time.Minute)
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Alertmanager = m; o.Silences = m })
	dev, viewer := bearer(f.tokens["developer"]), bearer(f.tokens["viewer"])
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for body, want := range map[string]string{
		`{"matchers": [], "endsAt": "` + end + `", "comment": "c"}`:                                                     "at least one matcher is required",
		`{"matchers": [{"name": "alertname", "value": "(", "isRegex": true}], "endsAt": "` + end + `", "comment": "c"}`: "matcher alertname",
		`{"matchers": "alertname=X"}`: "the body is not a silence",
		`not json`:                    "the body is not a silence",
	} {
		rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/silences", dev, strings.NewReader(body))
		require.Equal(t, http.StatusBadRequest, rec.Code, body)
		require.Contains(t, rec.Body.String(), want, body)
	}
	all, err := m.Silences(true)
	require.NoError(t, err)
	require.Empty(t, all, "a refused silence is not made")

	for path, want := range map[string]string{
		"/api/v2/alerts?filter=alertname%3D%22":   "filter",
		"/api/v2/alerts?active=maybe":             "active must be true or false",
		"/api/v2/alerts?silenced=1":               "silenced must be true or false",
		"/api/v2/alerts?receiver=%28":             "receiver",
		"/api/v2/silences?filter=alertname%3D%22": "filter",
	} {
		rec := serve(env.h, "127.0.0.1", http.MethodGet, path, viewer, nil)
		require.Equal(t, http.StatusBadRequest, rec.Code, path)
		require.Contains(t, rec.Body.String(), want, path)
	}
	require.Equal(t, http.StatusNotFound, serve(env.h, "127.0.0.1", http.MethodDelete, "/api/v2/silence/no-such-silence", dev, nil).Code)
	require.Equal(t, http.StatusNotFound, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v2/silence/no-such-silence", viewer, nil).Code)
}
