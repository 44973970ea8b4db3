package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/notifier"
)

// TestHASessionEndsWhenTokenRemovedOnOtherGateway: a browser signed in on
// gateway B with a runtime user's token is signed out there once the user
// is deleted on gateway A, within auth.RefreshInterval: sessions live in
// each gateway's memory, and each request checks the session's token with
// B's Directory, which reloads when A moved the shared generation.
func TestHASessionEndsWhenTokenRemovedOnOtherGateway(t *testing.T) {
	f := newAuthFixture(t)
	shared := notifier.NewMemKV()
	clock := &testClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	var dirs [2]*auth.Directory
	for i := range dirs {
		d, err := auth.NewDirectory(shared, discardLogger())
		require.NoError(t, err)
		d.SetClock(clock.Now)
		require.NoError(t, d.ApplyConfig(f.cfg))
		dirs[i] = d
	}
	a, b := dirs[0], dirs[1]
	tok, hash, err := auth.NewToken()
	require.NoError(t, err)
	_, err = a.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"viewer"}, Tokens: []string{hash}})
	require.NoError(t, err)
	clock.Add(auth.RefreshInterval)

	envB := newTestEnv(t, withDirectory(b))
	id, _, err := envB.h.access.sessions.create(auth.SumOf(tok))
	require.NoError(t, err)
	page := func() string {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = "127.0.0.1:9090"
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
		rec := httptest.NewRecorder()
		envB.h.Router().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		return rec.Body.String()
	}
	require.NotContains(t, page(), `action="/ui/login"`, "signed in on B with a user made on A")

	_, err = a.DeleteUser("alice", "ci")
	require.NoError(t, err)
	clock.Add(auth.RefreshInterval)
	body := page()
	require.Contains(t, body, `action="/ui/login"`, "signed out on B")
	_, live := envB.h.access.sessions.get(id)
	require.False(t, live, "the session is gone, not just refused once")
}
