package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/vigil-sh/vigil/config"
)

// This file holds the Directory's changes: runtime users and roles created,
// changed and deleted through the API, each checked, written to the KV and
// swapped in whole.

// CreateUser adds a runtime user on behalf of by. In development with no
// users yet, the first one turns authentication on.
func (d *Directory) CreateUser(by string, spec UserSpec) (UserInfo, error) {
	return changeTo(d, func() (UserInfo, error) { return d.createUser(by, spec) })
}

func (d *Directory) createUser(by string, spec UserSpec) (UserInfo, error) {
	if !validName.MatchString(spec.Name) {
		return UserInfo{}, invalidf("name %q is not a user name: 1 to 64 of A-Z a-z 0-9 _ . @ -", spec.Name)
	}
	if d.configUser(spec.Name) {
		return UserInfo{}, configConflict("user", spec.Name)
	}
	if _, ok := d.set.users[spec.Name]; ok {
		return UserInfo{}, conflictf("user %q exists already", spec.Name)
	}
	roles, tokens, err := d.checkUser(spec)
	if err != nil {
		return UserInfo{}, err
	}
	now := d.now().UTC()
	u := runtimeUser{Name: spec.Name, Roles: roles, Tokens: tokens, Created: now, CreatedBy: by, Updated: now, UpdatedBy: by}
	next := d.set.clone()
	next.users[u.Name] = u
	if err := d.commit(next, userKeyPrefix+u.Name, u); err != nil {
		return UserInfo{}, err
	}
	d.logger.Info("Runtime user created", "user", u.Name, "roles", u.Roles, "tokens", len(u.Tokens), "by", by)
	return d.runtimeUserInfo(u.Name)
}

// UpdateUser replaces the roles and tokens of the runtime user spec.Name on
// behalf of by.
func (d *Directory) UpdateUser(by string, spec UserSpec) (UserInfo, error) {
	return changeTo(d, func() (UserInfo, error) { return d.updateUser(by, spec) })
}

func (d *Directory) updateUser(by string, spec UserSpec) (UserInfo, error) {
	if d.configUser(spec.Name) {
		return UserInfo{}, configConflict("user", spec.Name)
	}
	u, ok := d.set.users[spec.Name]
	if !ok {
		return UserInfo{}, fmt.Errorf("user %q: %w", spec.Name, ErrNotFound)
	}
	roles, tokens, err := d.checkUser(spec)
	if err != nil {
		return UserInfo{}, err
	}
	u.Roles, u.Tokens, u.Updated, u.UpdatedBy = roles, tokens, d.now().UTC(), by
	next := d.set.clone()
	next.users[u.Name] = u
	if err := d.commit(next, userKeyPrefix+u.Name, u); err != nil {
		return UserInfo{}, err
	}
	d.logger.Info("Runtime user changed", "user", u.Name, "roles", u.Roles, "tokens", len(u.Tokens), "by", by)
	return d.runtimeUserInfo(u.Name)
}

// DeleteUser removes the runtime user called name on behalf of by, and
// returns what it was. Its tokens stop working at once.
func (d *Directory) DeleteUser(by, name string) (UserInfo, error) {
	return changeTo(d, func() (UserInfo, error) { return d.deleteUser(by, name) })
}

func (d *Directory) deleteUser(by, name string) (UserInfo, error) {
	if d.configUser(name) {
		return UserInfo{}, configConflict("user", name)
	}
	if _, ok := d.set.users[name]; !ok {
		return UserInfo{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	was, err := d.runtimeUserInfo(name)
	if err != nil {
		return UserInfo{}, err
	}
	next := d.set.clone()
	delete(next.users, name)
	if err := d.commit(next, userKeyPrefix+name, nil); err != nil {
		return UserInfo{}, err
	}
	d.logger.Info("Runtime user deleted", "user", name, "by", by)
	return was, nil
}

// CreateRole adds a runtime role on behalf of by.
func (d *Directory) CreateRole(by string, spec RoleSpec) (RoleInfo, error) {
	return changeTo(d, func() (RoleInfo, error) { return d.createRole(by, spec) })
}

func (d *Directory) createRole(by string, spec RoleSpec) (RoleInfo, error) {
	if !validName.MatchString(spec.Name) {
		return RoleInfo{}, invalidf("name %q is not a role name: 1 to 64 of A-Z a-z 0-9 _ . @ -", spec.Name)
	}
	if d.configRole(spec.Name) {
		return RoleInfo{}, configConflict("role", spec.Name)
	}
	if _, ok := d.set.roles[spec.Name]; ok {
		return RoleInfo{}, conflictf("role %q exists already", spec.Name)
	}
	perms, err := d.checkRole(spec)
	if err != nil {
		return RoleInfo{}, err
	}
	now := d.now().UTC()
	r := runtimeRole{Name: spec.Name, Description: spec.Description, Permissions: perms,
		Created: now, CreatedBy: by, Updated: now, UpdatedBy: by}
	next := d.set.clone()
	next.roles[r.Name] = r
	if err := d.commit(next, roleKeyPrefix+r.Name, r); err != nil {
		return RoleInfo{}, err
	}
	d.logger.Info("Runtime role created", "role", r.Name, "permissions", r.Permissions, "by", by)
	return runtimeRoleInfo(r), nil
}

// UpdateRole replaces the description and permissions of the runtime role
// spec.Name on behalf of by. Its users get the new permissions at once.
func (d *Directory) UpdateRole(by string, spec RoleSpec) (RoleInfo, error) {
	return changeTo(d, func() (RoleInfo, error) { return d.updateRole(by, spec) })
}

func (d *Directory) updateRole(by string, spec RoleSpec) (RoleInfo, error) {
	if d.configRole(spec.Name) {
		return RoleInfo{}, configConflict("role", spec.Name)
	}
	r, ok := d.set.roles[spec.Name]
	if !ok {
		return RoleInfo{}, fmt.Errorf("role %q: %w", spec.Name, ErrNotFound)
	}
	perms, err := d.checkRole(spec)
	if err != nil {
		return RoleInfo{}, err
	}
	r.Description, r.Permissions, r.Updated, r.UpdatedBy = spec.Description, perms, d.now().UTC(), by
	next := d.set.clone()
	next.roles[r.Name] = r
	if err := d.commit(next, roleKeyPrefix+r.Name, r); err != nil {
		return RoleInfo{}, err
	}
	d.logger.Info("Runtime role changed", "role", r.Name, "permissions", r.Permissions, "by", by)
	return runtimeRoleInfo(r), nil
}

// DeleteRole removes the runtime role called name on behalf of by, and
// returns what it was. A role that runtime users still have stays.
func (d *Directory) DeleteRole(by, name string) (RoleInfo, error) {
	return changeTo(d, func() (RoleInfo, error) { return d.deleteRole(by, name) })
}

func (d *Directory) deleteRole(by, name string) (RoleInfo, error) {
	if d.configRole(name) {
		return RoleInfo{}, configConflict("role", name)
	}
	r, ok := d.set.roles[name]
	if !ok {
		return RoleInfo{}, fmt.Errorf("role %q: %w", name, ErrNotFound)
	}
	// Only users in force count: a runtime user the config hides cannot be
	// changed, and must not pin the role (it loses the role if it comes
	// back, with a warning).
	var holders []string
	for _, ru := range d.res.users {
		if slices.Contains(ru.rec.Roles, name) {
			holders = append(holders, ru.rec.Name)
		}
	}
	if len(holders) > 0 {
		sort.Strings(holders)
		return RoleInfo{}, conflictf("role %q is still given to the users %s: change them first", name, strings.Join(holders, ", "))
	}
	next := d.set.clone()
	delete(next.roles, name)
	if err := d.commit(next, roleKeyPrefix+name, nil); err != nil {
		return RoleInfo{}, err
	}
	d.logger.Info("Runtime role deleted", "role", name, "by", by)
	return runtimeRoleInfo(r), nil
}

// changeTo runs fn, one change, under d.mu on freshly loaded entries, as
// often as change needs.
func changeTo[T any](d *Directory, fn func() (T, error)) (T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var zero, out T
	if err := d.ready(); err != nil {
		return zero, err
	}
	err := d.change(func() error {
		var err error
		out, err = fn()
		return err
	})
	if err != nil {
		return zero, err
	}
	return out, nil
}

// ready refuses changes before the first configuration: without it the
// Directory cannot tell configured names from runtime ones.
func (d *Directory) ready() error {
	if !d.applied {
		return errors.New("auth: users and roles cannot change before the configuration is applied")
	}
	return nil
}

func (d *Directory) configUser(name string) bool {
	return slices.ContainsFunc(d.cfg.Users, func(uc config.UserConfig) bool { return uc.Name == name })
}

func (d *Directory) configRole(name string) bool {
	return slices.Contains(d.cfg.RoleNames(), name)
}

// checkUser checks a user's roles and token hashes and returns them as the
// KV keeps them: roles without repeats, hashes in lower-case hex.
func (d *Directory) checkUser(spec UserSpec) (roles, tokens []string, err error) {
	if len(spec.Roles) == 0 {
		return nil, nil, invalidf("user %q needs one role or more", spec.Name)
	}
	for i, role := range spec.Roles {
		if _, runtime := d.res.roles[role]; !runtime && !d.configRole(role) {
			return nil, nil, invalidf("roles[%d]: %q is not a role (roles: %s)", i, role, strings.Join(d.roleNames(), ", "))
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	held := d.heldSums(spec.Name)
	seen := map[tokenSum]bool{}
	tokens = []string{}
	for i, h := range spec.Tokens {
		th, err := parseTokenHash(h)
		sum := th.sum
		if err != nil {
			// Not parseHash's message: it spells out the prefix, and an
			// answer of the API should never look as if it held a hash.
			return nil, nil, invalidf("tokens[%d] is not a token hash (is it the token itself?): "+
				"give the hash `vigil token new` prints, sha256 and %d hex digits", i, 2*sha256.Size)
		}
		if seen[sum] {
			return nil, nil, invalidf("tokens[%d] is listed twice", i)
		}
		seen[sum] = true
		if held[sum] {
			return nil, nil, conflictf("tokens[%d] belongs to another user already: make a new token with `vigil token new`", i)
		}
		tokens = append(tokens, th.String())
	}
	return roles, tokens, nil
}

// heldSums returns the token sums of every configured user and every
// stored runtime user but the one called except, in force or not: a runtime
// user the config hides now comes back when the config drops its name, and
// its tokens must still be only its own then.
func (d *Directory) heldSums(except string) map[tokenSum]bool {
	held := map[tokenSum]bool{}
	for _, uc := range d.cfg.Users {
		for _, h := range uc.Tokens {
			if sum, err := parseHash(h); err == nil {
				held[sum] = true
			}
		}
	}
	for name, ru := range d.set.users {
		if name == except {
			continue
		}
		for _, h := range ru.Tokens {
			if sum, err := parseHash(h); err == nil {
				held[sum] = true
			}
		}
	}
	return held
}

// roleNames is every role in force, for error messages.
func (d *Directory) roleNames() []string {
	names := d.cfg.RoleNames()
	for name := range d.res.roles {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// checkRole checks a role's description and permissions and returns the
// permissions sorted and without repeats.
func (d *Directory) checkRole(spec RoleSpec) ([]string, error) {
	if len(spec.Description) > maxDescription {
		return nil, invalidf("description is longer than %d bytes", maxDescription)
	}
	known := knownPermissions(d.cfg)
	perms := []string{}
	for i, p := range spec.Permissions {
		if !known[p] {
			return nil, invalidf("permissions[%d]: %q is not a permission (permissions: %s)", i, p,
				strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
		perms = append(perms, p)
	}
	sort.Strings(perms)
	return slices.Compact(perms), nil
}

// commit makes next the runtime set in force: it refuses a change that
// locks every user out of managing users, writes the changed entry (value
// nil deletes it) under a claim of the generation (errStale when another
// gateway moved it), then swaps in next and its authenticator. Nothing changes
// when any step fails.
func (d *Directory) commit(next runtimeSet, key string, value any) error {
	res := resolve(d.cfg, next)
	if managed(d.cfg, d.res) && !managed(d.cfg, res) {
		return conflictf("refused: no user with the permission %q and a token would be left, "+
			"and no one could manage users any more; give %q to another user first", config.PermManageUsers, config.PermManageUsers)
	}
	a, err := build(d.cfg, res)
	if err != nil {
		return fmt.Errorf("auth: building the authenticator: %w", err)
	}
	if err := d.writeEntry(key, value); err != nil {
		return err
	}
	wasOpen := false
	if old := d.auth.Load(); old != nil {
		wasOpen = old.Open()
	}
	d.set, d.res = next, res
	d.auth.Store(a)
	switch {
	case wasOpen && !a.Open():
		d.logger.Warn("Authentication is now on: a user was added at runtime, so every guarded route needs a token")
	case !wasOpen && a.Open():
		d.logger.Warn(Warning(d.cfg))
	}
	return nil
}
