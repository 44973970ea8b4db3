package web

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// newDirectory returns a Directory on a real bbolt store with cfg applied.
func newDirectory(t *testing.T, cfg *config.Config) *auth.Directory {
	t.Helper()
	store, err := notifier.OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	d, err := auth.NewDirectory(store.KV("auth"), discardLogger())
	require.NoError(t, err)
	require.NoError(t, d.ApplyConfig(cfg))
	return d
}

// withDirectory serves d's users and roles and authenticates with d.
func withDirectory(d *auth.Directory) func(*Options) {
	return func(o *Options) {
		o.Auth = d.Authenticator
		o.Directory = d
	}
}

// apiClient calls a test server over HTTP and keeps every answer, so a test
// can check that none holds a secret.
type apiClient struct {
	t       *testing.T
	base    string
	answers strings.Builder
}

func (c *apiClient) call(method, path, token, body string) (int, string) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	require.NoError(c.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", bearer(token))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	fmt.Fprintln(&c.answers, resp.StatusCode, resp.Header, string(b))
	return resp.StatusCode, string(b)
}

// data decodes the data of a success envelope.
func data[T any](t *testing.T, body string) T {
	t.Helper()
	var env struct {
		Status string `json:"status"`
		Data   T      `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &env), body)
	require.Equal(t, "success", env.Status, body)
	return env.Data
}

// errorOf decodes an error envelope and returns its type and message.
func errorOf(t *testing.T, body string) (string, string) {
	t.Helper()
	var env struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &env), body)
	require.Equal(t, "error", env.Status, body)
	return env.ErrorType, env.Error
}

// directoryRoute reports whether r is one of the users and roles routes.
func directoryRoute(r route) bool {
	return strings.HasPrefix(r.path, apiPrefix+"/users") || strings.HasPrefix(r.path, apiPrefix+"/roles")
}

func TestUsersAPI(t *testing.T) {
	f := newAuthFixture(t)
	d := newDirectory(t, f.cfg)
	env := newTestEnv(t, f.withAuth, withDirectory(d))
	env.h.SetReady(true)
	c := &apiClient{t: t, base: env.srv.URL}
	admin := f.tokens["admin"]
	ciToken, ciHash, err := auth.NewToken()
	require.NoError(t, err)

	// A role, then a user with it.
	status, body := c.call(http.MethodPost, "/api/v1/roles", admin,
		`{"name": "deployer", "description": "CI deploys", "permissions": ["monitor", "deploy"]}`)
	require.Equal(t, http.StatusCreated, status, body)
	role := data[auth.RoleInfo](t, body)
	require.Equal(t, auth.RoleInfo{Name: "deployer", Description: "CI deploys", Permissions: []string{"deploy", "monitor"},
		Source: "runtime", Created: role.Created, CreatedBy: "alice", Updated: role.Updated, UpdatedBy: "alice"}, role)

	status, body = c.call(http.MethodPost, "/api/v1/users", admin,
		fmt.Sprintf(`{"name": "ci", "roles": ["deployer"], "tokens": [%q]}`, ciHash))
	require.Equal(t, http.StatusCreated, status, body)
	user := data[auth.UserInfo](t, body)
	require.Equal(t, "ci", user.Name)
	require.Equal(t, []string{"deployer"}, user.Roles)
	require.Equal(t, 1, user.Tokens)
	require.Equal(t, "runtime", user.Source)
	// The user's permissions are the role's and those they imply.
	require.Equal(t, []string{"acknowledge", "deploy", "monitor", "view_logs", "view_metrics"}, user.Permissions)
	require.Equal(t, "alice", user.CreatedBy)
	require.Equal(t, "/api/v1/users", env.h.access.audit.newest(1)[0].Path)
	require.Equal(t, "alice", env.h.access.audit.newest(1)[0].User)

	// The new token works at once, with exactly the user's permissions.
	checked := 0
	for i, r := range env.h.routes {
		if r.permission == permOpen || r.permission == permSlack {
			continue
		}
		rec := serve(env.h, fmt.Sprintf("127.1.%d.%d", i/250, i%250+1), r.method, fillPath(r.path), bearer(ciToken), nil)
		if slices.Contains(user.Permissions, r.permission) {
			require.NotContains(t, []int{401, 403, 429}, rec.Code, "%s %s: %s", r.method, r.path, rec.Body.String())
			checked++
		} else {
			requireAPIError(t, rec, http.StatusForbidden, "forbidden")
		}
	}
	require.Positive(t, checked)

	// Listing and reading: configured and runtime users, never a hash.
	status, body = c.call(http.MethodGet, "/api/v1/users", admin, "")
	require.Equal(t, http.StatusOK, status, body)
	users := data[[]auth.UserInfo](t, body)
	sources := map[string]string{}
	for _, u := range users {
		sources[u.Name] = u.Source
	}
	require.Equal(t, map[string]string{"alice": "config", "dave": "config", "vic": "config", "nora": "config", "ci": "runtime"}, sources)
	status, body = c.call(http.MethodGet, "/api/v1/users/alice", admin, "")
	require.Equal(t, http.StatusOK, status, body)
	alice := data[auth.UserInfo](t, body)
	require.Equal(t, 1, alice.Tokens)
	require.Contains(t, alice.Permissions, "manage_users")
	status, body = c.call(http.MethodGet, "/api/v1/roles", admin, "")
	require.Equal(t, http.StatusOK, status, body)
	var roleNames []string
	for _, r := range data[[]auth.RoleInfo](t, body) {
		roleNames = append(roleNames, r.Name+"/"+r.Source)
	}
	require.Equal(t, []string{"admin/config", "deployer/runtime", "developer/config", "viewer/config"}, roleNames)
	status, body = c.call(http.MethodGet, "/api/v1/roles/deployer", admin, "")
	require.Equal(t, http.StatusOK, status, body)

	// PUT replaces: a config role now, and ci can no longer deploy.
	status, body = c.call(http.MethodPut, "/api/v1/users/ci", admin, fmt.Sprintf(`{"roles": ["viewer"], "tokens": [%q]}`, ciHash))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, []string{"monitor", "view_logs", "view_metrics"}, data[auth.UserInfo](t, body).Permissions)
	status, _ = c.call(http.MethodPost, "/api/v1/deploys", ciToken, `{"version": "1.2.3"}`)
	require.Equal(t, http.StatusForbidden, status)
	status, _ = c.call(http.MethodGet, "/api/v1/incidents", ciToken, "")
	require.Equal(t, http.StatusOK, status)

	// A role's change reaches its users at once.
	status, body = c.call(http.MethodPut, "/api/v1/users/ci", admin, fmt.Sprintf(`{"roles": ["deployer"], "tokens": [%q]}`, ciHash))
	require.Equal(t, http.StatusOK, status, body)
	status, body = c.call(http.MethodPut, "/api/v1/roles/deployer", admin, `{"description": "now reads logs", "permissions": ["view_logs"]}`)
	require.Equal(t, http.StatusOK, status, body)
	status, _ = c.call(http.MethodGet, "/api/v1/incidents", ciToken, "")
	require.Equal(t, http.StatusForbidden, status)
	status, _ = c.call(http.MethodGet, "/api/v1/logs?log=app", ciToken, "")
	require.NotContains(t, []int{401, 403}, status)

	refusals := []struct {
		name, method, path, body string
		want                     int
		wantType, wantMsg        string
	}{
		{"PUT a config user", http.MethodPut, "/api/v1/users/alice", `{"roles": ["viewer"]}`, 409, "conflict", "edit the config file"},
		{"DELETE a config user", http.MethodDelete, "/api/v1/users/vic", "", 409, "conflict", "edit the config file"},
		{"POST a config user", http.MethodPost, "/api/v1/users", `{"name": "dave", "roles": ["viewer"]}`, 409, "conflict", "edit the config file"},
		{"PUT a config role", http.MethodPut, "/api/v1/roles/viewer", `{"permissions": ["monitor"]}`, 409, "conflict", "edit the config file"},
		{"DELETE a config role", http.MethodDelete, "/api/v1/roles/admin", "", 409, "conflict", "edit the config file"},
		{"DELETE a role a user has", http.MethodDelete, "/api/v1/roles/deployer", "", 409, "conflict", "ci"},
		{"a config user's hash", http.MethodPost, "/api/v1/users", fmt.Sprintf(`{"name": "eve", "roles": ["viewer"], "tokens": [%q]}`, f.cfg.Users[0].Tokens[0]), 409, "conflict", "another user"},
		{"a token for a hash", http.MethodPost, "/api/v1/users", fmt.Sprintf(`{"name": "eve", "roles": ["viewer"], "tokens": [%q]}`, ciToken), 400, "bad_data", "tokens[0]"},
		{"unknown role", http.MethodPost, "/api/v1/users", `{"name": "eve", "roles": ["root"]}`, 400, "bad_data", `"root" is not a role`},
		{"bad name", http.MethodPost, "/api/v1/users", `{"name": "eve smith", "roles": ["viewer"]}`, 400, "bad_data", "not a user name"},
		{"no body", http.MethodPost, "/api/v1/users", "", 400, "bad_data", "not a user name"},
		{"unknown field", http.MethodPost, "/api/v1/users", `{"name": "eve", "roles": ["viewer"], "password": "x"}`, 400, "bad_data", "password"},
		{"name in a PUT body", http.MethodPut, "/api/v1/users/ci", `{"name": "other", "roles": ["viewer"]}`, 400, "bad_data", "name"},
		{"unknown permission", http.MethodPost, "/api/v1/roles", `{"name": "x", "permissions": ["sudo"]}`, 400, "bad_data", `"sudo" is not a permission`},
		{"unknown user", http.MethodGet, "/api/v1/users/nobody", "", 404, "not_found", "nobody"},
		{"PUT an unknown user", http.MethodPut, "/api/v1/users/nobody", `{"roles": ["viewer"]}`, 404, "not_found", "nobody"},
		{"unknown role by name", http.MethodDelete, "/api/v1/roles/nope", "", 404, "not_found", "nope"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, body := c.call(tt.method, tt.path, admin, tt.body)
			require.Equal(t, tt.want, status, body)
			errType, msg := errorOf(t, body)
			require.Equal(t, tt.wantType, errType)
			require.Contains(t, msg, tt.wantMsg)
		})
	}

	// Deleted, the user's token stops at once.
	status, body = c.call(http.MethodDelete, "/api/v1/users/ci", admin, "")
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "ci", data[auth.UserInfo](t, body).Name)
	status, _ = c.call(http.MethodGet, "/api/v1/logs?log=app", ciToken, "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, body = c.call(http.MethodDelete, "/api/v1/roles/deployer", admin, "")
	require.Equal(t, http.StatusOK, status, body)

	// No answer ever held a hash or a token.
	answers := c.answers.String()
	require.NotContains(t, answers, auth.HashPrefix)
	require.NotContains(t, answers, strings.TrimPrefix(ciHash, auth.HashPrefix))
	for _, tok := range append(slices.Collect(maps.Values(f.tokens)), ciToken) {
		require.NotContains(t, answers, strings.TrimPrefix(tok, auth.TokenPrefix))
	}
}

// TestUsersRoutesNeedTheirPermission walks every users and roles route with
// every role of the fixture: only the admin gets through.
func TestUsersRoutesNeedTheirPermission(t *testing.T) {
	f := newAuthFixture(t)
	d := newDirectory(t, f.cfg)
	env := newTestEnv(t, f.withAuth, withDirectory(d))
	var n int
	for i, r := range env.h.routes {
		if !directoryRoute(r) {
			continue
		}
		n++
		require.Contains(t, []string{permManageUsers, permManageRoles}, r.permission, r.path)
		for _, role := range []string{"viewer", "developer", noRole} {
			rec := serve(env.h, fmt.Sprintf("127.2.0.%d", i%250+1), r.method, fillPath(r.path), bearer(f.tokens[role]), strings.NewReader(`{}`))
			requireAPIError(t, rec, http.StatusForbidden, "forbidden")
		}
		rec := serve(env.h, "127.2.1.1", r.method, fillPath(r.path), bearer(f.tokens["admin"]), strings.NewReader(`{}`))
		require.NotContains(t, []int{401, 403, 429}, rec.Code, "%s %s: %s", r.method, r.path, rec.Body.String())
	}
	require.Equal(t, 10, n, "GET, POST, GET one, PUT and DELETE for users and for roles")
}

func TestUsersNotManaged(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)
	for _, r := range env.h.routes {
		if !directoryRoute(r) {
			continue
		}
		rec := serve(env.h, "127.3.0.1", r.method, fillPath(r.path), bearer(f.tokens["admin"]), nil)
		msg := requireAPIError(t, rec, http.StatusNotFound, "not_found")
		require.Equal(t, "users and roles are not managed here", msg)
	}
}

// TestFirstRuntimeUserTurnsAuthenticationOn: in development without users
// vigil is open, and the first user added at runtime closes it.
func TestFirstRuntimeUserTurnsAuthenticationOn(t *testing.T) {
	dev, err := config.Parse([]byte("service: checkout\nenvironment: development\n"), "vigil.yml")
	require.NoError(t, err)
	d := newDirectory(t, dev)
	env := newTestEnv(t, withDirectory(d))
	c := &apiClient{t: t, base: env.srv.URL}
	token, hash, err := auth.NewToken()
	require.NoError(t, err)

	status, body := c.call(http.MethodGet, "/api/v1/users", "", "")
	require.Equal(t, http.StatusOK, status, body)
	require.Empty(t, data[[]auth.UserInfo](t, body))

	// A first user who could not manage users would lock everyone out.
	status, body = c.call(http.MethodPost, "/api/v1/users", "", fmt.Sprintf(`{"name": "vic", "roles": ["viewer"], "tokens": [%q]}`, hash))
	require.Equal(t, http.StatusConflict, status, body)

	status, body = c.call(http.MethodPost, "/api/v1/users", "", fmt.Sprintf(`{"name": "root", "roles": ["admin"], "tokens": [%q]}`, hash))
	require.Equal(t, http.StatusCreated, status, body)
	require.Equal(t, auth.Anonymous, data[auth.UserInfo](t, body).CreatedBy)

	status, body = c.call(http.MethodGet, "/api/v1/users", "", "")
	require.Equal(t, http.StatusUnauthorized, status, body)
	status, body = c.call(http.MethodGet, "/api/v1/users", token, "")
	require.Equal(t, http.StatusOK, status, body)
	require.NotContains(t, c.answers.String(), auth.HashPrefix)
}

// TestNoGrantBeyondOwn: managing users or roles never hands out more than
// the caller holds. A role manager cannot give its role manage_users; a user
// manager cannot make an admin, nor change or delete one.
func TestNoGrantBeyondOwn(t *testing.T) {
	f := newAuthFixture(t)
	d := newDirectory(t, f.cfg)
	env := newTestEnv(t, f.withAuth, withDirectory(d))
	env.h.SetReady(true)
	c := &apiClient{t: t, base: env.srv.URL}
	admin := f.tokens["admin"]

	// The admin sets up a role manager (rita) and a user manager (uma).
	ritaToken, ritaHash, err := auth.NewToken()
	require.NoError(t, err)
	umaToken, umaHash, err := auth.NewToken()
	require.NoError(t, err)
	for _, body := range []string{
		`{"name": "roles-only", "permissions": ["manage_roles", "monitor"]}`,
		`{"name": "users-only", "permissions": ["manage_users", "monitor"]}`,
	} {
		code, resp := c.call(http.MethodPost, "/api/v1/roles", admin, body)
		require.Equal(t, http.StatusCreated, code, resp)
	}
	for _, body := range []string{
		fmt.Sprintf(`{"name": "rita", "roles": ["roles-only"], "tokens": [%q]}`, ritaHash),
		fmt.Sprintf(`{"name": "uma", "roles": ["users-only"], "tokens": [%q]}`, umaHash),
	} {
		code, resp := c.call(http.MethodPost, "/api/v1/users", admin, body)
		require.Equal(t, http.StatusCreated, code, resp)
	}

	refused := func(method, path, token, body, missing string) {
		t.Helper()
		code, resp := c.call(method, path, token, body)
		require.Equal(t, http.StatusForbidden, code, resp)
		_, msg := errorOf(t, resp)
		require.Contains(t, msg, missing)
	}
	refused(http.MethodPut, "/api/v1/roles/roles-only", ritaToken, `{"permissions": ["manage_roles", "manage_users"]}`, "manage_users")
	refused(http.MethodPost, "/api/v1/roles", ritaToken, `{"name": "boss", "permissions": ["rollback"]}`, "rollback")
	refused(http.MethodDelete, "/api/v1/roles/users-only", ritaToken, "", "manage_users")
	refused(http.MethodPost, "/api/v1/users", umaToken, `{"name": "evil", "roles": ["admin"]}`, "deploy")
	refused(http.MethodPut, "/api/v1/users/uma", umaToken, fmt.Sprintf(`{"roles": ["admin"], "tokens": [%q]}`, umaHash), "manage_roles")
	refused(http.MethodDelete, "/api/v1/users/rita", umaToken, "", "manage_roles")

	// Nothing changed: rita still cannot list users, uma cannot reload.
	code, _ := c.call(http.MethodGet, "/api/v1/users", ritaToken, "")
	require.Equal(t, http.StatusForbidden, code)
	u, err := d.User("uma")
	require.NoError(t, err)
	require.Equal(t, []string{"users-only"}, u.Roles)
	_, err = d.User("evil")
	require.ErrorIs(t, err, auth.ErrNotFound)

	// Within what they hold they may act: rita makes a watch-only role, uma
	// a user with it.
	code, resp := c.call(http.MethodPost, "/api/v1/roles", ritaToken, `{"name": "watch", "permissions": ["monitor"]}`)
	require.Equal(t, http.StatusCreated, code, resp)
	_, wHash, err := auth.NewToken()
	require.NoError(t, err)
	code, resp = c.call(http.MethodPost, "/api/v1/users", umaToken, fmt.Sprintf(`{"name": "wes", "roles": ["watch"], "tokens": [%q]}`, wHash))
	require.Equal(t, http.StatusCreated, code, resp)
}
