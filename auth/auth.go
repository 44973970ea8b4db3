package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// Anonymous is the user every request runs as when vigil is open (see Open).
const Anonymous = "anonymous"

// ErrNoUsers is returned by Check when vigil must not start without users.
var ErrNoUsers = errors.New("no users are configured")

// User is an authenticated caller.
type User struct {
	Name  string
	Roles []string
	// Permissions holds every permission the user has for every app (and
	// for what has no app): its roles', its own, and those they imply.
	Permissions map[string]bool
	// Apps holds, for a permission the user has only for some apps (the
	// permission's resources), those apps.
	Apps map[string][]string
}

// newUser is the user called name with roles and grants.
func newUser(name string, roles []string, g config.Grants) User {
	return User{Name: name, Roles: roles, Permissions: maps.Clone(g.Whole), Apps: maps.Clone(g.Apps)}
}

// Can reports whether the user has permission for every app, as the routes
// whose answers have no app (metric queries, logs, the reload) need.
func (u User) Can(permission string) bool { return u.Permissions[permission] }

// CanSome reports whether the user has permission for at least one app: a
// route whose handler checks each item's app lets such a user in.
func (u User) CanSome(permission string) bool {
	return u.Permissions[permission] || len(u.Apps[permission]) > 0
}

// CanOn reports whether the user has permission for app (an incident's or
// alert's app label).
func (u User) CanOn(permission, app string) bool {
	return u.Permissions[permission] || slices.Contains(u.Apps[permission], app)
}

// credential is one token hash and the index of its user.
type credential struct {
	tokenHash
	user int
}

// Authenticator resolves tokens to users. It is built from one configuration
// and never changes: a reload builds a new one.
type Authenticator struct {
	open  bool
	users []User
	creds []credential
	all   map[string]bool
	// now is the clock tokens expire by.
	now func() time.Time
}

// New builds the authenticator of cfg. It fails when a token hash is not in
// the format NewToken writes, so that a typo does not lock a user out
// silently. Without users, the authenticator lets everyone in as Anonymous
// when Open(cfg) is true and lets no one in otherwise.
func New(cfg *config.Config) (*Authenticator, error) {
	if cfg == nil {
		return nil, errors.New("auth: nil config")
	}
	a := &Authenticator{open: Open(cfg), all: allPermissions(cfg), now: time.Now}
	var errs config.Errors
	// problem records an error of users[i].tokens[j] at its line, in the
	// config package's format, so `vigil check config` points at it.
	problem := func(i, j int, msg string) {
		errs = append(errs, &config.Error{
			File: cfg.File,
			Line: cfg.Line(fmt.Sprintf("users[%d].tokens[%d]", i, j)),
			Path: fmt.Sprintf("users[%d] %q", i, cfg.Users[i].Name),
			Msg:  fmt.Sprintf("tokens[%d] %s", j, msg),
		})
	}
	seen := map[[sha256.Size]byte]string{}
	for i, uc := range cfg.Users {
		a.users = append(a.users, newUser(uc.Name, uc.AllRoles(), cfg.UserGrants(uc)))
		for j, h := range uc.Tokens {
			th, err := parseTokenHash(h)
			if err != nil {
				problem(i, j, err.Error())
				continue
			}
			if prev, dup := seen[th.sum]; dup {
				problem(i, j, fmt.Sprintf("is the same token as %s: one token must belong to one user "+
					"(make another with `vigil token new`)", prev))
				continue
			}
			seen[th.sum] = fmt.Sprintf("users[%d] %q", i, uc.Name)
			a.creds = append(a.creds, credential{tokenHash: th, user: i})
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("auth: %w", errs)
	}
	return a, nil
}

// Open reports whether vigil runs without authentication under cfg: only in
// development, when no configured user has a token (no users, or the seed's
// users as it writes them, without tokens). No one could sign in otherwise.
func Open(cfg *config.Config) bool {
	return cfg != nil && cfg.Environment == config.EnvDevelopment &&
		!slices.ContainsFunc(cfg.Users, func(u config.UserConfig) bool { return len(u.Tokens) > 0 })
}

// Warning returns what main must log loudly at start and on reload when cfg
// leaves vigil open, and "" otherwise.
func Warning(cfg *config.Config) string {
	if !Open(cfg) {
		return ""
	}
	why := "no users are configured"
	if len(cfg.Users) > 0 {
		why = fmt.Sprintf("none of the %d configured users has a token", len(cfg.Users))
	}
	return fmt.Sprintf("AUTHENTICATION IS OFF: %s and the environment is %s, "+
		"so every request is allowed as %q with every permission; give users tokens (`vigil token new`) before vigil is reachable by anyone else",
		why, config.EnvDevelopment, Anonymous)
}

// Check returns an error when vigil must refuse cfg: no users outside
// development (staging and production refuse to start or reload without
// users), or a token hash that is not one.
func Check(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("auth: nil config")
	}
	if len(cfg.Users) == 0 && cfg.Environment != config.EnvDevelopment {
		return fmt.Errorf("auth: environment %q: %w; vigil refuses to run without users outside development "+
			"(add users with token hashes from `vigil token new`)", cfg.Environment, ErrNoUsers)
	}
	_, err := New(cfg)
	return err
}

// Open reports whether the authenticator lets every request in as Anonymous.
func (a *Authenticator) Open() bool { return a.open }

// ErrExpired is why a token that matched is refused once its hash's expiry
// has passed.
var ErrExpired = errors.New("token expired")

// Authenticate returns the user a bearer token belongs to. When the
// authenticator is open every token, even none, is Anonymous with every
// permission. The token is compared with every configured hash, in constant
// time and without stopping at a match, so timing tells nothing of which
// hash matched or how close a guess came. A token whose hash has expired is
// refused.
func (a *Authenticator) Authenticate(token string) (User, bool) {
	if !a.open && token == "" {
		return User{}, false
	}
	u, err := a.Check(SumOf(token))
	return u, err == nil
}

// AuthenticateBasic checks HTTP basic credentials, for clients such as
// Grafana's data source that only speak basic auth: the user name is the
// user's name and the password is one of the user's tokens.
func (a *Authenticator) AuthenticateBasic(name, password string) (User, bool) {
	u, err := a.CheckBasic(name, password)
	return u, err == nil
}

// CheckBasic is AuthenticateBasic that says why it fails, as Check does: an
// error wrapping ErrExpired for an expired token.
func (a *Authenticator) CheckBasic(name, password string) (User, error) {
	if !a.open && password == "" {
		return User{}, errors.New("invalid token")
	}
	u, err := a.Check(SumOf(password))
	if err != nil || a.open {
		return u, err
	}
	if subtle.ConstantTimeCompare([]byte(name), []byte(u.Name)) != 1 {
		return User{}, errors.New("invalid token")
	}
	return u, nil
}

// user returns a copy of user i that callers may change.
func (a *Authenticator) user(i int) User {
	u := a.users[i]
	apps := make(map[string][]string, len(u.Apps))
	for p, list := range u.Apps {
		apps[p] = slices.Clone(list)
	}
	return User{Name: u.Name, Roles: slices.Clone(u.Roles), Permissions: maps.Clone(u.Permissions), Apps: apps}
}

func (a *Authenticator) anonymous() User {
	return User{Name: Anonymous, Permissions: maps.Clone(a.all)}
}

// allPermissions is every permission vigil knows.
func allPermissions(cfg *config.Config) map[string]bool {
	return knownPermissions(cfg)
}
