package web

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/testutil"
	"github.com/vigil-sh/vigil/notifier"
	vigilrules "github.com/vigil-sh/vigil/rules"
)

// seedAccess is the seed's users, roles and permissions blocks, read from
// the seed document (or its committed copy when ../shared is absent, as in
// a clone: testutil.SeedDocument says which), with a token for each user:
// the seed's users have none, and a `tokens` key is how a token attaches.
type seedAccess struct {
	cfg    *config.Config
	tokens map[string]string
}

// seedUserLine is a user's first line in the seed's users block.
var seedUserLine = regexp.MustCompile(`(?m)^  - name: (\S+)$`)

// newSeedAccess parses the seed's three blocks under service and
// environment keys, with a token added to each user; edit, if not nil,
// changes the document first, for a variation on the seed, and extraUsers
// are appended to the users block.
func newSeedAccess(t *testing.T, edit func(string) string, extraUsers ...string) *seedAccess {
	t.Helper()
	s := &seedAccess{tokens: map[string]string{}}
	users := strings.TrimRight(testutil.SeedBlock(t, "# User management configuration"), "\n") + "\n"
	for _, u := range extraUsers {
		users += u + "\n"
	}
	users = seedUserLine.ReplaceAllStringFunc(users, func(line string) string {
		token, hash, err := auth.NewToken()
		require.NoError(t, err)
		s.tokens[strings.TrimPrefix(line, "  - name: ")] = token
		return fmt.Sprintf("%s\n    tokens: [%q]", line, hash)
	})
	doc := "service: checkout\nenvironment: production\n" + users +
		testutil.SeedBlock(t, "# Role management configuration") +
		testutil.SeedBlock(t, "# Permission management configuration")
	if edit != nil {
		doc = edit(doc)
	}
	cfg, err := config.Parse([]byte(doc), "seed.yaml")
	require.NoError(t, err)
	require.NoError(t, auth.Check(cfg))
	require.Len(t, s.tokens, len(cfg.Users))
	s.cfg = cfg
	return s
}

// TestSeedRouteRoles walks every route with the seed's three users as the
// seed writes them and checks what DESIGN.md promises of them: admin may do
// everything, developer reads everything, records deploys and acts on
// incidents, viewer reads everything and changes nothing. Reading the
// users, the roles and the audit log is managing users, not monitoring.
func TestSeedRouteRoles(t *testing.T) {
	seed := newSeedAccess(t, nil)
	a, err := auth.New(seed.cfg)
	require.NoError(t, err)
	env := newTestEnv(t, func(o *Options) { o.Auth = func() *auth.Authenticator { return a } })
	env.h.SetReady(true)

	reads := []string{permMonitor, permViewLogs, permViewMetrics}
	acts := []string{permDeploy, permAcknowledge}
	allowed := func(user, permission string) bool {
		switch user {
		case "admin":
			return true
		case "developer":
			return slices.Contains(reads, permission) || slices.Contains(acts, permission)
		case "viewer":
			return slices.Contains(reads, permission)
		}
		t.Fatalf("the seed has no user %q", user)
		return false
	}
	for i, r := range env.h.routes {
		if r.permission == permOpen || r.permission == permSlack {
			continue
		}
		client := fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			for _, user := range []string{"admin", "developer", "viewer"} {
				rec := serve(env.h, client, r.method, fillPath(r.path), bearer(seed.tokens[user]), nil)
				if allowed(user, r.permission) {
					requireLetIn(t, rec, "user %s", user)
					continue
				}
				msg := requireAPIError(t, rec, http.StatusForbidden, "forbidden")
				require.Contains(t, msg, fmt.Sprintf("lacks the permission %q", r.permission), user)
			}
		})
	}
}

// TestResourceScope varies the seed: rollback reaches only app, and an
// on-call user is a viewer with rollback of its own (users[].permissions).
// It may roll back the app and act on the app's incidents, not on the
// database's, which it still sees; a viewer whose monitor reaches only app
// sees only the app's incidents.
func TestResourceScope(t *testing.T) {
	rollbackOnlyApp := func(doc string) string {
		i := strings.Index(doc, "  rollback:\n")
		require.Positive(t, i)
		return doc[:i] + strings.Replace(doc[i:], "      - app\n      - infrastructure\n      - database\n", "      - app\n", 1)
	}
	seed := newSeedAccess(t, rollbackOnlyApp, "  - name: oncall\n    role: viewer\n    permissions: [rollback]")
	a, err := auth.New(seed.cfg)
	require.NoError(t, err)
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"a": {ID: "a", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "high_cpu", Labels: map[string]string{"app": "app"}}},
		"d": {ID: "d", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "slow_queries", Labels: map[string]string{"app": "database"}}},
	}}
	deploys := &fakeDeploys{}
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Incidents = incs
		o.Deploys = deploys
	})
	oncall := bearer(seed.tokens["oncall"])
	post := func(path, authz string) int {
		return serve(env.h, "127.0.0.1", http.MethodPost, path, authz, strings.NewReader(`{}`)).Code
	}

	require.Equal(t, http.StatusOK, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/incidents/d", oncall, nil).Code,
		"monitor still reaches every app")
	require.Equal(t, http.StatusForbidden, post("/api/v1/incidents/d/ack", oncall), "rollback, and the acknowledge it implies, reach app only")
	require.Equal(t, http.StatusForbidden, post("/ui/incidents/d/resolve", oncall))
	require.Equal(t, notifier.StateTriggered, incs.m["d"].State)
	require.Equal(t, http.StatusOK, post("/api/v1/incidents/a/ack", oncall))
	require.Equal(t, "oncall", incs.m["a"].AcknowledgedBy)
	// The watched app is "app": oncall may roll it back (409: no deploy yet).
	require.Equal(t, http.StatusConflict, post("/api/v1/rollback", oncall))
	require.Equal(t, http.StatusForbidden, post("/api/v1/deploys", oncall), "oncall may not deploy at all")
	require.Equal(t, http.StatusOK, post("/api/v1/incidents/d/ack", bearer(seed.tokens["admin"])),
		"admin's deploy reaches every app, and so does its acknowledge")

	// A variation where monitor reaches only app: the viewer sees the app's
	// incidents and alerts, and nothing of the database's.
	monitorOnlyApp := func(doc string) string {
		i := strings.Index(doc, "  monitor:\n")
		require.Positive(t, i)
		return doc[:i] + strings.Replace(doc[i:], "      - app\n      - infrastructure\n      - database\n", "      - app\n", 1)
	}
	seed = newSeedAccess(t, monitorOnlyApp)
	a2, err := auth.New(seed.cfg)
	require.NoError(t, err)
	a = a2
	viewer := bearer(seed.tokens["viewer"])
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/incidents", viewer, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `"id":"a"`)
	require.NotContains(t, rec.Body.String(), `"id":"d"`)
	requireAPIError(t, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/incidents/d", viewer, nil), http.StatusNotFound, "not_found")
	page := serve(env.h, "127.0.0.1", http.MethodGet, "/", viewer, nil)
	require.Equal(t, http.StatusOK, page.Code)
	require.Contains(t, page.Body.String(), "high_cpu")
	require.NotContains(t, page.Body.String(), "slow_queries")
	// The viewer's own view_metrics has no resources: queries stay open.
	requireLetIn(t, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/query?query=up", viewer, nil))
	// Reading logs comes with monitor only for app here, and logs have
	// no app: view_logs is the viewer's own, so it stays.
	require.True(t, seed.cfg.GrantsOf(seed.cfg.PermissionsOf("viewer")).Whole[permViewLogs])
}

// TestResourceScopeSilences: silences have no app, so the API lists them
// only to a user whose monitor reaches every app; the page keeps to the
// same rule and does not show them to a viewer whose monitor reaches the
// app only (their matchers and comments name other apps).
func TestResourceScopeSilences(t *testing.T) {
	seed := newSeedAccess(t, func(doc string) string {
		i := strings.Index(doc, "  monitor:\n")
		require.Positive(t, i)
		return doc[:i] + strings.Replace(doc[i:], "      - app\n      - infrastructure\n      - database\n", "      - app\n", 1)
	})
	a, err := auth.New(seed.cfg)
	require.NoError(t, err)
	sil := &fakeSilences{}
	_, err = sil.AddSilence(notifier.Silence{Matchers: `{app="database"}`, CreatedBy: "admin", Comment: "database failover drill", EndsAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Silences = sil
	})
	viewer := bearer(seed.tokens["viewer"])
	require.Equal(t, http.StatusForbidden, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/silences", viewer, nil).Code)
	page := serve(env.h, "127.0.0.1", http.MethodGet, "/", viewer, nil)
	require.Equal(t, http.StatusOK, page.Code)
	require.NotContains(t, page.Body.String(), "database failover drill")

	// With the seed's blocks as written, monitor reaches every app.
	seed = newSeedAccess(t, nil)
	a2, err := auth.New(seed.cfg)
	require.NoError(t, err)
	a = a2
	viewer = bearer(seed.tokens["viewer"])
	require.Equal(t, http.StatusOK, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/silences", viewer, nil).Code)
	page = serve(env.h, "127.0.0.1", http.MethodGet, "/", viewer, nil)
	require.Contains(t, page.Body.String(), "database failover drill")
}

// TestSeedRolesAlone is issue 9's second observation: with only the seed's
// roles block, admin got 403 on /api/v1/query (its role lists no
// view_metrics) and every user 403 on acknowledging (no role lists
// acknowledge). The seed's coarse permissions now imply the finer ones.
func TestSeedRolesAlone(t *testing.T) {
	tokens := map[string]string{}
	doc := "service: checkout\nenvironment: production\nusers:\n"
	for _, name := range []string{"admin", "developer", "viewer"} {
		token, hash, err := auth.NewToken()
		require.NoError(t, err)
		tokens[name] = token
		doc += fmt.Sprintf("  - {name: %s, role: %s, tokens: [%q]}\n", name, name, hash)
	}
	doc += testutil.SeedBlock(t, "# Role management configuration")
	cfg, err := config.Parse([]byte(doc), "vigil.yml")
	require.NoError(t, err)
	a, err := auth.New(cfg)
	require.NoError(t, err)
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"a": {ID: "a", State: notifier.StateTriggered},
		"b": {ID: "b", State: notifier.StateTriggered},
	}}
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Incidents = incs
	})
	env.h.SetReady(true)
	query := serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/query?query=up", bearer(tokens["admin"]), nil)
	require.Equal(t, http.StatusOK, query.Code, query.Body.String())
	for id, user := range map[string]string{"a": "admin", "b": "developer"} {
		rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/incidents/"+id+"/ack", bearer(tokens[user]), strings.NewReader(`{}`))
		require.Equal(t, http.StatusOK, rec.Code, "%s: %s", user, rec.Body.String())
	}
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/incidents/a/resolve", bearer(tokens["viewer"]), strings.NewReader(`{}`))
	requireAPIError(t, rec, http.StatusForbidden, "forbidden")
}

// TestResourceScopePage: the page offers only what the server lets the
// user do. An on-call user whose acknowledge reaches the app only (it comes
// with rollback, limited to app) sees Acknowledge and Resolve on the app's
// incident and not on the database's, and no Silence form or Expire
// button, since silences have no app and their routes need acknowledge on
// every app. A user whose view_metrics reaches the app only (it comes with
// monitor, limited to app) does not see the dead rules, which name every
// app's rules, as GET /api/v1/rules/dead does not list them to it.
func TestResourceScopePage(t *testing.T) {
	limit := func(permission string) func(string) string {
		return func(doc string) string {
			i := strings.Index(doc, "  "+permission+":\n")
			require.Positive(t, i)
			return doc[:i] + strings.Replace(doc[i:], "      - app\n      - infrastructure\n      - database\n", "      - app\n", 1)
		}
	}
	seed := newSeedAccess(t, limit("rollback"), "  - name: oncall\n    role: viewer\n    permissions: [rollback]")
	a, err := auth.New(seed.cfg)
	require.NoError(t, err)
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"a": {ID: "a", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "high_cpu", Labels: map[string]string{"app": "app"}}},
		"d": {ID: "d", State: notifier.StateTriggered, Alert: notifier.Alert{Name: "slow_queries", Labels: map[string]string{"app": "database"}}},
	}}
	sil := &fakeSilences{}
	_, err = sil.AddSilence(notifier.Silence{Matchers: `{app="database"}`, CreatedBy: "admin", Comment: "database failover drill", EndsAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	dead := []vigilrules.DeadRule{{File: "vigil.yml#alerts", Group: "vigil", Rule: "high_network_usage",
		Selector: `network_usage{app="infrastructure"}`, Since: time.Now()}}
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Incidents = incs
		o.Silences = sil
		o.DeadRules = func() []vigilrules.DeadRule { return dead }
	})
	// article returns the page's block of incident id.
	article := func(page, id string) string {
		i := strings.Index(page, `id="incident-`+id+`"`)
		require.Positive(t, i, "incident %s on the page", id)
		j := strings.Index(page[i:], "</article>")
		require.Positive(t, j)
		return page[i : i+j]
	}
	get := func(user string) string {
		rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", bearer(seed.tokens[user]), nil)
		require.Equal(t, http.StatusOK, rec.Code, user)
		return rec.Body.String()
	}

	page := get("oncall")
	require.Contains(t, page, "database failover drill", "oncall monitors every app: it sees the silences")
	require.Contains(t, article(page, "a"), `class="ack"`)
	require.Contains(t, article(page, "a"), `class="resolve"`)
	require.NotContains(t, article(page, "d"), `class="ack"`, "oncall may not acknowledge the database's incident")
	require.NotContains(t, article(page, "d"), `class="resolve"`)
	require.NotContains(t, page, `action="/ui/silences"`, "oncall may not silence: its acknowledge reaches app only")
	require.NotContains(t, page, `class="expire"`)
	// What the page hides, the server refuses.
	form := func(path string) int {
		return serve(env.h, "127.0.0.1", http.MethodPost, path, bearer(seed.tokens["oncall"]), strings.NewReader(`{}`)).Code
	}
	require.Equal(t, http.StatusForbidden, form("/ui/incidents/d/ack"))
	require.Equal(t, http.StatusForbidden, form("/api/v1/silences"))

	// developer's deploy, and the acknowledge it implies, reach every app.
	page = get("developer")
	require.Contains(t, article(page, "d"), `class="ack"`)
	require.Contains(t, article(page, "d"), `class="resolve"`)
	require.Contains(t, page, `action="/ui/silences"`)
	require.Contains(t, page, `class="expire"`)
	require.Contains(t, page, `id="dead-rules"`)

	// monitor, and the view_metrics it implies, reach the app only: admin
	// (whose role lists no view_metrics of its own) sees no dead rules,
	// and the API refuses them; viewer's own view_metrics is whole.
	seed = newSeedAccess(t, limit("monitor"))
	a2, err := auth.New(seed.cfg)
	require.NoError(t, err)
	a = a2
	require.NotContains(t, get("admin"), "high_network_usage")
	requireAPIError(t, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/rules/dead", bearer(seed.tokens["admin"]), nil), http.StatusForbidden, "forbidden")
	require.Contains(t, get("viewer"), `<b>high_network_usage</b>`)
	require.Equal(t, http.StatusOK, serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/rules/dead", bearer(seed.tokens["viewer"]), nil).Code)
}
