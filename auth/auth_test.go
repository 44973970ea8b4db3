package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// parse parses a configuration with users, as main loads it.
func parse(t *testing.T, env string, users string) *config.Config {
	t.Helper()
	y := fmt.Sprintf("service: checkout\nenvironment: %s\n", env)
	if users != "" {
		y += "users:\n" + users
	}
	cfg, err := config.Parse([]byte(y), "vigil.yml")
	require.NoError(t, err)
	return cfg
}

func TestNewTokenVerify(t *testing.T) {
	token, hash, err := NewToken()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(token, TokenPrefix))
	require.Len(t, token, len(TokenPrefix)+43) // 32 bytes in unpadded base64
	require.True(t, strings.HasPrefix(hash, HashPrefix))
	require.Len(t, hash, len(HashPrefix)+64)
	require.NotContains(t, hash, strings.TrimPrefix(token, TokenPrefix))
	require.Equal(t, hash, Hash(token))

	other, otherHash, err := NewToken()
	require.NoError(t, err)
	require.NotEqual(t, token, other)

	tests := []struct {
		name  string
		token string
		hash  string
		want  bool
	}{
		{"round trip", token, hash, true},
		{"upper-case hex", token, HashPrefix + strings.ToUpper(strings.TrimPrefix(hash, HashPrefix)), true},
		{"other token", other, hash, false},
		{"other hash", token, otherHash, false},
		{"empty token", "", hash, false},
		{"token one byte short", token[:len(token)-1], hash, false},
		{"token as its own hash", token, token, false},
		{"hash without prefix", token, strings.TrimPrefix(hash, HashPrefix), false},
		{"short hash", token, hash[:len(hash)-2], false},
		{"empty hash", token, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Verify(tt.token, tt.hash))
		})
	}
}

func TestAuthenticate(t *testing.T) {
	aliceTok, aliceHash, err := NewToken()
	require.NoError(t, err)
	alice2Tok, alice2Hash, err := NewToken()
	require.NoError(t, err)
	bobTok, bobHash, err := NewToken()
	require.NoError(t, err)
	carolTok, carolHash, err := NewToken()
	require.NoError(t, err)
	cfg := parse(t, config.EnvProduction, fmt.Sprintf(`  - {name: alice, role: admin, tokens: [%q, %q]}
  - {name: bob, role: viewer, roles: [developer], tokens: [%q]}
  - {name: carol, tokens: [%q]}
`, aliceHash, alice2Hash, bobHash, carolHash))
	require.NoError(t, Check(cfg))
	a, err := New(cfg)
	require.NoError(t, err)
	require.False(t, a.Open())

	tests := []struct {
		name      string
		token     string
		wantOK    bool
		wantUser  string
		wantRoles []string
		can       []string
		cannot    []string
	}{
		{"admin", aliceTok, true, "alice", []string{"admin"}, []string{"manage_users", "manage_roles", "deploy"}, nil},
		{"admin's second token", alice2Tok, true, "alice", []string{"admin"}, []string{"manage_users"}, nil},
		{"viewer and developer", bobTok, true, "bob", []string{"viewer", "developer"},
			[]string{"monitor", "deploy", "acknowledge"}, []string{"manage_users", "manage_roles"}},
		{"no role", carolTok, true, "carol", nil, nil, []string{"monitor", "view_metrics"}},
		{"empty token", "", false, "", nil, nil, nil},
		{"unknown token", "vgl_nope", false, "", nil, nil, nil},
		{"hash as token", aliceHash, false, "", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := a.Authenticate(tt.token)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.wantUser, u.Name)
			require.Equal(t, tt.wantRoles, u.Roles)
			for _, p := range tt.can {
				require.True(t, u.Can(p), p)
			}
			for _, p := range tt.cannot {
				require.False(t, u.Can(p), p)
			}
		})
	}

	// A caller changing its copy changes nothing for the next.
	u, _ := a.Authenticate(bobTok)
	u.Permissions["manage_users"] = true
	u, _ = a.Authenticate(bobTok)
	require.False(t, u.Can("manage_users"))

	basic := []struct {
		name, user, password string
		want                 bool
	}{
		{"name and token", "alice", aliceTok, true},
		{"other user's token", "bob", aliceTok, false},
		{"wrong token", "alice", bobTok + "x", false},
		{"no name", "", aliceTok, false},
	}
	for _, tt := range basic {
		t.Run("basic "+tt.name, func(t *testing.T) {
			u, ok := a.AuthenticateBasic(tt.user, tt.password)
			require.Equal(t, tt.want, ok)
			if ok {
				require.Equal(t, tt.user, u.Name)
			}
		})
	}
}

func TestOpenAndCheck(t *testing.T) {
	_, hash, err := NewToken()
	require.NoError(t, err)
	user := fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", hash)
	tests := []struct {
		name     string
		env      string
		users    string
		wantOpen bool
		wantErr  error
	}{
		{"development without users", config.EnvDevelopment, "", true, nil},
		{"staging without users", config.EnvStaging, "", false, ErrNoUsers},
		{"production without users", config.EnvProduction, "", false, ErrNoUsers},
		{"development with users", config.EnvDevelopment, user, false, nil},
		{"production with users", config.EnvProduction, user, false, nil},
		// The seed's users have no tokens: no one could sign in, so
		// development runs open and says so; production stays shut.
		{"development with users without tokens", config.EnvDevelopment, "  - {name: admin, role: admin}\n", true, nil},
		{"production with users without tokens", config.EnvProduction, "  - {name: admin, role: admin}\n", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.env, tt.users)
			require.Equal(t, tt.wantOpen, Open(cfg))
			err := Check(cfg)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Contains(t, err.Error(), tt.env)
			} else {
				require.NoError(t, err)
			}
			a, err := New(cfg)
			require.NoError(t, err)
			require.Equal(t, tt.wantOpen, a.Open())
			if tt.wantOpen {
				require.Contains(t, Warning(cfg), "AUTHENTICATION IS OFF")
				for _, tok := range []string{"", "anything"} {
					u, ok := a.Authenticate(tok)
					require.True(t, ok)
					require.Equal(t, Anonymous, u.Name)
					for _, p := range []string{"manage_users", "manage_roles", "deploy", "rollback", "acknowledge", "view_metrics"} {
						require.True(t, u.Can(p), p)
					}
				}
				return
			}
			require.Empty(t, Warning(cfg))
			_, ok := a.Authenticate("")
			require.False(t, ok)
			_, ok = a.Authenticate("anything")
			require.False(t, ok)
		})
	}
}

func TestBadHashNeverQuoted(t *testing.T) {
	token, _, err := NewToken()
	require.NoError(t, err)
	// Someone pasted the token where its hash belongs.
	cfg := parse(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", token))
	for _, check := range []func() error{
		func() error { return Check(cfg) },
		func() error { _, err := New(cfg); return err },
	} {
		err := check()
		require.Error(t, err)
		require.False(t, errors.Is(err, ErrNoUsers))
		require.Contains(t, err.Error(), `vigil.yml:4: users[0] "alice": tokens[0] is not`)
		require.NotContains(t, err.Error(), token)
		require.NotContains(t, err.Error(), strings.TrimPrefix(token, TokenPrefix))
	}
}

// TestTokenExpiry: a hash with "@<time>" stops working at that time, for
// bearer and basic auth and for sessions (Check); a bad expiry is a config
// error that does not quote the entry.
func TestTokenExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	soon, _, err := NewToken()
	require.NoError(t, err)
	forever, _, err := NewToken()
	require.NoError(t, err)
	cfg := parse(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q, %q]}\n",
		HashUntil(soon, now.Add(time.Hour)), HashUntil(forever, time.Time{})))
	require.NoError(t, Check(cfg))
	a, err := New(cfg)
	require.NoError(t, err)
	a.now = func() time.Time { return now }

	u, ok := a.Authenticate(soon)
	require.True(t, ok)
	require.Equal(t, "alice", u.Name)
	_, ok = a.AuthenticateBasic("alice", soon)
	require.True(t, ok)

	now = now.Add(time.Hour)
	_, ok = a.Authenticate(soon)
	require.False(t, ok, "a token stops working at its expiry")
	_, ok = a.AuthenticateBasic("alice", soon)
	require.False(t, ok)
	_, err = a.Check(SumOf(soon))
	require.ErrorIs(t, err, ErrExpired)
	require.Contains(t, err.Error(), "2026-11-26T13:00:00Z")
	_, err = a.Check(SumOf("vgl_unknown"))
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrExpired, "an unknown token is invalid, not expired")
	_, ok = a.Authenticate(forever)
	require.True(t, ok, "a hash without expiry works for ever")

	require.True(t, Verify(soon, HashUntil(soon, now)), "Verify checks the token, not the time")
	require.Equal(t, Hash(soon)+"@2026-11-26T13:00:00Z", HashUntil(soon, time.Date(2026, 11, 26, 14, 0, 0, 0, time.FixedZone("CET", 3600))))

	bad := parse(t, config.EnvProduction, fmt.Sprintf("  - {name: bob, role: admin, tokens: [%q]}\n", Hash(soon)+"@next-tuesday"))
	_, err = New(bad)
	require.Error(t, err)
	require.Contains(t, err.Error(), `vigil.yml:4: users[0] "bob": tokens[0] has an expiry`)
	require.Contains(t, err.Error(), "RFC 3339")
	require.NotContains(t, err.Error(), "next-tuesday")
}

// TestDuplicateHashRefused: one token hash in two users' lists is a config
// error, not a coin toss over who the token is.
func TestDuplicateHashRefused(t *testing.T) {
	token, hash, err := NewToken()
	require.NoError(t, err)
	cfg := parse(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n  - {name: vic, role: viewer, tokens: [%q]}\n",
		hash, HashUntil(token, time.Now().Add(time.Hour))))
	err = Check(cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), `vigil.yml:5: users[1] "vic": tokens[0] is the same token as users[0] "alice"`)
	var errs config.Errors
	require.ErrorAs(t, err, &errs, "vigil check config prints them like every config error")
	require.Len(t, errs, 1)
	require.NotContains(t, err.Error(), hash)
}

func TestScopedUser(t *testing.T) {
	_, hash, err := NewToken()
	require.NoError(t, err)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`environment: production
users:
  - {name: appdev, role: viewer, permissions: [rollback], tokens: [%q]}
permissions:
  rollback: {resources: [app]}
  monitor: {resources: [app, database]}
`, hash)), "vigil.yml")
	require.NoError(t, err)
	a, err := New(cfg)
	require.NoError(t, err)
	u := a.user(0)
	require.True(t, u.Can(config.PermMonitor))
	require.False(t, u.Can(config.PermRollback), "rollback reaches app only")
	require.True(t, u.CanSome(config.PermRollback))
	require.True(t, u.CanOn(config.PermAcknowledge, "app"), "acknowledge comes with rollback, for its apps")
	require.False(t, u.CanOn(config.PermAcknowledge, "database"))
	require.False(t, u.CanOn(config.PermDeploy, "app"))
}
