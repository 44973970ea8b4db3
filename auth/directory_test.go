package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// token is a token and its hash.
type token struct{ plain, hash string }

func newToken(t *testing.T) token {
	t.Helper()
	plain, hash, err := auth.NewToken()
	require.NoError(t, err)
	return token{plain, hash}
}

// cfgWith parses a configuration in env with users (YAML list entries) and
// extra top-level YAML.
func cfgWith(t *testing.T, env, users, extra string) *config.Config {
	t.Helper()
	y := fmt.Sprintf("service: checkout\nenvironment: %s\n", env)
	if users != "" {
		y += "users:\n" + users
	}
	y += extra
	cfg, err := config.Parse([]byte(y), "vigil.yml")
	require.NoError(t, err)
	return cfg
}

// logBuffer is a log the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// openStore opens a real bbolt store in dir and closes it with the test.
func openStore(t *testing.T, dir string) *notifier.BoltStore {
	t.Helper()
	s, err := notifier.OpenBoltStore(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openDirectory builds a Directory on the "auth" namespace of store and
// applies cfg.
func openDirectory(t *testing.T, store *notifier.BoltStore, cfg *config.Config, log *logBuffer) *auth.Directory {
	t.Helper()
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := auth.NewDirectory(store.KV("auth"), logger)
	require.NoError(t, err)
	require.Nil(t, d.Authenticator(), "no authenticator before the first config")
	require.NoError(t, d.ApplyConfig(cfg))
	require.NotNil(t, d.Authenticator())
	return d
}

// whoIs returns the name a token authenticates as, or "" when it does not.
func whoIs(d *auth.Directory, tok string) string {
	u, ok := d.Authenticator().Authenticate(tok)
	if !ok {
		return ""
	}
	return u.Name
}

func findUser(t *testing.T, users []auth.UserInfo, name string) auth.UserInfo {
	t.Helper()
	for _, u := range users {
		if u.Name == name {
			return u
		}
	}
	require.Failf(t, "no such user", "%q in %v", name, users)
	return auth.UserInfo{}
}

func TestDirectoryPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	admin, ci := newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")

	store, err := notifier.OpenBoltStore(dir)
	require.NoError(t, err)
	d, err := auth.NewDirectory(store.KV("auth"), nil)
	require.NoError(t, err)
	_, err = d.CreateRole("alice", auth.RoleSpec{Name: "early"})
	require.Error(t, err, "changes wait for the first config")
	require.NoError(t, d.ApplyConfig(cfg))

	role, err := d.CreateRole("alice", auth.RoleSpec{Name: "deployer", Description: "CI deploys",
		Permissions: []string{config.PermMonitor, config.PermDeploy, config.PermDeploy}})
	require.NoError(t, err)
	require.Equal(t, []string{config.PermDeploy, config.PermMonitor}, role.Permissions)
	require.Equal(t, auth.SourceRuntime, role.Source)
	created, err := d.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"deployer"}, Tokens: []string{ci.hash}})
	require.NoError(t, err)
	require.Equal(t, "ci", whoIs(d, ci.plain))
	require.NoError(t, store.Close())

	// A new process: the same file, a new Directory.
	d2 := openDirectory(t, openStore(t, dir), cfg, nil)
	got := findUser(t, d2.Users(), "ci")
	require.Equal(t, auth.SourceRuntime, got.Source)
	require.Equal(t, []string{"deployer"}, got.Roles)
	require.Equal(t, 1, got.Tokens)
	// deploy implies acknowledge, monitor the reading of logs and metrics.
	require.Equal(t, []string{config.PermAcknowledge, config.PermDeploy, config.PermMonitor, config.PermViewLogs, config.PermViewMetrics}, got.Permissions)
	require.Equal(t, "alice", got.CreatedBy)
	require.True(t, created.Created.Equal(got.Created))
	require.Equal(t, auth.SourceConfig, findUser(t, d2.Users(), "alice").Source)
	r, err := d2.Role("deployer")
	require.NoError(t, err)
	require.Equal(t, "CI deploys", r.Description)
	require.Equal(t, auth.SourceRuntime, r.Source)

	u, ok := d2.Authenticator().Authenticate(ci.plain)
	require.True(t, ok)
	require.Equal(t, "ci", u.Name)
	require.True(t, u.Can(config.PermDeploy))
	require.True(t, u.Can(config.PermMonitor))
	require.False(t, u.Can(config.PermManageUsers))
	require.False(t, u.Can(config.PermRollback))
	require.Equal(t, "alice", whoIs(d2, admin.plain))
}

func TestDirectoryTokensTakeEffectAtOnce(t *testing.T) {
	admin, first, second := newToken(t), newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	d := openDirectory(t, openStore(t, t.TempDir()), cfg, nil)

	require.Empty(t, whoIs(d, first.plain))
	_, err := d.CreateUser("alice", auth.UserSpec{Name: "bob", Roles: []string{"viewer"}, Tokens: []string{first.hash}})
	require.NoError(t, err)
	require.Equal(t, "bob", whoIs(d, first.plain))

	// PUT replaces the tokens: the old one stops, the new one works.
	updated, err := d.UpdateUser("carol", auth.UserSpec{Name: "bob", Roles: []string{"developer"}, Tokens: []string{second.hash}})
	require.NoError(t, err)
	require.Equal(t, "carol", updated.UpdatedBy)
	require.Equal(t, "alice", updated.CreatedBy)
	require.Empty(t, whoIs(d, first.plain))
	u, ok := d.Authenticator().Authenticate(second.plain)
	require.True(t, ok)
	require.True(t, u.Can(config.PermDeploy))

	// Basic auth works for runtime users, as for configured ones.
	_, ok = d.Authenticator().AuthenticateBasic("bob", second.plain)
	require.True(t, ok)

	was, err := d.DeleteUser("alice", "bob")
	require.NoError(t, err)
	require.Equal(t, "bob", was.Name)
	require.Empty(t, whoIs(d, second.plain))
	_, err = d.User("bob")
	require.ErrorIs(t, err, auth.ErrNotFound)
	require.Equal(t, "alice", whoIs(d, admin.plain))
}

func TestDirectoryRefusals(t *testing.T) {
	admin, viewer, runtimeTok := newToken(t), newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf(`  - {name: alice, role: admin, tokens: [%q]}
  - {name: vic, role: viewer, tokens: [%q]}
`, admin.hash, viewer.hash), "")
	d := openDirectory(t, openStore(t, t.TempDir()), cfg, nil)
	_, err := d.CreateRole("alice", auth.RoleSpec{Name: "ops", Permissions: []string{config.PermAcknowledge}})
	require.NoError(t, err)
	_, err = d.CreateUser("alice", auth.UserSpec{Name: "rita", Roles: []string{"ops"}, Tokens: []string{runtimeTok.hash}})
	require.NoError(t, err)
	_, err = d.CreateUser("alice", auth.UserSpec{Name: "sam", Roles: []string{"ops", "viewer"}})
	require.NoError(t, err)
	fresh := newToken(t)
	upperHex := auth.HashPrefix + strings.ToUpper(strings.TrimPrefix(viewer.hash, auth.HashPrefix))

	tests := []struct {
		name    string
		do      func() error
		want    error
		wantMsg string
	}{
		{"create a config user", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "vic", Roles: []string{"viewer"}})
			return err
		}, auth.ErrConflict, "edit the config file"},
		{"update a config user", func() error {
			_, err := d.UpdateUser("alice", auth.UserSpec{Name: "vic", Roles: []string{"admin"}})
			return err
		}, auth.ErrConflict, "edit the config file"},
		{"delete a config user", func() error { _, err := d.DeleteUser("alice", "alice"); return err }, auth.ErrConflict, "edit the config file"},
		{"create a runtime user twice", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "rita", Roles: []string{"viewer"}})
			return err
		}, auth.ErrConflict, "exists already"},
		{"update an unknown user", func() error {
			_, err := d.UpdateUser("alice", auth.UserSpec{Name: "nobody", Roles: []string{"viewer"}})
			return err
		}, auth.ErrNotFound, "nobody"},
		{"delete an unknown user", func() error { _, err := d.DeleteUser("alice", "nobody"); return err }, auth.ErrNotFound, "nobody"},
		{"unknown role", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "tom", Roles: []string{"root"}})
			return err
		}, auth.ErrInvalid, `"root" is not a role`},
		{"no role", func() error { _, err := d.CreateUser("alice", auth.UserSpec{Name: "tom"}); return err }, auth.ErrInvalid, "one role or more"},
		{"bad name", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "tom/../x", Roles: []string{"viewer"}})
			return err
		}, auth.ErrInvalid, "not a user name"},
		{"name too long", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: strings.Repeat("a", 65), Roles: []string{"viewer"}})
			return err
		}, auth.ErrInvalid, "not a user name"},
		{"a token instead of its hash", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "tom", Roles: []string{"viewer"}, Tokens: []string{fresh.plain}})
			return err
		}, auth.ErrInvalid, "tokens[0]"},
		{"the same hash twice", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "tom", Roles: []string{"viewer"}, Tokens: []string{fresh.hash, fresh.hash}})
			return err
		}, auth.ErrInvalid, "twice"},
		{"a config user's hash", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "tom", Roles: []string{"viewer"}, Tokens: []string{fresh.hash, viewer.hash}})
			return err
		}, auth.ErrConflict, "tokens[1] belongs to another user"},
		{"a config user's hash in upper case", func() error {
			_, err := d.CreateUser("alice", auth.UserSpec{Name: "tom", Roles: []string{"viewer"}, Tokens: []string{upperHex}})
			return err
		}, auth.ErrConflict, "another user"},
		{"a runtime user's hash", func() error {
			_, err := d.UpdateUser("alice", auth.UserSpec{Name: "sam", Roles: []string{"viewer"}, Tokens: []string{runtimeTok.hash}})
			return err
		}, auth.ErrConflict, "another user"},
		{"create a config role", func() error {
			_, err := d.CreateRole("alice", auth.RoleSpec{Name: "viewer"})
			return err
		}, auth.ErrConflict, "edit the config file"},
		{"update a config role", func() error {
			_, err := d.UpdateRole("alice", auth.RoleSpec{Name: "admin"})
			return err
		}, auth.ErrConflict, "edit the config file"},
		{"delete a config role", func() error { _, err := d.DeleteRole("alice", "developer"); return err }, auth.ErrConflict, "edit the config file"},
		{"create a runtime role twice", func() error {
			_, err := d.CreateRole("alice", auth.RoleSpec{Name: "ops"})
			return err
		}, auth.ErrConflict, "exists already"},
		{"unknown permission", func() error {
			_, err := d.CreateRole("alice", auth.RoleSpec{Name: "root", Permissions: []string{"monitor", "sudo"}})
			return err
		}, auth.ErrInvalid, `permissions[1]: "sudo" is not a permission`},
		{"delete a role users still have", func() error { _, err := d.DeleteRole("alice", "ops"); return err }, auth.ErrConflict, "rita, sam"},
		{"delete an unknown role", func() error { _, err := d.DeleteRole("alice", "nope"); return err }, auth.ErrNotFound, "nope"},
		{"get an unknown role", func() error { _, err := d.Role("nope"); return err }, auth.ErrNotFound, "nope"},
	}
	before := d.Authenticator()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			require.ErrorIs(t, err, tt.want)
			require.Contains(t, err.Error(), tt.wantMsg)
			for _, secret := range []string{fresh.plain, fresh.hash, viewer.hash, runtimeTok.hash, strings.TrimPrefix(viewer.hash, auth.HashPrefix)} {
				require.NotContains(t, err.Error(), secret)
			}
			require.Same(t, before, d.Authenticator(), "a refused change builds nothing")
		})
	}
	require.Len(t, d.Users(), 4)
	require.Equal(t, "rita", whoIs(d, runtimeTok.plain))

	// Once no user has it, the role goes.
	_, err = d.UpdateUser("alice", auth.UserSpec{Name: "rita", Roles: []string{"viewer"}, Tokens: []string{runtimeTok.hash}})
	require.NoError(t, err)
	_, err = d.DeleteUser("alice", "sam")
	require.NoError(t, err)
	_, err = d.DeleteRole("alice", "ops")
	require.NoError(t, err)
	_, err = d.Role("ops")
	require.ErrorIs(t, err, auth.ErrNotFound)
}

func TestDirectoryKnowsOnlyVigilsPermissions(t *testing.T) {
	admin := newToken(t)
	// The permissions block describes and scopes vigil's permissions; it
	// does not make new ones (config refuses names vigil does not know).
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash),
		"roles:\n  admin: [manage_users, manage_roles, deploy]\npermissions:\n  deploy: {description: Deploy, resources: [app, database]}\n")
	d := openDirectory(t, openStore(t, t.TempDir()), cfg, nil)
	_, err := d.CreateRole("alice", auth.RoleSpec{Name: "exporter", Permissions: []string{"export", config.PermDeploy}})
	require.ErrorIs(t, err, auth.ErrInvalid)
	r, err := d.CreateRole("alice", auth.RoleSpec{Name: "auditor", Permissions: []string{config.PermMonitor}})
	require.NoError(t, err, "a permission the block leaves out is still vigil's")
	require.Equal(t, []string{config.PermMonitor}, r.Permissions)
}

func TestDirectoryLockoutGuard(t *testing.T) {
	root, op := newToken(t), newToken(t)
	d := openDirectory(t, openStore(t, t.TempDir()), cfgWith(t, config.EnvDevelopment, "", ""), nil)
	require.True(t, d.Authenticator().Open(), "development without users is open")

	// The first user must be able to manage users, or no one could.
	_, err := d.CreateUser(auth.Anonymous, auth.UserSpec{Name: "first", Roles: []string{"viewer"}, Tokens: []string{root.hash}})
	require.ErrorIs(t, err, auth.ErrConflict)
	require.Contains(t, err.Error(), "manage_users")
	_, err = d.CreateUser(auth.Anonymous, auth.UserSpec{Name: "first", Roles: []string{"admin"}})
	require.ErrorIs(t, err, auth.ErrConflict, "a manager without a token manages nothing")
	require.True(t, d.Authenticator().Open())

	// The first runtime user turns authentication on.
	_, err = d.CreateUser(auth.Anonymous, auth.UserSpec{Name: "root", Roles: []string{"admin"}, Tokens: []string{root.hash}})
	require.NoError(t, err)
	require.False(t, d.Authenticator().Open())
	_, ok := d.Authenticator().Authenticate("")
	require.False(t, ok)
	require.Equal(t, "root", whoIs(d, root.plain))

	_, err = d.CreateRole("root", auth.RoleSpec{Name: "ops", Permissions: []string{config.PermManageUsers}})
	require.NoError(t, err)
	_, err = d.CreateUser("root", auth.UserSpec{Name: "op", Roles: []string{"ops"}, Tokens: []string{op.hash}})
	require.NoError(t, err)
	// Someone else can still manage users: root may go.
	_, err = d.DeleteUser("op", "root")
	require.NoError(t, err)

	for name, change := range map[string]func() error{
		"role loses manage_users": func() error {
			_, err := d.UpdateRole("op", auth.RoleSpec{Name: "ops", Permissions: []string{config.PermMonitor}})
			return err
		},
		"last manager loses its tokens": func() error {
			_, err := d.UpdateUser("op", auth.UserSpec{Name: "op", Roles: []string{"ops"}})
			return err
		},
		"last manager loses its role": func() error {
			_, err := d.UpdateUser("op", auth.UserSpec{Name: "op", Roles: []string{"viewer"}, Tokens: []string{op.hash}})
			return err
		},
		"last manager deleted while another user remains": func() error {
			if _, err := d.CreateUser("op", auth.UserSpec{Name: "v", Roles: []string{"viewer"}}); err != nil {
				return err
			}
			_, err := d.DeleteUser("op", "op")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := change()
			require.ErrorIs(t, err, auth.ErrConflict)
			require.Contains(t, err.Error(), "manage_users")
			require.Equal(t, "op", whoIs(d, op.plain))
		})
	}

	// Removing every user leaves no one locked out: development is open again.
	_, err = d.DeleteUser("op", "v")
	require.NoError(t, err)
	_, err = d.DeleteUser("op", "op")
	require.NoError(t, err)
	require.True(t, d.Authenticator().Open())
}

func TestDirectoryConfigWins(t *testing.T) {
	admin, bobRuntime, bobConfig, carl := newToken(t), newToken(t), newToken(t), newToken(t)
	var log logBuffer
	store := openStore(t, t.TempDir())
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	d := openDirectory(t, store, cfg, &log)
	_, err := d.CreateRole("alice", auth.RoleSpec{Name: "ops", Description: "runtime", Permissions: []string{config.PermManageUsers}})
	require.NoError(t, err)
	_, err = d.CreateUser("alice", auth.UserSpec{Name: "bob", Roles: []string{"ops"}, Tokens: []string{bobRuntime.hash}})
	require.NoError(t, err)
	_, err = d.CreateUser("alice", auth.UserSpec{Name: "carl", Roles: []string{"viewer"}, Tokens: []string{carl.hash}})
	require.NoError(t, err)
	require.Equal(t, "bob", whoIs(d, bobRuntime.plain))

	// A reload adds bob, a role ops, and gives carl's hash to dora.
	next := cfgWith(t, config.EnvProduction, fmt.Sprintf(`  - {name: alice, role: admin, tokens: [%q]}
  - {name: bob, role: viewer, tokens: [%q]}
  - {name: dora, role: viewer, tokens: [%q]}
`, admin.hash, bobConfig.hash, carl.hash), `roles:
  admin: [manage_users, manage_roles, monitor]
  viewer: [monitor]
  ops: [monitor]
`)
	before := strings.Count(log.String(), "left out")
	require.NoError(t, d.ApplyConfig(next))
	logged := log.String()
	for _, want := range []string{`runtime user \"bob\" is ignored`, `runtime role \"ops\" is ignored`, `runtime user \"carl\": tokens[0] is ignored`} {
		require.Equal(t, 1, strings.Count(logged, want), "%s in\n%s", want, logged)
	}
	require.Equal(t, before+3, strings.Count(logged, "left out"), logged)
	require.NotContains(t, logged, auth.HashPrefix)

	require.Empty(t, whoIs(d, bobRuntime.plain), "the runtime bob's token is ignored")
	u, ok := d.Authenticator().Authenticate(bobConfig.plain)
	require.True(t, ok)
	require.Equal(t, "bob", u.Name)
	require.False(t, u.Can(config.PermManageUsers))
	require.Equal(t, "dora", whoIs(d, carl.plain), "a hash in the config file is the config user's")
	bob := findUser(t, d.Users(), "bob")
	require.Equal(t, auth.SourceConfig, bob.Source)
	require.Len(t, d.Users(), 4) // alice, bob, carl, dora
	require.Equal(t, 0, findUser(t, d.Users(), "carl").Tokens)
	ops, err := d.Role("ops")
	require.NoError(t, err)
	require.Equal(t, auth.SourceConfig, ops.Source)
	require.Equal(t, []string{config.PermMonitor}, ops.Permissions)

	// The config's entries cannot be changed here, even those that shadow.
	_, err = d.DeleteUser("alice", "bob")
	require.ErrorIs(t, err, auth.ErrConflict)
	_, err = d.UpdateRole("alice", auth.RoleSpec{Name: "ops"})
	require.ErrorIs(t, err, auth.ErrConflict)

	// Back to the first config: the runtime entries are in force again.
	require.NoError(t, d.ApplyConfig(cfg))
	require.Equal(t, "bob", whoIs(d, bobRuntime.plain))
	require.Equal(t, "carl", whoIs(d, carl.plain))
	require.Empty(t, whoIs(d, bobConfig.plain))
}

func TestDirectoryApplyConfigKeepsStateOnError(t *testing.T) {
	admin, ci := newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	d := openDirectory(t, openStore(t, t.TempDir()), cfg, nil)
	_, err := d.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"viewer"}, Tokens: []string{ci.hash}})
	require.NoError(t, err)
	before := d.Authenticator()

	// A token pasted where its hash belongs: New's error, nothing changes.
	bad := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.plain), "")
	_, want := auth.New(bad)
	require.Error(t, want)
	err = d.ApplyConfig(bad)
	require.EqualError(t, err, want.Error())
	require.NotContains(t, err.Error(), admin.plain)
	require.Same(t, before, d.Authenticator())
	require.Equal(t, "alice", whoIs(d, admin.plain))
	require.Equal(t, "ci", whoIs(d, ci.plain))
	require.Error(t, d.ApplyConfig(nil))
}

// TestShadowedRuntimeUser: a runtime user the config hides keeps its tokens
// to itself (nobody else may take them while it is hidden) and does not pin
// its roles.
func TestShadowedRuntimeUser(t *testing.T) {
	admin, bob := newToken(t), newToken(t)
	users := fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash)
	cfg := cfgWith(t, "production", users, "")
	d := openDirectory(t, openStore(t, t.TempDir()), cfg, nil)
	_, err := d.CreateRole("alice", auth.RoleSpec{Name: "r", Permissions: []string{"monitor"}})
	require.NoError(t, err)
	_, err = d.CreateUser("alice", auth.UserSpec{Name: "bob", Roles: []string{"r"}, Tokens: []string{bob.hash}})
	require.NoError(t, err)

	// The config now defines bob: the runtime bob is hidden.
	require.NoError(t, d.ApplyConfig(cfgWith(t, "production", users+"  - {name: bob, role: viewer}\n", "")))
	require.Empty(t, whoIs(d, bob.plain))
	_, err = d.CreateUser("alice", auth.UserSpec{Name: "carol", Roles: []string{"viewer"}, Tokens: []string{bob.hash}})
	require.ErrorIs(t, err, auth.ErrConflict, "a hidden user's token was handed to someone else")
	_, err = d.DeleteRole("alice", "r")
	require.NoError(t, err, "a hidden user pinned its role")

	// When the config drops bob again, the runtime bob is back, without
	// the deleted role, and its token is still only its own.
	require.NoError(t, d.ApplyConfig(cfg))
	require.Equal(t, "bob", whoIs(d, bob.plain))
	u, err := d.User("bob")
	require.NoError(t, err)
	require.NotContains(t, u.Permissions, "monitor")
}

// fullKV is a store whose writes fail, as on a full disk.
type fullKV struct {
	*notifier.MemKV
	full bool
}

func (k *fullKV) Put(key string, value []byte) error {
	if k.full {
		return errors.New("no space left on device")
	}
	return k.MemKV.Put(key, value)
}

// TestDirectoryStoreFull: a change the store cannot write fails and changes
// nothing: no user appears, no token works, the old ones keep working; once
// the store writes again the same change goes through.
func TestDirectoryStoreFull(t *testing.T) {
	admin, bob := newToken(t), newToken(t)
	cfg := cfgWith(t, "production", fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	kv := &fullKV{MemKV: notifier.NewMemKV(), full: true}
	d, err := auth.NewDirectory(kv, nil)
	require.NoError(t, err)
	require.NoError(t, d.ApplyConfig(cfg))

	spec := auth.UserSpec{Name: "bob", Roles: []string{"viewer"}, Tokens: []string{bob.hash}}
	_, err = d.CreateUser("alice", spec)
	require.ErrorContains(t, err, "no space left on device")
	require.NotErrorIs(t, err, auth.ErrInvalid)
	_, err = d.User("bob")
	require.ErrorIs(t, err, auth.ErrNotFound)
	require.Empty(t, whoIs(d, bob.plain))
	require.Equal(t, "alice", whoIs(d, admin.plain))
	_, err = d.CreateRole("alice", auth.RoleSpec{Name: "r", Permissions: []string{"monitor"}})
	require.Error(t, err)
	_, err = d.Role("r")
	require.ErrorIs(t, err, auth.ErrNotFound)

	kv.full = false
	_, err = d.CreateUser("alice", spec)
	require.NoError(t, err)
	require.Equal(t, "bob", whoIs(d, bob.plain))
}
