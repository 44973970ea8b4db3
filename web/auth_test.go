package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// noRole is the test user whose token carries no role.
const noRole = "(no role)"

// authFixture is a configuration with one user per role, and their tokens.
type authFixture struct {
	cfg *config.Config
	a   *auth.Authenticator
	// tokens maps a role (or noRole) to the token of its user.
	tokens map[string]string
	// users maps a role (or noRole) to its user's name.
	users map[string]string
}

func newAuthFixture(t testing.TB) *authFixture {
	t.Helper()
	f := &authFixture{
		tokens: map[string]string{},
		users:  map[string]string{"admin": "alice", "developer": "dave", "viewer": "vic", noRole: "nora"},
	}
	var y strings.Builder
	y.WriteString("service: checkout\nenvironment: production\nusers:\n")
	for _, role := range []string{"admin", "developer", "viewer", noRole} {
		token, hash, err := auth.NewToken()
		require.NoError(t, err)
		f.tokens[role] = token
		if role == noRole {
			fmt.Fprintf(&y, "  - {name: %s, tokens: [%q]}\n", f.users[role], hash)
			continue
		}
		fmt.Fprintf(&y, "  - {name: %s, role: %s, tokens: [%q]}\n", f.users[role], role, hash)
	}
	cfg, err := config.Parse([]byte(y.String()), "vigil.yml")
	require.NoError(t, err)
	require.NoError(t, auth.Check(cfg))
	f.cfg = cfg
	f.a, err = auth.New(cfg)
	require.NoError(t, err)
	return f
}

// withAuth sets the fixture's authenticator on the handler's options.
func (f *authFixture) withAuth(o *Options) { o.Auth = func() *auth.Authenticator { return f.a } }

// serve sends one request straight to the handler from client (an address
// on 127.0.0.0/8) and returns the answer.
func serve(h *Handler, client, method, target, authz string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr = client + ":40000"
	// As a client that reached vigil by address (httptest's default host
	// is example.com, which an open vigil refuses).
	req.Host = "127.0.0.1:9090"
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func bearer(token string) string { return "Bearer " + token }

// fillPath turns a route pattern into a path that reaches it.
func fillPath(pattern string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "x"
		}
	}
	return strings.Join(parts, "/")
}

// requireAPIError checks the JSON error envelope of a refusal.
func requireAPIError(t *testing.T, rec *httptest.ResponseRecorder, status int, errType string) string {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	require.Equal(t, "error", body.Status)
	require.Equal(t, errType, body.ErrorType)
	require.NotEmpty(t, body.Error)
	return body.Error
}

// TestRouteRoles walks every route of the table with every role, a token
// without a role, no token and a wrong token. There is no token expiry in
// this design: a token is valid until its hash leaves the configuration.
func TestRouteRoles(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)
	env.h.SetReady(true)
	require.NotEmpty(t, env.h.routes)

	for i, r := range env.h.routes {
		path := fillPath(r.path)
		// Each route has its own client address, so wrong tokens never add up
		// to the failure limit.
		client := fmt.Sprintf("127.0.%d.%d", i/250, i%250+1)
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			guarded := r.permission != permOpen && r.permission != permSlack
			for _, role := range []string{"admin", "developer", "viewer", noRole} {
				rec := serve(env.h, client, r.method, path, bearer(f.tokens[role]), nil)
				allowed := !guarded || f.cfg.GrantsOf(f.cfg.PermissionsOf(role)).Whole[r.permission]
				if allowed {
					requireLetIn(t, rec, "role %s", role)
				} else {
					requireAPIError(t, rec, http.StatusForbidden, "forbidden")
				}
			}
			noToken := serve(env.h, client, r.method, path, "", nil)
			wrong := serve(env.h, client, r.method, path, bearer("vgl_wrong"), nil)
			if !guarded {
				requireLetIn(t, noToken, "no token")
				requireLetIn(t, wrong, "wrong token")
				return
			}
			if r.page() && r.method == http.MethodGet {
				// The page shows a browser without a session the sign-in
				// form.
				require.Equal(t, http.StatusOK, noToken.Code)
				require.Contains(t, noToken.Body.String(), `action="/ui/login"`)
				requireAPIError(t, wrong, http.StatusUnauthorized, "unauthorized")
				return
			}
			requireAPIError(t, noToken, http.StatusUnauthorized, "unauthorized")
			require.Equal(t, `Bearer realm="vigil"`, noToken.Header().Get("WWW-Authenticate"))
			requireAPIError(t, wrong, http.StatusUnauthorized, "unauthorized")
		})
	}

	// Every permission a route needs is one the configuration knows.
	for _, r := range env.h.routes {
		if r.permission == permOpen || r.permission == permSlack {
			continue
		}
		require.Contains(t, f.cfg.PermissionsOf("admin"), r.permission, "%s %s", r.method, r.path)
	}
}

// requireLetIn checks that authentication let a request through: no 401 or
// 429, and no 403 but a form post's missing CSRF token (the route table test
// sends none).
func requireLetIn(t *testing.T, rec *httptest.ResponseRecorder, msgAndArgs ...any) {
	t.Helper()
	require.NotContains(t, []int{401, 429}, rec.Code, append(msgAndArgs, rec.Body.String())...)
	if rec.Code == http.StatusForbidden {
		require.Contains(t, rec.Body.String(), "CSRF token", msgAndArgs...)
	}
}

func TestAuthRefusals(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)
	viewer := f.tokens["viewer"]
	basic := func(user, password string) string {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(user, password)
		return req.Header.Get("Authorization")
	}
	tests := []struct {
		name       string
		target     string
		authz      string
		wantStatus int
		wantErr    string
	}{
		{"bearer", "/api/v1/incidents", bearer(viewer), 200, ""},
		{"lower-case scheme", "/api/v1/incidents", "bearer " + viewer, 200, ""},
		{"no token", "/api/v1/incidents", "", 401, "Authorization: Bearer"},
		{"wrong token", "/api/v1/incidents", bearer(viewer + "x"), 401, "invalid token"},
		{"empty bearer", "/api/v1/incidents", "Bearer ", 401, "invalid token"},
		{"hash as token", "/api/v1/incidents", bearer(f.cfg.Users[2].Tokens[0]), 401, "invalid token"},
		{"unknown scheme", "/api/v1/incidents", "Token " + viewer, 401, "invalid token"},
		{"token in query", "/api/v1/incidents?token=" + viewer, "", 401, "Authorization: Bearer"},
		{"access_token in query", "/api/v1/incidents?access_token=" + viewer, "", 401, "Authorization: Bearer"},
		{"query token beside a good header", "/api/v1/incidents?token=" + viewer, bearer(viewer), 401, "Authorization: Bearer"},
		{"basic auth for Grafana", "/api/v1/incidents", basic("vic", viewer), 200, ""},
		{"basic auth, other user's name", "/api/v1/incidents", basic("alice", viewer), 401, "invalid token"},
		{"basic auth, no password", "/api/v1/incidents", basic("vic", ""), 401, "invalid token"},
		{"without the permission", "/api/v1/audit", bearer(viewer), 403, `"vic" lacks the permission "manage_users"`},
		{"open route", "/health", "", 200, ""},
		{"open route, wrong token", "/health", bearer("nope"), 200, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(env.h, "127.0.0."+strconv.Itoa(i+1), http.MethodGet, tt.target, tt.authz, nil)
			if tt.wantErr == "" {
				require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
				return
			}
			errType := map[int]string{401: "unauthorized", 403: "forbidden"}[tt.wantStatus]
			msg := requireAPIError(t, rec, tt.wantStatus, errType)
			require.Contains(t, msg, tt.wantErr)
			require.NotContains(t, rec.Body.String(), viewer)
		})
	}
}

func TestSlackRouteNeedsNoToken(t *testing.T) {
	f := newAuthFixture(t)
	var got int
	slack := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got++
		w.WriteHeader(http.StatusOK)
	})
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.SlackInteractions = slack })
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/slack/interactions", "", strings.NewReader("payload=x"))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, 1, got)
}

func TestAuthModes(t *testing.T) {
	dev, err := config.Parse([]byte("service: checkout\nenvironment: development\n"), "vigil.yml")
	require.NoError(t, err)
	open, err := auth.New(dev)
	require.NoError(t, err)
	require.True(t, open.Open())

	tests := []struct {
		name   string
		auth   func() *auth.Authenticator
		target string
		want   int
	}{
		{"open in development: any guarded route", func() *auth.Authenticator { return open }, "/api/v1/audit", 200},
		{"open in development: a query token is still refused", func() *auth.Authenticator { return open }, "/api/v1/audit?token=x", 401},
		{"no authenticator yet", func() *auth.Authenticator { return nil }, "/api/v1/incidents", 503},
		{"no authenticator yet: open routes answer", func() *auth.Authenticator { return nil }, "/health", 200},
		{"authentication off", nil, "/api/v1/audit", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, func(o *Options) { o.Auth = tt.auth })
			rec := serve(env.h, "127.0.0.1", http.MethodGet, tt.target, "", nil)
			require.Equal(t, tt.want, rec.Code, rec.Body.String())
		})
	}

	// Open, the audit log names the caller anonymous, and an incident's
	// "by" stays what the body says.
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return open }
		o.Incidents = incs
	})
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/incidents/a/ack", "", strings.NewReader(`{"by":"alice"}`))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "alice", incs.m["a"].AcknowledgedBy)
	require.Equal(t, auth.Anonymous, env.h.access.audit.newest(1)[0].User)
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestFailedAuthRateLimit: failures are limited per address, never a valid
// credential. After maxAuthFailures bad tokens from one address (say a
// shared ingress), further bad tokens get 429 while the valid token of
// Grafana behind the same address still passes (issue 9 item 7).
func TestFailedAuthRateLimit(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)
	clock := &testClock{now: time.Unix(1700000000, 0)}
	env.h.access.limiter.now = clock.Now
	good := bearer(f.tokens["viewer"])
	get := func(client, authz string) *httptest.ResponseRecorder {
		return serve(env.h, client, http.MethodGet, "/api/v1/incidents", authz, nil)
	}

	const ingress, neighbour, forgetful, mixed = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
	for i := range maxAuthFailures {
		requireAPIError(t, get(ingress, bearer(fmt.Sprintf("vgl_guess%d", i))), 401, "unauthorized")
		clock.Add(time.Second)
	}
	// Further failures are refused for the rest of the minute...
	rec := get(ingress, bearer("vgl_guess_more"))
	requireAPIError(t, rec, http.StatusTooManyRequests, "too_many_requests")
	require.Equal(t, "50", rec.Header().Get("Retry-After"))
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.users["viewer"]+":vgl_wrong"))
	requireAPIError(t, get(ingress, basic), http.StatusTooManyRequests, "too_many_requests")
	requireAPIError(t, serve(env.h, ingress, http.MethodGet, "/api/v1/incidents?token=x", "", nil),
		http.StatusTooManyRequests, "too_many_requests")
	// ...but the valid token, as bearer or basic auth, still passes.
	for range 3 {
		require.Equal(t, 200, get(ingress, good).Code, "a valid token is locked out by others' failures")
	}
	goodBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.users["viewer"]+":"+f.tokens["viewer"]))
	require.Equal(t, 200, get(ingress, goodBasic).Code)
	// No credentials at all is no failure: 401 as ever.
	requireAPIError(t, get(ingress, ""), 401, "unauthorized")
	// Others are not limited.
	require.Equal(t, 200, get(neighbour, good).Code)
	requireAPIError(t, get(neighbour, bearer("vgl_wrong")), 401, "unauthorized")

	// Missing tokens are no guesses, and successes do not count.
	for range 2 * maxAuthFailures {
		requireAPIError(t, get(forgetful, ""), 401, "unauthorized")
	}
	require.Equal(t, 200, get(forgetful, good).Code)
	for range maxAuthFailures - 1 {
		requireAPIError(t, get(mixed, bearer("vgl_wrong")), 401, "unauthorized")
		require.Equal(t, 200, get(mixed, good).Code)
	}
	requireAPIError(t, get(mixed, ""), 401, "unauthorized")
	requireAPIError(t, serve(env.h, mixed, http.MethodGet, "/api/v1/incidents?token=x", "", nil), 401, "unauthorized")
	requireAPIError(t, get(mixed, bearer("vgl_wrong")), http.StatusTooManyRequests, "too_many_requests")
	require.Equal(t, 200, get(mixed, good).Code)

	// The window ends a minute after the first failure.
	clock.Add(failureWindow)
	requireAPIError(t, get(ingress, bearer("vgl_wrong")), 401, "unauthorized")
	requireAPIError(t, get(mixed, bearer("vgl_wrong")), 401, "unauthorized")
}

func TestLimiterBounded(t *testing.T) {
	clock := &testClock{now: time.Unix(1700000000, 0)}
	l := &failureLimiter{now: clock.Now, clients: map[string]*failures{}}
	for i := range maxTrackedClients {
		l.fail("c" + strconv.Itoa(i))
	}
	require.Len(t, l.clients, maxTrackedClients)

	// Full of live windows: the oldest goes.
	clock.Add(time.Second)
	l.fail("late")
	require.Len(t, l.clients, maxTrackedClients)
	require.Contains(t, l.clients, "late")

	// Windows that are over go first, all of them.
	clock.Add(failureWindow)
	l.fail("later")
	require.Len(t, l.clients, 1)
	require.Contains(t, l.clients, "later")
}

// TestTokensNeverLeak sends tokens every way a client might and checks that
// neither vigil's log, at debug level, nor any answer holds one.
func TestTokensNeverLeak(t *testing.T) {
	f := newAuthFixture(t)
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	h := New(&Options{
		Auth:      func() *auth.Authenticator { return f.a },
		Incidents: incs,
		Reload:    func() error { return nil },
	}, logger, prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(f.cfg))

	admin, viewer := f.tokens["admin"], f.tokens["viewer"]
	basicReq := httptest.NewRequest(http.MethodGet, "/", nil)
	basicReq.SetBasicAuth("alice", admin)
	requests := []struct {
		method, target, authz, body string
	}{
		{http.MethodGet, "/api/v1/incidents", bearer(viewer), ""},
		{http.MethodGet, "/api/v1/incidents", bearer(viewer + "typo"), ""},
		{http.MethodGet, "/api/v1/incidents?token=" + admin, "", ""},
		{http.MethodGet, "/api/v1/incidents?access_token=" + admin, bearer(admin), ""},
		{http.MethodGet, "/api/v1/incidents", basicReq.Header.Get("Authorization"), ""},
		{http.MethodPost, "/api/v1/incidents/a/ack", bearer(viewer), `{"by":"x"}`},
		{http.MethodPost, "/api/v1/incidents/a/ack?token=" + admin, bearer(admin), `{"comment":"` + admin + `"}`},
		{http.MethodPost, "/-/reload", bearer(admin), ""},
		{http.MethodGet, "/api/v1/audit", bearer(admin), ""},
		{http.MethodGet, "/api/v1/nope", bearer(admin), ""},
	}
	var answers strings.Builder
	for _, r := range requests {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		rec := serve(h, "127.0.0.1", r.method, r.target, r.authz, body)
		fmt.Fprintln(&answers, rec.Code, rec.Header(), rec.Body.String())
	}
	require.Contains(t, logBuf.String(), "Authentication failed")
	require.Contains(t, logBuf.String(), `"msg":"Audit"`)
	for role, token := range f.tokens {
		for _, secret := range []string{token, strings.TrimPrefix(token, auth.TokenPrefix)} {
			require.NotContains(t, logBuf.String(), secret, "%s's token in the log", role)
			require.NotContains(t, answers.String(), secret, "%s's token in an answer", role)
		}
	}
}

// TestExpiredToken: a token past its hash's expiry is 401 with a message
// that says so, on the API and on the sign-in form, and changes nothing.
func TestExpiredToken(t *testing.T) {
	expired, _, err := auth.NewToken()
	require.NoError(t, err)
	valid, _, err := auth.NewToken()
	require.NoError(t, err)
	cfg, err := config.Parse([]byte(fmt.Sprintf("service: checkout\nenvironment: production\nusers:\n"+
		"  - {name: old, role: admin, tokens: [%q]}\n  - {name: new, role: admin, tokens: [%q]}\n",
		auth.HashUntil(expired, time.Now().Add(-time.Minute)), auth.HashUntil(valid, time.Now().Add(time.Hour)))), "vigil.yml")
	require.NoError(t, err)
	a, err := auth.New(cfg)
	require.NoError(t, err)
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Incidents = incs
	})

	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/incidents/a/ack", bearer(expired), nil)
	msg := requireAPIError(t, rec, http.StatusUnauthorized, "unauthorized")
	require.Contains(t, msg, "token expired on ")
	require.NotContains(t, rec.Body.String(), expired)
	require.Equal(t, notifier.StateTriggered, incs.m["a"].State, "an expired token changed the incident")
	basic := httptest.NewRequest(http.MethodGet, "/", nil)
	basic.SetBasicAuth("old", expired)
	rec = serve(env.h, "127.0.0.2", http.MethodGet, "/api/v1/incidents", basic.Header.Get("Authorization"), nil)
	requireAPIError(t, rec, http.StatusUnauthorized, "unauthorized")

	rec = serve(env.h, "127.0.0.3", http.MethodPost, "/api/v1/incidents/a/ack", bearer(valid), nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "new", incs.m["a"].AcknowledgedBy)

	b := newBrowser(t, env.srv.URL)
	_, page := b.get("/")
	resp, body := b.post("/ui/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {expired}})
	requireStatus(t, resp, body, http.StatusUnauthorized)
	require.Contains(t, body, "expired")
	require.Nil(t, b.cookie(sessionCookie))
}

// TestCrossSiteRefused: a page on another site cannot change anything
// through a visitor's browser, whether vigil runs open or the browser holds
// a session; nor can a DNS-rebinding name reach an open vigil.
func TestCrossSiteRefused(t *testing.T) {
	dev, err := config.Parse([]byte("service: checkout\nenvironment: development\n"), "vigil.yml")
	require.NoError(t, err)
	d := newDirectory(t, dev)
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	env := newTestEnv(t, withDirectory(d), func(o *Options) { o.Incidents = incs })
	require.True(t, d.Authenticator().Open())

	_, hash, err := auth.NewToken()
	require.NoError(t, err)
	takeover := fmt.Sprintf(`{"name": "evil", "roles": ["admin"], "tokens": [%q]}`, hash)
	for name, header := range map[string][2]string{
		"other origin":           {"Origin", "http://evil.example"},
		"null origin":            {"Origin", "null"},
		"Sec-Fetch-Site":         {"Sec-Fetch-Site", "cross-site"},
		"same-site, other port":  {"Origin", "http://127.0.0.1:1"},
		"sibling subdomain said": {"Sec-Fetch-Site", "same-site"},
	} {
		for _, target := range []string{"/api/v1/users", "/api/v1/incidents/a/ack", "/-/reload"} {
			req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(takeover))
			req.Host = "127.0.0.1:9090"
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set(header[0], header[1])
			rec := httptest.NewRecorder()
			env.h.ServeHTTP(rec, req)
			requireAPIError(t, rec, http.StatusForbidden, "forbidden")
			require.Contains(t, rec.Body.String(), "cross-origin", "%s %s", name, target)
		}
	}
	require.Empty(t, d.Users(), "a cross-site post created a user")
	require.True(t, d.Authenticator().Open())
	require.Equal(t, notifier.StateTriggered, incs.m["a"].State)

	// The same origin, and programs that send no Origin, get through.
	req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/a/ack", strings.NewReader(`{"by": "me"}`))
	req.Host = "127.0.0.1:9090"
	req.Header.Set("Origin", "http://127.0.0.1:9090")
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	// DNS rebinding: a name that is not vigil's is refused while open.
	for host, want := range map[string]int{
		"rebind.evil.example:9090": http.StatusForbidden,
		"rebind.evil.example":      http.StatusForbidden,
		"localhost:9090":           http.StatusOK,
		"vigil.localhost":          http.StatusOK,
		"[::1]:9090":               http.StatusOK,
		"10.0.0.7:9090":            http.StatusOK,
		"vigil:9090":               http.StatusOK,
		"localhost.evil.example":   http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/incidents", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		env.h.ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code, "host %s: %s", host, rec.Body.String())
	}
}

// TestPageCSRFWithoutAuth: with authentication off altogether the page's
// forms still need the CSRF cookie's token.
func TestPageCSRFWithoutAuth(t *testing.T) {
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/ui/incidents/a/ack", "", strings.NewReader(""))
	requireAPIError(t, rec, http.StatusForbidden, "forbidden")
	require.Equal(t, notifier.StateTriggered, incs.m["a"].State)
}

// TestSignInWhileAddressBlocked: the page's sign-in form limits failures
// the same way: wrong tokens get 429 once the address is over the limit,
// the right token still signs in.
func TestSignInWhileAddressBlocked(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)
	srv := httptest.NewServer(env.h)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv.URL)
	_, page := b.get("/")
	csrf := csrfOf(t, page)
	for range maxAuthFailures {
		resp, body := b.post("/ui/login", url.Values{"token": {"vgl_wrong"}, "csrf": {csrf}})
		requireStatus(t, resp, body, http.StatusUnauthorized)
	}
	resp, body := b.post("/ui/login", url.Values{"token": {"vgl_wrong"}, "csrf": {csrf}})
	requireStatus(t, resp, body, http.StatusTooManyRequests)
	b.signIn(f.tokens["viewer"])
}
