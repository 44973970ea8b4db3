package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/collector/logs"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
	"github.com/vigil-sh/vigil/storage"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see the 303s of the page's forms.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, base: base, c: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

// post sends a form; header pairs are added to the request.
func (b *browser) post(path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

func (b *browser) cookie(name string) *http.Cookie {
	u, err := url.Parse(b.base)
	require.NoError(b.t, err)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the CSRF token of a rendered page's forms.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	require.NotNil(t, m, "no CSRF token on the page:\n%s", page)
	return m[1]
}

// signIn signs b in with token and returns the page's CSRF token.
func (b *browser) signIn(token string) string {
	b.t.Helper()
	_, page := b.get("/")
	resp, body := b.post("/ui/login", url.Values{"csrf": {csrfOf(b.t, page)}, "token": {token}})
	require.Equal(b.t, http.StatusSeeOther, resp.StatusCode, body)
	require.Equal(b.t, "/", resp.Header.Get("Location"))
	resp, page = b.get("/")
	require.Equal(b.t, http.StatusOK, resp.StatusCode, page)
	return csrfOf(b.t, page)
}

// requireCookieFlags checks the Set-Cookie header of name in resp.
func requireCookieFlags(t *testing.T, resp *http.Response, name string) {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			require.True(t, c.HttpOnly, "%s must be HttpOnly", name)
			require.Equal(t, http.SameSiteStrictMode, c.SameSite, "%s must be SameSite=Strict", name)
			require.Equal(t, "/", c.Path)
			return
		}
	}
	t.Fatalf("no %s cookie set", name)
}

func pageFixture(t *testing.T, f *authFixture) (*testEnv, *fakeIncidents) {
	now := time.Now()
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"inc-1": {
			ID: "inc-1", State: notifier.StateTriggered, Priority: notifier.PriorityCritical, Level: 0,
			Alert:        notifier.Alert{Name: "HighErrorRate", Annotations: map[string]string{"summary": "5xx above 5% <b>now</b>"}},
			CreatedAt:    now.Add(-3 * time.Minute),
			NextDeadline: now.Add(57 * time.Minute),
			Notifications: []notifier.Notification{
				{Receiver: "slack-l1", Level: 0, Kind: notifier.KindFiring, Outcome: notifier.OutcomeDelivered},
				{Receiver: "pager", Level: 0, Kind: notifier.KindFiring, Outcome: notifier.OutcomeFailed},
			},
		},
		"inc-0": {
			ID: "inc-0", State: notifier.StateResolved, Priority: notifier.PriorityHigh,
			Alert: notifier.Alert{Name: "DiskFull"}, CreatedAt: now.Add(-time.Hour), ResolvedBy: "alice", ResolvedAt: now.Add(-30 * time.Minute),
			Rollback: &notifier.RollbackRecord{BadVersion: "2.0.1", PreviousVersion: "2.0.0", Outcome: notifier.OutcomeDelivered, At: now.Add(-50 * time.Minute), Attempts: 1, StatusCode: 202},
		},
	}}
	deploys := &fakeDeploys{
		list: []rollback.Deploy{{Service: "checkout", Version: "2.0.1", PreviousVersion: "2.0.0", Environment: "production", At: now.Add(-time.Hour), By: "ci"}},
		manual: []rollback.ManualRollback{{
			RollbackRecord: notifier.RollbackRecord{BadVersion: "1.9.9", PreviousVersion: "1.9.8", Outcome: notifier.OutcomeFailed, StatusCode: 503, Attempts: 3, At: now.Add(-2 * time.Hour)},
			Reason:         "checkout broken", By: "alice",
		}},
	}
	env := newTestEnv(t, f.withAuth, func(o *Options) {
		o.Incidents = incs
		o.Deploys = deploys
	})
	env.h.SetReady(true)
	cfg := *f.cfg
	cfg.Escalation.Levels = []config.LevelConfig{{Name: "support"}, {Name: "development"}}
	require.NoError(t, env.h.ApplyConfig(&cfg))
	return env, incs
}

// TestPageSignInAndAcknowledge walks the page as a developer would: sign in,
// see the incident, acknowledge it; and checks every refusal on the way.
func TestPageSignInAndAcknowledge(t *testing.T) {
	f := newAuthFixture(t)
	env, incs := pageFixture(t, f)
	b := newBrowser(t, env.srv.URL)

	// Signed out, / is the sign-in form, with a CSRF cookie.
	resp, page := b.get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `action="/ui/login"`)
	require.NotContains(t, page, "HighErrorRate")
	requireCookieFlags(t, resp, csrfCookie)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	csrf := csrfOf(t, page)

	// A sign-in without the CSRF token, or with another one, is refused.
	resp, body := b.post("/ui/login", url.Values{"token": {f.tokens["developer"]}})
	requireStatus(t, resp, body, http.StatusForbidden)
	resp, body = b.post("/ui/login", url.Values{"token": {f.tokens["developer"]}, "csrf": {csrf + "x"}})
	requireStatus(t, resp, body, http.StatusForbidden)
	require.Nil(t, b.cookie(sessionCookie))

	// A wrong token shows the form again and counts as a failure.
	resp, body = b.post("/ui/login", url.Values{"token": {"vgl_wrong"}, "csrf": {csrf}})
	requireStatus(t, resp, body, http.StatusUnauthorized)
	require.Contains(t, body, "not valid")
	require.NotContains(t, body, "vgl_wrong")
	require.Nil(t, b.cookie(sessionCookie))

	// The right one starts a session; the cookie is not the token. A link
	// to an incident survives the sign-in, and nothing else does.
	for fragment, want := range map[string]string{"": "/", "#incident-inc-1": "/#incident-inc-1",
		"//evil.example": "/", "#incident-x\r\nSet-Cookie: a=b": "/"} {
		other := newBrowser(t, env.srv.URL)
		_, page := other.get("/")
		resp, body := other.post("/ui/login", url.Values{"token": {f.tokens["viewer"]}, "csrf": {csrfOf(t, page)}, "fragment": {fragment}})
		requireStatus(t, resp, body, http.StatusSeeOther)
		require.Equal(t, want, resp.Header.Get("Location"), fragment)
	}
	resp, body = b.post("/ui/login", url.Values{"token": {f.tokens["developer"]}, "csrf": {csrf}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	requireCookieFlags(t, resp, sessionCookie)
	require.NotContains(t, b.cookie(sessionCookie).Value, f.tokens["developer"])

	resp, page = b.get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Contains(t, page, "dave")
	require.Contains(t, page, `id="incident-inc-1"`)
	require.Contains(t, page, "L1 support", "the level is named from the escalation config")
	require.Contains(t, page, `class="countdown"`)
	require.Contains(t, page, "slack-l1")
	require.Contains(t, page, "outcome-failed")
	require.Contains(t, page, "5xx above 5% &lt;b&gt;now&lt;/b&gt;", "annotations are escaped")
	require.Contains(t, page, "2.0.1", "deploys and rollbacks are listed")
	require.Contains(t, page, "HTTP 202")
	require.Contains(t, page, "by hand, alice: checkout broken", "rollbacks fired by hand are listed")
	require.Contains(t, page, "HTTP 503")
	require.Less(t, strings.Index(page, "DiskFull <code>inc-0</code>"), strings.Index(page, "by hand, alice"), "newest rollback first")
	require.Contains(t, page, "127.0.0.1:8080", "collector health lists the targets")
	require.Contains(t, page, ">Acknowledge</button>")
	require.NotContains(t, page, f.tokens["developer"])
	csrf = csrfOf(t, page)

	// Form posts without the CSRF token, with a wrong one, or from another
	// origin change nothing.
	for name, post := range map[string]func() (*http.Response, string){
		"no token": func() (*http.Response, string) { return b.post("/ui/incidents/inc-1/ack", url.Values{}) },
		"wrong token": func() (*http.Response, string) {
			return b.post("/ui/incidents/inc-1/ack", url.Values{"csrf": {"x" + csrf}})
		},
		"other origin": func() (*http.Response, string) {
			return b.post("/ui/incidents/inc-1/ack", url.Values{"csrf": {csrf}}, "Origin", "https://evil.example")
		},
	} {
		resp, body := post()
		requireStatus(t, resp, body, http.StatusForbidden)
		require.Equal(t, notifier.StateTriggered, incs.m["inc-1"].State, name)
	}
	// An oversized form is refused before it is read.
	resp, body = b.post("/ui/incidents/inc-1/ack", url.Values{"csrf": {csrf}, "comment": {strings.Repeat("x", maxBodyBytes)}})
	requireStatus(t, resp, body, http.StatusRequestEntityTooLarge)
	require.Equal(t, notifier.StateTriggered, incs.m["inc-1"].State)

	resp, body = b.post("/ui/incidents/inc-1/ack", url.Values{"csrf": {csrf}, "comment": {"looking"}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Equal(t, notifier.StateAcknowledged, incs.m["inc-1"].State)
	require.Equal(t, "dave", incs.m["inc-1"].AcknowledgedBy)
	require.Equal(t, "looking", incs.m["inc-1"].Comments[0].Text)
	require.Equal(t, "dave", env.h.access.audit.newest(1)[0].User, "the page's actions are audited")

	_, page = b.get(resp.Header.Get("Location"))
	require.Contains(t, page, "Incident inc-1 acknowledged.")
	require.Contains(t, page, "by dave")
	require.Contains(t, page, "<strong>dave</strong>: looking", "the acknowledgement's comment is shown")
	require.NotContains(t, page, ">Acknowledge</button>", "an acknowledged incident has no Acknowledge button")
	require.Contains(t, page, ">Resolve</button>")

	// Signing out ends the session on the server, not only in the browser.
	stolen := b.cookie(sessionCookie).Value
	resp, body = b.post("/ui/logout", url.Values{"csrf": {csrf}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	_, page = b.get("/")
	require.Contains(t, page, `action="/ui/login"`)
	replay := newBrowser(t, env.srv.URL)
	u, _ := url.Parse(env.srv.URL)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: stolen}})
	_, page = replay.get("/")
	require.Contains(t, page, `action="/ui/login"`, "a signed-out session cookie is dead")
}

func requireStatus(t *testing.T, resp *http.Response, body string, want int) {
	t.Helper()
	require.Equal(t, want, resp.StatusCode, body)
}

// TestPageViewer: a viewer sees the incident but no buttons, and a forged
// post, even with the viewer's own CSRF token, is 403.
func TestPageViewer(t *testing.T) {
	f := newAuthFixture(t)
	env, incs := pageFixture(t, f)
	b := newBrowser(t, env.srv.URL)
	csrf := b.signIn(f.tokens["viewer"])
	_, page := b.get("/")
	require.Contains(t, page, "HighErrorRate")
	require.NotContains(t, page, ">Acknowledge</button>")
	require.NotContains(t, page, ">Resolve</button>")
	for _, action := range []string{"ack", "resolve"} {
		resp, body := b.post("/ui/incidents/inc-1/"+action, url.Values{"csrf": {csrf}})
		requireStatus(t, resp, body, http.StatusForbidden)
		require.Contains(t, body, `lacks the permission \"acknowledge\"`)
	}
	require.Equal(t, notifier.StateTriggered, incs.m["inc-1"].State)

	// A user without monitor signs in but sees no incidents.
	nb := newBrowser(t, env.srv.URL)
	_, page = nb.get("/")
	resp, body := nb.post("/ui/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {f.tokens[noRole]}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	resp, page = nb.get("/")
	requireStatus(t, resp, page, http.StatusForbidden)
	require.Contains(t, page, `lacks the permission &#34;monitor&#34;`)
	require.NotContains(t, page, "HighErrorRate")
}

// TestPageSessionEndsWithToken: removing a user's token from the
// configuration signs its browsers out at their next request.
func TestPageSessionEndsWithToken(t *testing.T) {
	f := newAuthFixture(t)
	env, _ := pageFixture(t, f)
	b := newBrowser(t, env.srv.URL)
	b.signIn(f.tokens["developer"])

	cfg := *f.cfg
	cfg.Users = []config.UserConfig{f.cfg.Users[0]}
	a, err := auth.New(&cfg)
	require.NoError(t, err)
	f.a = a
	_, page := b.get("/")
	require.Contains(t, page, `action="/ui/login"`)
	require.NotContains(t, page, "HighErrorRate")
}

// TestPageBearer: scripts may use the page routes with a bearer token, and
// then need no CSRF token (browsers never attach bearer tokens on their own).
func TestPageBearer(t *testing.T) {
	f := newAuthFixture(t)
	env, incs := pageFixture(t, f)
	b := newBrowser(t, env.srv.URL)
	resp, body := b.post("/ui/incidents/inc-1/ack", url.Values{}, "Authorization", bearer(f.tokens["developer"]))
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Equal(t, "dave", incs.m["inc-1"].AcknowledgedBy)
	resp, body = b.post("/ui/incidents/inc-1/resolve", url.Values{}, "Authorization", bearer("vgl_wrong"))
	requireStatus(t, resp, body, http.StatusUnauthorized)
}

// TestPageOpen: with authentication off in development the page needs no
// sign-in, says so, and its forms still need the CSRF cookie's token.
func TestPageOpen(t *testing.T) {
	dev, err := config.Parse([]byte("service: checkout\nenvironment: development\n"), "vigil.yml")
	require.NoError(t, err)
	open, err := auth.New(dev)
	require.NoError(t, err)
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "X"}}}}
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return open }
		o.Incidents = incs
	})
	b := newBrowser(t, env.srv.URL)
	resp, page := b.get("/")
	requireStatus(t, resp, page, http.StatusOK)
	require.Contains(t, page, "Authentication is off")
	require.Contains(t, page, ">Acknowledge</button>")
	resp, body := b.post("/ui/incidents/a/ack", url.Values{})
	requireStatus(t, resp, body, http.StatusForbidden)
	resp, body = b.post("/ui/incidents/a/ack", url.Values{"csrf": {csrfOf(t, page)}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Equal(t, auth.Anonymous, incs.m["a"].AcknowledgedBy)
}

// TestStaticFiles serves the embedded CSS and script and nothing else:
// traversal out of ui/static finds nothing.
func TestStaticFiles(t *testing.T) {
	env := newTestEnv(t)
	resp, body := newBrowser(t, env.srv.URL).get("/ui/static/vigil.css")
	requireStatus(t, resp, body, http.StatusOK)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/css")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	resp, body = newBrowser(t, env.srv.URL).get("/ui/static/vigil.js")
	requireStatus(t, resp, body, http.StatusOK)

	for _, target := range []string{
		"/ui/static/../page.html",
		"/ui/static/..%2fpage.html",
		"/ui/static/%2e%2e/%2e%2e/ui.go",
		"/ui/static/..%5c..%5cui.go",
		"/ui/static/./vigil.css",
		"/ui/static//etc/passwd",
		"/ui/static/",
		"/ui/static/nope.css",
	} {
		rec := serve(env.h, "127.0.0.1", http.MethodGet, target, "", nil)
		require.Contains(t, []int{http.StatusNotFound, http.StatusMovedPermanently, http.StatusBadRequest}, rec.Code, target)
		require.NotContains(t, rec.Body.String(), "{{", target)
		require.NotContains(t, rec.Body.String(), "package web", target)
		require.NotContains(t, rec.Body.String(), "root:", target)
	}
}

func TestSessionStore(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := newSessionStore(func() time.Time { return now })
	id, sess, err := s.create(auth.SumOf("vgl_x"))
	require.NoError(t, err)
	got, ok := s.get(id)
	require.True(t, ok)
	require.Same(t, sess, got)
	_, ok = s.get(id + "x")
	require.False(t, ok)
	now = now.Add(sessionTTL)
	_, ok = s.get(id)
	require.False(t, ok, "sessions expire")
	require.Empty(t, s.m)

	// One token signing in again and again ends only its own oldest
	// sessions.
	alice, _, err := s.create(auth.SumOf("vgl_alice"))
	require.NoError(t, err)
	now = now.Add(time.Millisecond)
	first, _, err := s.create(auth.SumOf("vgl_nora"))
	require.NoError(t, err)
	for range 3 * maxSessionsPerToken {
		now = now.Add(time.Millisecond)
		_, _, err := s.create(auth.SumOf("vgl_nora"))
		require.NoError(t, err)
	}
	require.Len(t, s.m, 1+maxSessionsPerToken)
	_, ok = s.get(alice)
	require.True(t, ok, "another token's sign-ins ended alice's session")
	_, ok = s.get(first)
	require.False(t, ok, "the token's oldest session goes first")

	// Full of live sessions of many tokens, the store refuses a new one;
	// once they expire it takes it.
	for i := range maxSessions - len(s.m) {
		_, _, err := s.create(auth.SumOf(fmt.Sprint("vgl_", i)))
		require.NoError(t, err)
	}
	_, _, err = s.create(auth.SumOf("vgl_late"))
	require.ErrorIs(t, err, errTooManySessions)
	require.Len(t, s.m, maxSessions)
	_, ok = s.get(alice)
	require.True(t, ok)
	now = now.Add(sessionTTL)
	_, _, err = s.create(auth.SumOf("vgl_late"))
	require.NoError(t, err)
	require.Len(t, s.m, 1)
}

// TestCookiesSecureBehindTLSProxy: with an https external URL (TLS ends at
// a proxy) the cookies are Secure even though vigil itself speaks HTTP.
func TestCookiesSecureBehindTLSProxy(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.ExternalURL = &url.URL{Scheme: "https", Host: "vigil.example.com"} })
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	cookies := rec.Result().Cookies()
	require.NotEmpty(t, cookies)
	for _, c := range cookies {
		require.True(t, c.Secure, c.Name)
	}
	plain := newTestEnv(t, f.withAuth)
	rec = serve(plain.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	for _, c := range rec.Result().Cookies() {
		require.False(t, c.Secure, "plain HTTP on localhost cannot keep a Secure cookie: %s", c.Name)
	}
}

// TestPageBoundsIncidents: in an alert storm the page renders the most
// urgent pageIncidents open incidents and counts the rest.
func TestPageBoundsIncidents(t *testing.T) {
	incs := &fakeIncidents{m: map[string]notifier.Incident{}}
	now := time.Now()
	for i := range pageIncidents + 5 {
		prio := notifier.PriorityLow
		if i == pageIncidents+4 {
			prio = notifier.PriorityCritical
		}
		id := fmt.Sprintf("inc-%03d", i)
		incs.m[id] = notifier.Incident{ID: id, State: notifier.StateTriggered, Priority: prio, CreatedAt: now.Add(-time.Duration(i) * time.Second)}
	}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Equal(t, pageIncidents, strings.Count(page, `<article class="incident`))
	require.Contains(t, page, "5 more open incidents are not shown")
	require.Contains(t, page, fmt.Sprintf(`id="incident-inc-%03d"`, pageIncidents+4), "the critical one is shown however old")
}

// TestPageShowsMembers: an incident of a group (escalation.group_by) shows
// how many alerts it holds, how many still fire and the first of them.
func TestPageShowsMembers(t *testing.T) {
	inc := notifier.Incident{ID: "g", State: notifier.StateTriggered, Priority: notifier.PriorityCritical,
		Alert: notifier.Alert{Name: "high_cpu", Labels: map[string]string{"alertname": "high_cpu", "pod": "p0"}}}
	for i := range 7 {
		st := notifier.MemberFiring
		if i == 1 {
			st = notifier.MemberResolved
		}
		inc.Members = append(inc.Members, notifier.Member{Fingerprint: fmt.Sprint(i), State: st,
			Labels: map[string]string{"alertname": "high_cpu", "pod": fmt.Sprintf("p%d", i)}})
	}
	incs := &fakeIncidents{m: map[string]notifier.Incident{"g": inc}}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Contains(t, page, `<span class="member-count">7 alerts, 6 firing</span>`)
	require.Equal(t, notifier.MemberSample, strings.Count(page, `<span class="member-state`))
	require.Contains(t, page, `<li><code>{pod=&#34;p1&#34;}</code> <span class="member-state member-resolved">resolved</span></li>`)
	require.Contains(t, page, "and 7 in all")
}

// TestPageLogs: the page says which files each log follows and whether its
// lines reach the output file and Loki.
func TestPageLogs(t *testing.T) {
	now := time.Now()
	env := newTestEnv(t, func(o *Options) {
		o.LogStatus = func() []logs.LogStatus {
			return []logs.LogStatus{
				{Name: "app", Files: []string{"/var/log/app/app.log"}, Lines: 1234, LastLine: now, File: "/var/lib/vigil/logs/app.log",
					Loki: true, LokiSent: 1200, LokiFailed: 34, LokiError: "server returned HTTP status 500", LastPush: now},
				{Name: "worker"},
			}
		}
	})
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Contains(t, page, `<section id="logs">`)
	require.Contains(t, page, "<code>/var/log/app/app.log</code>")
	require.Contains(t, page, "1200 sent")
	require.Contains(t, page, "34 dropped")
	require.Contains(t, page, "server returned HTTP status 500")
	require.Contains(t, page, "no file matches", "a log whose glob matches nothing says so")
	require.Contains(t, page, "not shipped")
}

func TestPageRemoteWrite(t *testing.T) {
	now := time.Now()
	env := newTestEnv(t, func(o *Options) {
		o.RemoteWrite = func() []storage.QueueStatus {
			return []storage.QueueStatus{{Name: "mimir", URL: "https://mimir.example", Shards: 3, PendingSamples: 4711,
				LastSend: now.Add(-time.Minute), LastError: "server returned HTTP status 503", LastErrorTime: now}}
		}
	})
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Contains(t, page, `<section id="remote-write">`)
	require.Contains(t, page, "<code>https://mimir.example</code>")
	require.Contains(t, page, "<td>4711</td>")
	require.Contains(t, page, "server returned HTTP status 503")
	require.Contains(t, page, `class="health-down"><td>mimir</td>`, "an error after the last send marks the queue down")

	env.h.SetReady(true)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/ready", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, "a failing backend does not make vigil unready")
	require.Contains(t, rec.Body.String(), `"remote_write":[{"name":"mimir","url":"https://mimir.example","shards":3,"pending_samples":4711`)
}

func TestPageForward(t *testing.T) {
	env := newTestEnv(t, func(o *Options) {
		o.Forward = func() *ForwardStatus {
			return &ForwardStatus{Gateways: []ForwardGateway{
				{URL: "http://gateway-a:9090", Sent: 12},
				{URL: "http://gateway-b:9090", Errors: 3, Dropped: 3, Queued: 1},
			}}
		}
	})
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Contains(t, page, `<section id="forward">`)
	require.Contains(t, page, "this vigil notifies nobody itself")
	require.Contains(t, page, "<tr><td><code>http://gateway-a:9090</code></td><td>12</td><td>0</td><td>0</td><td>0</td></tr>")
	require.Contains(t, page, "<tr><td><code>http://gateway-b:9090</code></td><td>0</td><td>3</td><td>3</td><td>1</td></tr>")

	env.h.SetReady(true)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/ready", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, "a gateway that fails does not make vigil unready")
	require.Contains(t, rec.Body.String(), `"forward":{"notify_locally":false,"gateways":[{"url":"http://gateway-a:9090","sent":12,"errors":0,"dropped":0,"queued":0},`)

	// Without forwarding: neither the section nor the key.
	env = newTestEnv(t, func(o *Options) { o.Forward = func() *ForwardStatus { return nil } })
	require.NotContains(t, serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil).Body.String(), `id="forward"`)
	env.h.SetReady(true)
	require.NotContains(t, serve(env.h, "127.0.0.1", http.MethodGet, "/ready", "", nil).Body.String(), `"forward"`)
}

// TestPageRollback: the Roll back button is there for users with rollback,
// fires the webhook as the signed-in user, and a viewer's forged post is
// refused.
func TestPageRollback(t *testing.T) {
	f := newAuthFixture(t)
	env, _ := pageFixture(t, f)
	deploys := env.h.opts.Deploys.(*fakeDeploys)
	before := len(deploys.manual)

	viewer := newBrowser(t, env.srv.URL)
	vcsrf := viewer.signIn(f.tokens["viewer"])
	_, page := viewer.get("/")
	require.NotContains(t, page, `action="/ui/rollback"`)
	resp, body := viewer.post("/ui/rollback", url.Values{"csrf": {vcsrf}})
	requireStatus(t, resp, body, http.StatusForbidden)
	require.Len(t, deploys.manual, before)

	dev := newBrowser(t, env.srv.URL)
	csrf := dev.signIn(f.tokens["developer"])
	_, page = dev.get("/")
	require.Contains(t, page, `action="/ui/rollback"`)
	require.Contains(t, page, `data-confirm="Roll back checkout 2.0.1 to 2.0.0 in production now?`)
	resp, body = dev.post("/ui/rollback", url.Values{})
	requireStatus(t, resp, body, http.StatusForbidden)
	require.Len(t, deploys.manual, before, "a CSRF-less post rolled back")

	resp, body = dev.post("/ui/rollback", url.Values{"csrf": {csrf}, "reason": {"errors after 2.0.1"}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Len(t, deploys.manual, before+1)
	require.Equal(t, "dave", deploys.manual[0].By)
	require.Equal(t, "errors after 2.0.1", deploys.manual[0].Reason)
	_, page = dev.get(resp.Header.Get("Location"))
	require.Contains(t, page, "Rollback sent")
	require.Contains(t, page, "by hand, dave: errors after 2.0.1")

	// Refusals come back as fixed messages, never as text from the URL.
	_, page = dev.get("/?rollback=cooldown")
	require.Contains(t, page, "within the cooldown")
	require.Contains(t, page, `id="incidents"`, "a refused rollback still shows the page")
	_, page = dev.get("/?rollback=%3Cscript%3E")
	require.NotContains(t, page, `id="warning"`)
}
