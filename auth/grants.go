package auth

import (
	"fmt"
	"maps"
	"slices"

	"github.com/vigil-sh/vigil/config"
)

// This file holds the grant rules: what each user, configured or added at
// runtime, may do, and which runtime entries the configuration lets stand.
// directory.go keeps the entries; token.go reads the hashes.

// managed reports whether users can still be managed under cfg and res:
// there is no user at all, or one user has the permission manage_users and
// a token in force.
func managed(cfg *config.Config, res resolved) bool {
	if len(cfg.Users) == 0 && len(res.users) == 0 {
		return true
	}
	for _, uc := range cfg.Users {
		if len(uc.Tokens) == 0 {
			continue
		}
		if cfg.UserGrants(uc).Whole[config.PermManageUsers] {
			return true
		}
	}
	for _, ru := range res.users {
		if len(ru.tokens) > 0 && ru.grants.Whole[config.PermManageUsers] {
			return true
		}
	}
	return false
}

func configUserInfo(cfg *config.Config, uc config.UserConfig) UserInfo {
	g := cfg.UserGrants(uc)
	return UserInfo{
		Name:        uc.Name,
		Roles:       nonNil(uc.AllRoles()),
		Tokens:      len(uc.Tokens),
		Source:      SourceConfig,
		Permissions: nonNil(g.Names()),
		Resources:   resources(g),
	}
}

// resources is what UserInfo.Resources tells of g: nil when every
// permission reaches every app.
func resources(g config.Grants) map[string][]string {
	if len(g.Apps) == 0 {
		return nil
	}
	out := make(map[string][]string, len(g.Apps))
	for p, apps := range g.Apps {
		out[p] = slices.Clone(apps)
	}
	return out
}

// resolved is what of a runtime set is in force under a configuration.
type resolved struct {
	// roles maps each runtime role in force to its known permissions.
	roles map[string][]string
	// users are the runtime users in force, by name.
	users []resolvedUser
	// warnings say what was left out and why; they never hold a hash.
	warnings []string
}

// resolvedUser is a runtime user in force.
type resolvedUser struct {
	rec    runtimeUser
	grants config.Grants
	// tokens are the user's token hashes in force.
	tokens []tokenHash
}

func (u resolvedUser) info() UserInfo {
	return UserInfo{
		Name:        u.rec.Name,
		Roles:       nonNil(slices.Clone(u.rec.Roles)),
		Tokens:      len(u.tokens),
		Source:      SourceRuntime,
		Permissions: nonNil(u.grants.Names()),
		Resources:   resources(u.grants),
		Created:     u.rec.Created,
		CreatedBy:   u.rec.CreatedBy,
		Updated:     u.rec.Updated,
		UpdatedBy:   u.rec.UpdatedBy,
	}
}

// resolve works out which runtime entries are in force under cfg. The
// configuration wins: a runtime user or role named as a configured one is
// left out, as are a runtime token hash a configured user holds, a runtime
// role's permission cfg no longer knows, and a role a runtime user has that
// no longer exists.
func resolve(cfg *config.Config, set runtimeSet) resolved {
	res := resolved{roles: map[string][]string{}}
	cfgRoles := map[string]bool{}
	for _, name := range cfg.RoleNames() {
		cfgRoles[name] = true
	}
	known := knownPermissions(cfg)
	for _, name := range slices.Sorted(maps.Keys(set.roles)) {
		if cfgRoles[name] {
			res.warnings = append(res.warnings, fmt.Sprintf("runtime role %q is ignored: the config file defines a role of that name", name))
			continue
		}
		perms := []string{}
		for _, p := range set.roles[name].Permissions {
			if !known[p] {
				res.warnings = append(res.warnings, fmt.Sprintf("runtime role %q: permission %q is ignored: the config does not know it", name, p))
				continue
			}
			perms = append(perms, p)
		}
		res.roles[name] = perms
	}

	cfgUsers := map[string]bool{}
	held := map[tokenSum]bool{}
	for _, uc := range cfg.Users {
		cfgUsers[uc.Name] = true
		for _, h := range uc.Tokens {
			if sum, err := parseHash(h); err == nil {
				held[sum] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set.users)) {
		rec := set.users[name]
		if cfgUsers[name] {
			res.warnings = append(res.warnings, fmt.Sprintf("runtime user %q is ignored: the config file defines a user of that name", name))
			continue
		}
		ru := resolvedUser{rec: rec}
		var direct []string
		for _, role := range rec.Roles {
			runtimePerms, runtime := res.roles[role]
			switch {
			case cfgRoles[role]:
				direct = append(direct, cfg.PermissionsOf(role)...)
			case runtime:
				direct = append(direct, runtimePerms...)
			default:
				res.warnings = append(res.warnings, fmt.Sprintf("runtime user %q: role %q is ignored: it is no longer defined", name, role))
			}
		}
		ru.grants = cfg.GrantsOf(direct)
		for i, h := range rec.Tokens {
			th, err := parseTokenHash(h)
			sum := th.sum
			if err != nil {
				res.warnings = append(res.warnings, fmt.Sprintf("runtime user %q: tokens[%d] %s", name, i, err))
				continue
			}
			if held[sum] {
				res.warnings = append(res.warnings, fmt.Sprintf("runtime user %q: tokens[%d] is ignored: another user holds it", name, i))
				continue
			}
			held[sum] = true
			ru.tokens = append(ru.tokens, th)
		}
		res.users = append(res.users, ru)
	}
	return res
}

// build returns the authenticator of cfg (New's, with New's errors) with the
// runtime users of res added. Runtime users count as users: in development
// the first one turns authentication on.
func build(cfg *config.Config, res resolved) (*Authenticator, error) {
	a, err := New(cfg)
	if err != nil {
		return nil, err
	}
	for _, ru := range res.users {
		i := len(a.users)
		a.users = append(a.users, newUser(ru.rec.Name, slices.Clone(ru.rec.Roles), ru.grants))
		for _, th := range ru.tokens {
			a.creds = append(a.creds, credential{tokenHash: th, user: i})
		}
	}
	if len(res.users) > 0 {
		a.open = false
	}
	return a, nil
}

// knownPermissions is what a runtime role may grant: vigil's permissions
// and those the configuration's permissions block names.
func knownPermissions(cfg *config.Config) map[string]bool {
	known := map[string]bool{}
	for _, p := range config.BuiltinPermissions {
		known[p] = true
	}
	for _, p := range cfg.Permissions.Names() {
		known[p] = true
	}
	return known
}
