package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/internal/testutil"
)

// seedUserLine is a user's first line in the seed's users block.
var seedUserLine = regexp.MustCompile(`(?m)^  - name: (\S+)$`)

// seedAccessBlocks returns the seed's users, roles and permissions blocks
// as the seed writes them, read from the seed document (or, when
// ../shared is absent as in a clone, from its copy in
// internal/testutil/testdata), with a `tokens` key added to each user, and
// the tokens by user. extraUsers are appended to the users block.
func seedAccessBlocks(t *testing.T, extraUsers ...string) (string, map[string]string) {
	t.Helper()
	_, from := testutil.SeedDocument(t)
	t.Logf("seed document: %s", from)
	tokens := map[string]string{}
	users := strings.TrimRight(testutil.SeedBlock(t, "# User management configuration"), "\n") + "\n"
	for _, u := range extraUsers {
		users += u + "\n"
	}
	users = seedUserLine.ReplaceAllStringFunc(users, func(line string) string {
		token, hash, err := auth.NewToken()
		require.NoError(t, err)
		tokens[strings.TrimPrefix(line, "  - name: ")] = token
		return fmt.Sprintf("%s\n    tokens: [%q]", line, hash)
	})
	return users + testutil.SeedBlock(t, "# Role management configuration") +
		testutil.SeedBlock(t, "# Permission management configuration"), tokens
}

// accessRow is one route of docs/access.md with what each seed user may.
type accessRow struct {
	method, path string
	may          map[string]bool
}

// accessRows reads the route table of docs/access.md (made from the route
// table by web's TestAccessDoc).
func accessRows(t *testing.T) []accessRow {
	t.Helper()
	b, err := os.ReadFile("../../docs/access.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `(GET|POST|PUT|DELETE) ([^`]+)` \\|.*\\| (yes|no) \\| (yes|no) \\| (yes|no) \\|$")
	var out []accessRow
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		out = append(out, accessRow{method: m[1], path: m[2], may: map[string]bool{
			"admin": m[3] == "yes", "developer": m[4] == "yes", "viewer": m[5] == "yes",
		}})
	}
	require.Greater(t, len(out), 20, "docs/access.md lists the routes")
	return out
}

// TestSeedAccess loads the seed's access blocks as a config: `vigil check
// config` passes and prints each user's permissions, vigil starts, every
// route of docs/access.md answers each seed user as the table says, the
// admin queries metrics (issue 9 saw 403), and after a reload that limits
// rollback to app, an on-call user with rollback of its own may act on the
// app's incident but not on the database's.
func TestSeedAccess(t *testing.T) {
	dir := t.TempDir()
	app := newGaugeApp(t, 10)
	addr := freePort(t)
	base := fmt.Sprintf(`service: checkout
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text, output: stdout}
metrics: {interval: 1s}
collectors:
  app: {targets: ["%s"], labels: {app: app}}
alerts:
  rules:
    - {name: app_always, condition: vector(1), duration: 0s, severity: critical, labels: {app: app}}
    - {name: database_always, condition: vector(1), duration: 0s, severity: critical, labels: {app: database}}
`, filepath.Join(dir, "data"), addr, app.hostPort())
	oncall := "  - name: oncall\n    role: viewer\n    permissions: [rollback]"
	blocks, tokens := seedAccessBlocks(t, oncall)
	file := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(file, []byte(base+blocks), 0o644))

	out, err := exec.Command(vigilBin, "check", "config", file).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "SUCCESS")
	for _, want := range []string{
		"user:        admin (admin; 1 token) may: acknowledge, backup, deploy, ingest, manage_roles, manage_users, monitor, rollback, view_logs, view_metrics",
		"user:        developer (developer; 1 token) may: acknowledge, deploy, monitor, view_logs, view_metrics",
		"user:        viewer (viewer; 1 token) may: monitor, view_logs, view_metrics",
		"user:        oncall (viewer; 1 token) may: acknowledge, monitor, rollback, view_logs, view_metrics",
	} {
		require.Contains(t, string(out), want)
	}
	require.NotContains(t, string(out), "warning")

	v := startVigil(t, file, addr)
	call := func(method, path, user string) (int, string) {
		req, err := http.NewRequest(method, v.url(path), strings.NewReader("{}"))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tokens[user])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}

	for _, r := range accessRows(t) {
		if r.path == "/-/reload" || (r.method == http.MethodPost && r.path == "/api/v1/rollback") {
			continue // exercised below, once
		}
		path := regexp.MustCompile(`:[a-z]+`).ReplaceAllString(r.path, "x")
		for _, user := range []string{"admin", "developer", "viewer"} {
			code, msg := call(r.method, path, user)
			if r.may[user] {
				require.NotContains(t, []int{401, 429}, code, "%s %s as %s: %s", r.method, path, user, msg)
				if code == http.StatusForbidden {
					require.Contains(t, msg, "CSRF", "%s %s as %s", r.method, path, user)
				}
				continue
			}
			require.Equal(t, http.StatusForbidden, code, "%s %s as %s", r.method, path, user)
			require.Contains(t, msg, "lacks the permission", "%s %s as %s", r.method, path, user)
		}
	}
	code, msg := call(http.MethodGet, "/api/v1/query?query=up", "admin")
	require.Equal(t, http.StatusOK, code, msg)

	// Both rules fire at once: one incident of each app.
	incidentOf := map[string]string{}
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest(http.MethodGet, v.url("/api/v1/incidents"), nil)
		req.Header.Set("Authorization", "Bearer "+tokens["admin"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var env struct {
			Data []struct {
				ID    string `json:"id"`
				Alert struct {
					Labels map[string]string `json:"labels"`
				} `json:"alert"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&env) != nil {
			return false
		}
		for _, inc := range env.Data {
			incidentOf[inc.Alert.Labels["app"]] = inc.ID
		}
		return incidentOf["app"] != "" && incidentOf["database"] != ""
	}, 30*time.Second, 100*time.Millisecond)

	// A variation on the seed: rollback reaches only app.
	i := strings.Index(blocks, "  rollback:\n")
	require.Positive(t, i)
	scoped := blocks[:i] + strings.Replace(blocks[i:], "      - app\n      - infrastructure\n      - database\n", "      - app\n", 1)
	require.NotEqual(t, blocks, scoped)
	require.NoError(t, os.WriteFile(file, []byte(base+scoped), 0o644))
	code, msg = call(http.MethodPost, "/-/reload", "developer")
	require.Equal(t, http.StatusForbidden, code, msg)
	code, msg = call(http.MethodPost, "/-/reload", "admin")
	require.Equal(t, http.StatusOK, code, msg)

	code, msg = call(http.MethodPost, "/api/v1/incidents/"+incidentOf["database"]+"/ack", "oncall")
	require.Equal(t, http.StatusForbidden, code, msg)
	require.Contains(t, msg, `"database"`)
	code, msg = call(http.MethodPost, "/api/v1/incidents/"+incidentOf["app"]+"/ack", "oncall")
	require.Equal(t, http.StatusOK, code, msg)
	code, msg = call(http.MethodPost, "/api/v1/incidents/"+incidentOf["database"]+"/ack", "developer")
	require.Equal(t, http.StatusOK, code, msg)
	// The rollback webhook rolls the app back: oncall may ask (no webhook
	// is configured, so 404 says so); the viewer may not.
	code, msg = call(http.MethodPost, "/api/v1/rollback", "oncall")
	require.Equal(t, http.StatusNotFound, code, msg)
	code, msg = call(http.MethodPost, "/api/v1/rollback", "viewer")
	require.Equal(t, http.StatusForbidden, code, msg)
}

// TestSeedAccessWarnings: the seed's access blocks as written have no
// tokens. `vigil check config` says what that means: open in development,
// no one to acknowledge in production; and it names a user who can do
// nothing.
func TestSeedAccessWarnings(t *testing.T) {
	blocks := testutil.SeedBlock(t, "# User management configuration") +
		testutil.SeedBlock(t, "# Role management configuration") +
		testutil.SeedBlock(t, "# Permission management configuration")
	dir := t.TempDir()
	check := func(name, doc string) string {
		f := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(f, []byte(doc), 0o644))
		var stdout, stderr strings.Builder
		require.Equal(t, 0, checkConfig([]string{f}, &stdout, &stderr), stderr.String())
		return stdout.String()
	}
	out := check("dev.yml", blocks)
	require.Contains(t, out, "AUTHENTICATION IS OFF: none of the 3 configured users has a token")
	require.Contains(t, out, "user:        viewer (viewer; 0 tokens) may: monitor, view_logs, view_metrics")

	out = check("prod.yml", "environment: production\n"+blocks)
	require.Contains(t, out, "prod.yml:1: environment production: no user with a token may acknowledge incidents")
	require.NotContains(t, out, "AUTHENTICATION IS OFF")

	out = check("idle.yml", strings.TrimRight(testutil.SeedBlock(t, "# User management configuration"), "\n")+
		"\n  - name: idle\n    roles: [nothing]\n"+
		strings.TrimRight(testutil.SeedBlock(t, "# Role management configuration"), "\n")+"\n  nothing: []\n")
	require.Contains(t, out, `users[3] "idle" can do nothing: its roles (nothing) grant no permission`)
}
