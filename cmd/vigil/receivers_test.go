package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/web"
)

// actedIncidents records what Slack's buttons did; its incidents are inc-1
// of app "app" and inc-2 of app "database".
type actedIncidents struct {
	mtx  sync.Mutex
	acts []string
}

func (a *actedIncidents) Incidents(notifier.State) ([]notifier.Incident, error) {
	one, _ := a.Incident("inc-1")
	two, _ := a.Incident("inc-2")
	return []notifier.Incident{one, two}, nil
}

func (a *actedIncidents) Incident(id string) (notifier.Incident, error) {
	app := map[string]string{"inc-1": "app", "inc-2": "database"}[id]
	if app == "" {
		return notifier.Incident{}, notifier.ErrNotFound
	}
	inc := notifier.Incident{ID: id}
	inc.Alert.Labels = map[string]string{"alertname": "high_error_rate", "app": app}
	return inc, nil
}

func (a *actedIncidents) Acknowledge(id, by, _ string) (notifier.Incident, error) {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	a.acts = append(a.acts, "ack "+id+" by "+by)
	return notifier.Incident{}, nil
}

func (a *actedIncidents) Resolve(id, by, _ string) (notifier.Incident, error) {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	a.acts = append(a.acts, "resolve "+id+" by "+by)
	return notifier.Incident{}, nil
}

// slackTestHandler is a ready web handler authenticating with cfg's users
// over the incidents of actedIncidents.
func slackTestHandler(t *testing.T, cfg *config.Config) (*actedIncidents, *web.Handler) {
	t.Helper()
	authn, err := auth.New(cfg)
	require.NoError(t, err)
	incidents := &actedIncidents{}
	h := web.New(&web.Options{Auth: func() *auth.Authenticator { return authn }, Incidents: incidents}, nil, nil)
	require.NoError(t, h.ApplyConfig(cfg))
	h.SetReady(true)
	return incidents, h
}

func (a *actedIncidents) done() []string {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	return append([]string(nil), a.acts...)
}

// TestSlackButtonsNeedTheAPIsPermission: a viewer linked to Slack by
// slack_user may not acknowledge or resolve through Slack's buttons what the
// API refuses with 403; the viewer is told so in an ephemeral message and
// nothing changes, while an operator with the permission acts (issue 13
// item 4).
func TestSlackButtonsNeedTheAPIsPermission(t *testing.T) {
	const secret = "slack-signing-secret"
	viewerToken, viewerHash, err := auth.NewToken()
	require.NoError(t, err)
	cfg, err := config.Parse(fmt.Appendf(nil, `environment: production
receivers:
  - {name: chat, slack: {token: xoxb-test, channel: "#ops", signing_secret: %s}}
roles:
  viewer: {permissions: [monitor, view_logs, view_metrics]}
  operator: {permissions: [monitor, acknowledge]}
users:
  - {name: viewer, role: viewer, slack_user: UVIEWER, tokens: [%q]}
  - {name: oncall, role: operator, slack_user: UONCALL}
`, secret, viewerHash), "vigil.yml")
	require.NoError(t, err)
	incidents, h := slackTestHandler(t, cfg)

	buttons := &slackInteractions{incidents: incidents, authorize: h.AuthorizeIncidentAction}
	require.NoError(t, buttons.ApplyConfig(cfg))

	var (
		mtx     sync.Mutex
		replies []string
	)
	responses := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Text string `json:"text"`
		}
		_ = json.NewDecoder(r.Body).Decode(&msg)
		mtx.Lock()
		replies = append(replies, msg.Text)
		mtx.Unlock()
	}))
	t.Cleanup(responses.Close)

	click := func(slackUser, action string, incident ...string) {
		t.Helper()
		payload, err := json.Marshal(map[string]any{
			"type":         "block_actions",
			"user":         map[string]any{"id": slackUser},
			"response_url": responses.URL,
			"actions":      []map[string]any{{"action_id": action, "block_id": "vigil_actions", "type": "button", "value": append(incident, "inc-1")[0]}},
		})
		require.NoError(t, err)
		body := url.Values{"payload": {string(payload)}}.Encode()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("v0:" + ts + ":" + body))
		req := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
		rec := httptest.NewRecorder()
		buttons.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}

	// The API refuses the viewer...
	req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/inc-1/ack", nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())

	// ...and so do Slack's buttons.
	click("UVIEWER", "vigil_ack")
	click("UVIEWER", "vigil_resolve")
	require.Empty(t, incidents.done(), "a viewer changed an incident through Slack")
	mtx.Lock()
	require.Len(t, replies, 2)
	for _, r := range replies {
		require.Contains(t, r, "You are not allowed to")
		require.Contains(t, r, `user "viewer" lacks the permission "acknowledge"`)
	}
	mtx.Unlock()

	// An operator with the permission acts.
	click("UONCALL", "vigil_ack")
	click("UONCALL", "vigil_resolve")
	require.Equal(t, []string{"ack inc-1 by oncall", "resolve inc-1 by oncall"}, incidents.done())

	// A click on an incident deleted or pruned since its message was posted
	// tells the operator it is gone, not that they lack a permission.
	click("UONCALL", "vigil_ack", "inc-9")
	require.Equal(t, []string{"ack inc-1 by oncall", "resolve inc-1 by oncall"}, incidents.done())
	mtx.Lock()
	require.Len(t, replies, 3)
	require.Contains(t, replies[2], "vigil could not ack incident inc-9")
	require.Contains(t, replies[2], "not found")
	require.NotContains(t, replies[2], "not allowed")
	mtx.Unlock()
}

// TestSlackButtonsKeepToResources: a user whose acknowledge covers only
// some apps (the permission's resources) may act through Slack on incidents
// of those apps only, as on the API.
func TestSlackButtonsKeepToResources(t *testing.T) {
	cfg, err := config.Parse([]byte(`environment: production
receivers:
  - {name: chat, slack: {token: xoxb-test, channel: "#ops", signing_secret: s}}
roles:
  viewer: {permissions: [monitor, view_logs, view_metrics]}
  admin: {permissions: [monitor, acknowledge, manage_users]}
permissions:
  monitor: {resources: [app, database]}
  acknowledge: {resources: [app]}
users:
  - {name: appdev, role: viewer, permissions: [acknowledge], slack_user: UAPPDEV}
`), "vigil.yml")
	require.NoError(t, err)
	_, h := slackTestHandler(t, cfg)

	require.NoError(t, h.AuthorizeIncidentAction("appdev", "inc-1", false), "the app's incident")
	err = h.AuthorizeIncidentAction("appdev", "inc-2", false)
	require.ErrorIs(t, err, web.ErrForbidden, "the database's incident")
	require.Contains(t, err.Error(), `does not cover app "database"`)
	require.ErrorIs(t, h.AuthorizeIncidentAction("appdev", "inc-9", true), web.ErrForbidden, "an unknown incident")
}

// TestAckWithoutMonitorRefusedAsOnAPI: a role with acknowledge and no
// monitor passes the ack route's permission, but the API answers 404 for an
// incident of an app the user may not see (docs/access.md); Slack's buttons
// must refuse it too, not act on what the API hides.
func TestAckWithoutMonitorRefusedAsOnAPI(t *testing.T) {
	token, hash, err := auth.NewToken()
	require.NoError(t, err)
	cfg, err := config.Parse(fmt.Appendf(nil, `environment: production
roles:
  pager: {permissions: [acknowledge]}
  admin: {permissions: [monitor, acknowledge, manage_users]}
users:
  - {name: bot, role: pager, slack_user: UBOT, tokens: [%q]}
`, hash), "vigil.yml")
	require.NoError(t, err)
	incidents, h := slackTestHandler(t, cfg)

	req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/inc-1/ack", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
	require.ErrorIs(t, h.AuthorizeIncidentAction("bot", "inc-1", false), web.ErrForbidden, "Slack lets act on what the API hides")
	require.Empty(t, incidents.done())
}
