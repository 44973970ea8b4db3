package web

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// accessDoc maps the seed's permissions to vigil's routes, made from the
// route table, config.Implied and the seed's roles.
const accessDoc = "../docs/access.md"

// grantedBy lists the permissions that give permission: itself, then the
// coarse ones that imply it.
func grantedBy(permission string) []string {
	out := []string{permission}
	for _, coarse := range slices.Sorted(func(yield func(string) bool) {
		for p := range config.Implied {
			if !yield(p) {
				return
			}
		}
	}) {
		if slices.Contains(config.Implied[coarse], permission) {
			out = append(out, coarse)
		}
	}
	return out
}

func codeList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "`" + n + "`"
	}
	return strings.Join(out, ", ")
}

// renderAccessDoc writes docs/access.md.
func renderAccessDoc(t *testing.T, routes []route, seed *config.Config) string {
	var b strings.Builder
	b.WriteString(`# Access: the seed's users, roles and permissions

Made from the route table in ` + "`web/routes.go`" + `, ` + "`config.Implied`" + ` and the seed's
three access blocks (a test fails when they differ; regenerate with
` + "`VIGIL_UPDATE_DOCS=1 go test -run TestAccessDoc ./web/`" + `).

The seed's ` + "`users`" + `, ` + "`roles`" + ` and ` + "`permissions`" + ` blocks load as the seed writes
them:

- ` + "`users[].permissions`" + ` are granted to the user on top of its role's (the seed's
  lists are already in each role, so they add nothing there). A user may have
  ` + "`role`" + `, ` + "`roles`" + ` or both.
- Each user signs in with a token: add ` + "`tokens: [\"sha256:...\"]`" + ` (from
  ` + "`vigil token new`" + `) to the seed's user. Without any token in development, vigil
  runs open and logs a loud warning; in staging and production no one can sign
  in, and ` + "`vigil check config`" + ` warns when no user with a token may acknowledge.
- The ` + "`permissions`" + ` block describes permissions (` + "`description`" + `) and scopes them
  (` + "`resources`" + `, below); it does not choose them. vigil's permissions are always
  known, listed or not: ` + codeList(config.BuiltinPermissions) + `.
  Any other name, in a role, a user or the block, is an error with a "did you
  mean".
- The seed's coarse permissions imply vigil's finer ones, so that its roles do
  what their names say:

| permission | also gives |
|---|---|
`)
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range config.Implied {
			if !yield(p) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "| `%s` | %s |\n", p, codeList(config.Implied[p]))
	}
	b.WriteString(`
- ` + "`resources`" + ` limit a permission (and what it implies) to apps: values of the
  ` + "`app`" + ` label (` + "`app`" + `, ` + "`infrastructure`" + `, ` + "`database`" + `, or any other). A permission
  whose resources list every app the configuration names (in any permission's
  resources, a collector's or an alert rule's ` + "`app`" + ` label) reaches every app,
  and what has no app: the seed's blocks, which give each permission all three
  apps, limit nothing. A config that adds a fourth app must add it to the
  resources of whoever may see it. A permission held for some apps only lets a user
  into the routes marked "per app" below, where each incident, alert, deploy
  and rollback is checked against its app (deploys and the rollback webhook
  belong to the app collector's app, ` + "`app`" + ` by default): what the user may not
  see is left out of lists and the page and answers 404; acting on it answers
  403. Routes without an app (metric queries, logs, silences, users, the
  reload) need the permission for every app.
- ` + "`vigil check config`" + ` prints each user's effective permissions (with "only ..."
  for those limited to some apps) and warns about a user who can do nothing.

With the seed's blocks as written, admin may do everything, developer reads
everything, records deploys and acts on incidents, and viewer reads everything
and changes nothing (reading users, roles and the audit log is managing users).

| route | needs | given by | per app | admin | developer | viewer |
|---|---|---|---|---|---|---|
`)
	users := map[string]config.Grants{}
	for _, u := range seed.Users {
		users[u.Name] = seed.UserGrants(u)
	}
	mark := func(user, permission string) string {
		if users[user].Has(permission) {
			return "yes"
		}
		return "no"
	}
	prom := 0
	for _, r := range routes {
		if r.permission == permOpen || r.permission == permSlack {
			continue
		}
		if strings.HasPrefix(r.path, apiPrefix+"/") && r.permission == permViewMetrics {
			prom++
			continue
		}
		perApp := ""
		if r.scoped() {
			perApp = "yes"
		}
		fmt.Fprintf(&b, "| `%s %s` | `%s` | %s | %s | %s | %s | %s |\n", r.method, r.path, r.permission,
			codeList(grantedBy(r.permission)), perApp, mark("admin", r.permission), mark("developer", r.permission), mark("viewer", r.permission))
	}
	fmt.Fprintf(&b, "| the Prometheus API (%d routes, [api.md](api.md)) | `%s` | %s |  | %s | %s | %s |\n", prom, permViewMetrics,
		codeList(grantedBy(permViewMetrics)), mark("admin", permViewMetrics), mark("developer", permViewMetrics), mark("viewer", permViewMetrics))
	b.WriteString("\nOpen routes (health, readiness, metrics, sign-in, static files) and Slack's\n" +
		"(checked by its signing secret) need no permission; see [api.md](api.md).\n")
	return b.String()
}

// TestAccessDoc keeps docs/access.md the route table's map of the seed's
// permissions.
func TestAccessDoc(t *testing.T) {
	env := newTestEnv(t)
	want := renderAccessDoc(t, env.h.routes, newSeedAccess(t, nil).cfg)
	if os.Getenv("VIGIL_UPDATE_DOCS") == "1" {
		require.NoError(t, os.WriteFile(filepath.FromSlash(accessDoc), []byte(want), 0o644))
	}
	got, err := os.ReadFile(filepath.FromSlash(accessDoc))
	require.NoError(t, err, "docs/access.md is missing: VIGIL_UPDATE_DOCS=1 go test -run TestAccessDoc ./web/")
	require.Equal(t, want, string(got), "docs/access.md differs from the route table: VIGIL_UPDATE_DOCS=1 go test -run TestAccessDoc ./web/")
}
