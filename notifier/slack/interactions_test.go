package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// signSlack signs a body the way Slack does (v0:<ts>:<body>), written here
// independently of slack-go.
func signSlack(secret string, ts int64, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + strconv.FormatInt(ts, 10) + ":" + body))
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func interactionBody(t *testing.T, userID, actionID, incident, responseURL string) string {
	t.Helper()
	payload := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": userID, "name": "someone"},
		"response_url": responseURL,
		"actions": []map[string]any{{
			"action_id": actionID,
			"block_id":  "vigil_actions",
			"type":      "button",
			"value":     incident,
			"action_ts": "1700000000.000001",
		}},
	}
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	return url.Values{"payload": {string(b)}}.Encode()
}

type actCall struct{ action, incident, user string }

type replies struct {
	mtx  sync.Mutex
	msgs []ephemeral
}

func (rs *replies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var e ephemeral
	_ = json.NewDecoder(r.Body).Decode(&e)
	rs.mtx.Lock()
	rs.msgs = append(rs.msgs, e)
	rs.mtx.Unlock()
}

func (rs *replies) got() []ephemeral {
	rs.mtx.Lock()
	defer rs.mtx.Unlock()
	return append([]ephemeral(nil), rs.msgs...)
}

func TestInteractionHandler(t *testing.T) {
	users := map[string]string{"U_ALICE": "alice"}
	now := time.Now().Unix()
	for name, tc := range map[string]struct {
		method     string
		user       string
		actionID   string
		ts         int64
		secret     string // signs the request; empty: no signature headers
		tamper     bool   // change the body after signing
		actErr     error
		big        bool
		wantStatus int
		wantAct    []actCall
		wantReply  string
	}{
		"ack":              {user: "U_ALICE", actionID: ActionAck, ts: now, secret: signingSecret, wantStatus: 200, wantAct: []actCall{{"ack", "inc-42", "alice"}}},
		"resolve":          {user: "U_ALICE", actionID: ActionResolve, ts: now, secret: signingSecret, wantStatus: 200, wantAct: []actCall{{"resolve", "inc-42", "alice"}}},
		"other action":     {user: "U_ALICE", actionID: "something_else", ts: now, secret: signingSecret, wantStatus: 200},
		"bad signature":    {user: "U_ALICE", actionID: ActionAck, ts: now, secret: "not-the-secret", wantStatus: 401},
		"tampered body":    {user: "U_ALICE", actionID: ActionAck, ts: now, secret: signingSecret, tamper: true, wantStatus: 401},
		"no signature":     {user: "U_ALICE", actionID: ActionAck, ts: now, wantStatus: 401},
		"stale timestamp":  {user: "U_ALICE", actionID: ActionAck, ts: now - 10*60, secret: signingSecret, wantStatus: 401},
		"future timestamp": {user: "U_ALICE", actionID: ActionAck, ts: now + 10*60, secret: signingSecret, wantStatus: 401},
		"unknown user":     {user: "U_MALLORY", actionID: ActionAck, ts: now, secret: signingSecret, wantStatus: 200, wantReply: "not linked to a vigil user"},
		"act fails":        {user: "U_ALICE", actionID: ActionResolve, ts: now, secret: signingSecret, actErr: errIncidentNotFound, wantStatus: 200, wantAct: []actCall{{"resolve", "inc-42", "alice"}}, wantReply: "incident not found"},
		"too big":          {user: "U_ALICE", actionID: ActionAck, ts: now, secret: signingSecret, big: true, wantStatus: 413},
		"GET":              {method: http.MethodGet, wantStatus: 405},
	} {
		t.Run(name, func(t *testing.T) {
			rs := &replies{}
			replySrv := httptest.NewServer(rs)
			defer replySrv.Close()

			var mtx sync.Mutex
			var acts []actCall
			act := func(action, incident, user string) error {
				mtx.Lock()
				defer mtx.Unlock()
				acts = append(acts, actCall{action, incident, user})
				return tc.actErr
			}
			h := NewInteractionHandler(signingSecret, users, act, nil)

			body := interactionBody(t, tc.user, tc.actionID, "inc-42", replySrv.URL+"/reply")
			if tc.big {
				body += "&pad=" + strings.Repeat("x", 70<<10)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			sent := body
			if tc.tamper {
				sent = strings.Replace(body, "inc-42", "inc-43", 1)
			}
			req := httptest.NewRequest(method, "/slack/interactions", strings.NewReader(sent))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.secret != "" {
				req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(tc.ts, 10))
				req.Header.Set("X-Slack-Signature", signSlack(tc.secret, tc.ts, body))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			require.Equal(t, tc.wantStatus, rec.Code, rec.Body.String())
			mtx.Lock()
			require.Equal(t, tc.wantAct, acts)
			mtx.Unlock()
			if tc.wantReply == "" {
				require.Empty(t, rs.got())
				return
			}
			got := rs.got()
			require.Len(t, got, 1)
			require.Equal(t, "ephemeral", got[0].ResponseType)
			require.False(t, got[0].ReplaceOriginal)
			require.Contains(t, got[0].Text, tc.wantReply)
			require.Contains(t, rec.Body.String(), tc.wantReply)
		})
	}
}

var errIncidentNotFound = &testError{"incident not found"}

type testError struct{ s string }

func (e *testError) Error() string { return e.s }

func TestInteractionHandlerWithoutSecretRejectsAll(t *testing.T) {
	called := false
	h := NewInteractionHandler("", map[string]string{"U_ALICE": "alice"}, func(string, string, string) error {
		called = true
		return nil
	}, nil)
	ts := time.Now().Unix()
	body := interactionBody(t, "U_ALICE", ActionAck, "inc-42", "")
	req := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", signSlack("", ts, body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.False(t, called)
}
