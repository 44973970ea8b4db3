package web

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// apiDoc is the reference of every route, made from the route table.
const apiDoc = "../docs/api.md"

// routeDescriptions say what each of vigil's own routes does; Prometheus's
// routes are described once, together.
var routeDescriptions = map[string]string{
	"GET /health":                        "liveness: 200 while vigil runs",
	"HEAD /health":                       "liveness",
	"GET /ready":                         "readiness: 200 once storage, rules and scrapes run, 503 before",
	"HEAD /ready":                        "readiness",
	"GET /metrics":                       "vigil's own metrics and its collectors' (`?collectors=false` leaves those out); the path follows `metrics.path`",
	"GET /metrics/collectors/:name":      "one collector's metrics (host, postgres, probe), as vigil scrapes them",
	"GET /":                              "the operator page (the sign-in form without a session); [docs/operator-page.md](operator-page.md)",
	"POST /ui/login":                     "the page's sign-in form: a token starts a session (CSRF cookie token)",
	"POST /ui/logout":                    "ends the page's session",
	"POST /ui/incidents/:id/ack":         "the page's Acknowledge button (session + CSRF token, or a bearer token)",
	"POST /ui/incidents/:id/resolve":     "the page's Resolve button",
	"POST /ui/rollback":                  "the page's Roll back button",
	"GET /ui/static/*file":               "the page's CSS and script, embedded in the binary",
	"GET /alerts":                        "pending and firing alerts, firing first (`?state=firing\\|pending`)",
	"POST /-/reload":                     "re-reads the configuration, as SIGHUP does",
	"GET /debug/pprof/:name":             "a Go runtime profile for `go tool pprof`: heap, allocs, goroutine, threadcreate, block, mutex (`?debug=1` text, `?gc=1` collect first)",
	"GET /api/v1/logs":                   "the last lines of a tailed log: `?log=NAME&limit=N`",
	"GET /api/v1/incidents":              "incidents, newest first: `?state=triggered\\|acknowledged\\|resolved&limit=N`",
	"GET /api/v1/incidents/:id":          "one incident with its notifications and rollback",
	"POST /api/v1/incidents/:id/ack":     "acknowledge: `{\"comment\": \"...\"}`; stops escalation",
	"POST /api/v1/incidents/:id/resolve": "resolve by hand: `{\"comment\": \"...\"}`",
	"GET /api/v1/deploys":                "recorded deploys, newest first: `?limit=N`",
	"POST /api/v1/deploys":               "record a deploy: `{\"service\", \"version\", \"environment\", \"time\", \"strategy\"}` (strategy: canary, blue-green or rolling)",
	"GET /api/v1/deploys/:id/analysis":   "a deploy's analysis against its baseline, step by step, and its verdict (docs/deploy-analysis.md)",
	"GET /api/v1/backups":                "recorded backups, newest first: `?limit=N`",
	"POST /api/v1/backups":               "record a backup (the backup job): `{\"time\", \"size\", \"ok\", \"location\", \"error\"}`; `ok` defaults to true (docs/dr-watch.md)",
	"POST /api/v1/rollback":              "fire the rollback webhook for the last deploy now: `{\"reason\": \"...\"}`",
	"GET /api/v1/rollbacks":              "rollback webhook calls, for incidents and by hand, newest first: `?limit=N`",
	"POST /slack/interactions":           "Slack's Acknowledge and Resolve buttons; verified with Slack's signing secret",
	"GET /api/v1/audit":                  "the audit log, newest first: `?limit=N` (the last 1,000 calls, kept across restarts)",
	"GET /api/v1/users":                  "users, from the config and added at runtime; never their token hashes",
	"POST /api/v1/users":                 "add a user: `{\"name\", \"roles\", \"tokens\": [\"sha256:...\"]}`",
	"GET /api/v1/users/:name":            "one user",
	"PUT /api/v1/users/:name":            "replace a runtime user's roles and token hashes",
	"DELETE /api/v1/users/:name":         "remove a runtime user",
	"GET /api/v1/roles":                  "roles and their permissions",
	"POST /api/v1/roles":                 "add a role: `{\"name\", \"description\", \"permissions\"}`",
	"GET /api/v1/roles/:name":            "one role",
	"PUT /api/v1/roles/:name":            "replace a runtime role's description and permissions",
	"DELETE /api/v1/roles/:name":         "remove a runtime role no user has",
	"GET /api/v1/silences":               "active and pending silences, newest first (`?expired=true` adds the ended ones)",
	"POST /api/v1/silences":              "mute an alert's notifications: `{\"matchers\": \"{alertname=\\\"X\\\"}\", \"duration\": \"2h\", \"comment\"}` (or `endsAt`)",
	"DELETE /api/v1/silences/:id":        "end a silence now",
	"POST /ui/silences":                  "the page's Silence form on an incident (its alert, for 1h, 4h or 24h)",
	"POST /ui/silences/:id/expire":       "the page's Expire button on a silence",
	"GET /api/v1/rules/dead":             "rule inputs that matched no series for `alerts.absent_after`: rules that cannot fire (`vigil check config --live` reads it)",
	"POST /api/v2/alerts":                "Alertmanager API v2: take alerts (Prometheus, vmalert, Grafana, amtool); 400 names each invalid one, the rest are taken; [docs/alertmanager-api.md](alertmanager-api.md)",
	"GET /api/v2/alerts":                 "Alertmanager API v2: the posted alerts that have not ended (`filter`, `active`, `silenced`, `receiver`)",
	"GET /api/v2/status":                 "Alertmanager API v2: cluster `disabled`, version, uptime, an Alertmanager-shaped summary of the config (no secrets)",
	"GET /api/v2/receivers":              "Alertmanager API v2: the configured receivers' names",
	"GET /api/v2/silences":               "Alertmanager API v2: every silence in Alertmanager's shape (`filter`)",
	"POST /api/v2/silences":              "Alertmanager API v2: add a silence (or replace one: `id`); answers `{\"silenceID\"}`",
	"GET /api/v2/silence/:id":            "Alertmanager API v2: one silence",
	"DELETE /api/v2/silence/:id":         "Alertmanager API v2: expire a silence",
	"prometheus":                         "Prometheus's HTTP API, for Grafana's Prometheus data source and promtool-style clients",
}

// permissionText is how the reference names a route's permission.
func permissionText(p string) string {
	switch p {
	case permOpen:
		return "none"
	case permSlack:
		return "Slack signing secret"
	}
	return "`" + p + "`"
}

// renderAPIDoc writes the reference from the route table.
func renderAPIDoc(t *testing.T, routes []route) string {
	var b strings.Builder
	b.WriteString(`# HTTP API

Every route vigil serves, with the permission it needs, made from the route
table in ` + "`web/routes.go`" + ` (a test fails when the two differ; regenerate with
` + "`VIGIL_UPDATE_DOCS=1 go test -run TestAPIDoc ./web/`" + `). Authenticate with
` + "`Authorization: Bearer <token>`" + `, or basic auth with the user's name and a token as
the password; 401 without a valid token, 403 without the permission, both as
JSON ` + "`{\"status\": \"error\", \"errorType\": ..., \"error\": ...}`" + `. Calls that change
something are refused (403) when a browser says they come from another site.
The operator page's routes also take its session cookie, with a CSRF token on
every form post. See the README's Access section for users, roles and tokens.

Only failures are limited: after ten failed tokens in a minute from one
address, its further failures get 429 with Retry-After while valid tokens
still pass. Slack's buttons need the permission of the ack and resolve rows
below. The Prometheus API's expression and selector routes are bounded by the
config's ` + "`query`" + ` block: an expression or ` + "`match[]`" + ` over
` + "`query.max_length`" + ` or nesting over 100 levels gets 400, a form over
` + "`query.max_form_size`" + ` 413 and one that finds no turn among
` + "`query.max_concurrency`" + ` within ` + "`query.timeout`" + ` 503, each
naming the key; a query over ` + "`query.max_samples`" + ` gets Prometheus's
422, and so does one with a subquery of more steps than
` + "`query.max_samples`" + ` (refused before it runs: Prometheus v0.314 and later
allocate every step's statistics before they check the sample limit), and
one over ` + "`query.timeout`" + ` its 503. Headers must arrive within 10s and a whole request within
20s; one address holds at most 128 connections. The README's Access section
lists every bound with its default and test.

## vigil

| route | permission | |
|---|---|---|
`)
	var prom []string
	for _, r := range routes {
		key := r.method + " " + r.path
		if strings.HasPrefix(r.path, apiPrefix+"/") && r.permission == permViewMetrics {
			prom = append(prom, key)
			continue
		}
		desc, ok := routeDescriptions[key]
		require.True(t, ok, "route %s has no description in routeDescriptions", key)
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", key, permissionText(r.permission), desc)
	}
	b.WriteString("\n## Prometheus API\n\n" + routeDescriptions["prometheus"] + ", all with `view_metrics`:\n\n")
	slices.Sort(prom)
	for _, key := range prom {
		fmt.Fprintf(&b, "- `%s`\n", key)
	}
	return b.String()
}

// TestAPIDoc keeps docs/api.md the route table's reference.
func TestAPIDoc(t *testing.T) {
	env := newTestEnv(t)
	want := renderAPIDoc(t, env.h.routes)
	for key := range routeDescriptions {
		if key == "prometheus" {
			continue
		}
		require.True(t, slices.ContainsFunc(env.h.routes, func(r route) bool { return r.method+" "+r.path == key }),
			"routeDescriptions describes %s, which is not a route", key)
	}
	if os.Getenv("VIGIL_UPDATE_DOCS") == "1" {
		require.NoError(t, os.WriteFile(filepath.FromSlash(apiDoc), []byte(want), 0o644))
	}
	got, err := os.ReadFile(filepath.FromSlash(apiDoc))
	require.NoError(t, err, "docs/api.md is missing: VIGIL_UPDATE_DOCS=1 go test -run TestAPIDoc ./web/")
	require.Equal(t, want, string(got), "docs/api.md differs from the route table: VIGIL_UPDATE_DOCS=1 go test -run TestAPIDoc ./web/")
}
