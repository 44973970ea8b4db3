package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The permissions vigil's HTTP API checks (DESIGN.md, HTTP contract).
const (
	PermDeploy      = "deploy"
	PermRollback    = "rollback"
	PermMonitor     = "monitor"
	PermViewLogs    = "view_logs"
	PermViewMetrics = "view_metrics"
	PermManageUsers = "manage_users"
	PermManageRoles = "manage_roles"
	PermAcknowledge = "acknowledge"
	// PermBackup records backups (POST /api/v1/backups): the backup job's.
	PermBackup = "backup"
	// PermIngest lets a sender (Prometheus, vmalert, Grafana) post alerts
	// to the Alertmanager API v2.
	PermIngest = "ingest"
)

// RoleConfig is a named set of permissions. In YAML a role is either
// `{description: ..., permissions: [...]}` or just the list of permissions.
type RoleConfig struct {
	Description string   `yaml:"description"`
	Permissions []string `yaml:"permissions"`
}

func (r *RoleConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.SequenceNode {
		d.decodeSlice(n, reflect.ValueOf(&r.Permissions).Elem(), path)
		return
	}
	d.decodeStruct(n, reflect.ValueOf(r).Elem(), path)
}

// RolesConfig maps a role name to its permissions. In YAML it is a mapping
// from role name to role, or a list of roles that each have a `name`.
type RolesConfig map[string]RoleConfig

// Names returns the role names, sorted.
func (r RolesConfig) Names() []string {
	out := make([]string, 0, len(r))
	for name := range r {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// namedRole is one entry of the list form of roles.
// Role is not embedded: that would promote RoleConfig's decodeNode.
type namedRole struct {
	Name string     `yaml:"name"`
	Role RoleConfig `yaml:",inline"`
}

func (r *RolesConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.SequenceNode {
		d.decodeMap(n, reflect.ValueOf(r).Elem(), path)
		return
	}
	var list []namedRole
	d.decodeSlice(n, reflect.ValueOf(&list).Elem(), path)
	if *r == nil {
		*r = RolesConfig{}
	}
	for i, e := range list {
		ep := indexPath(path, i)
		if e.Name == "" {
			d.valueErr(0, ep, "name is required")
			continue
		}
		if _, dup := (*r)[e.Name]; dup {
			d.valueErr(0, joinPath(ep, "name"), "%q is used twice", e.Name)
			continue
		}
		d.positions[joinPath(path, e.Name)] = d.positions[ep]
		(*r)[e.Name] = e.Role
	}
}

// PermissionConfig describes one permission and, optionally, the roles that
// have it and the apps it is limited to.
type PermissionConfig struct {
	Description string   `yaml:"description"`
	Roles       []string `yaml:"roles"`
	// Resources limits the permission to the apps listed: values of the
	// app label (`app`, `infrastructure`, `database` or any other). Empty
	// means every app.
	Resources []string `yaml:"resources"`
}

// decodeNode accepts a description string, a list of roles, or the mapping.
func (p *PermissionConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.ScalarNode:
		d.decodeScalar(n, reflect.ValueOf(&p.Description).Elem(), path)
	case yaml.SequenceNode:
		d.decodeSlice(n, reflect.ValueOf(&p.Roles).Elem(), path)
	default:
		d.decodeStruct(n, reflect.ValueOf(p).Elem(), path)
	}
}

// PermissionsConfig maps a permission name to its description and the roles
// that have it. In YAML it is a mapping from name to a description, a list of
// roles or `{description, roles}`; or a plain list of names.
type PermissionsConfig map[string]PermissionConfig

// namedPermission is one entry of the list form of permissions.
type namedPermission struct {
	Name       string           `yaml:"name"`
	Permission PermissionConfig `yaml:",inline"`
}

func (p *PermissionsConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.SequenceNode {
		d.decodeMap(n, reflect.ValueOf(p).Elem(), path)
		return
	}
	if *p == nil {
		*p = PermissionsConfig{}
	}
	for i, e := range n.Content {
		ep := indexPath(path, i)
		d.positions[ep] = e.Line
		e = resolve(e)
		var np namedPermission
		if e.Kind == yaml.ScalarNode {
			d.decodeScalar(e, reflect.ValueOf(&np.Name).Elem(), ep)
		} else {
			d.decodeStruct(e, reflect.ValueOf(&np).Elem(), ep)
		}
		if np.Name == "" {
			d.valueErr(e.Line, ep, "a permission needs a name")
			continue
		}
		if _, dup := (*p)[np.Name]; dup {
			d.valueErr(e.Line, ep, "%q is used twice", np.Name)
			continue
		}
		d.positions[joinPath(path, np.Name)] = e.Line
		(*p)[np.Name] = np.Permission
	}
}

// Names returns the permission names, sorted.
func (p PermissionsConfig) Names() []string {
	out := make([]string, 0, len(p))
	for name := range p {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// RolePermissions returns, for each role named in the permissions block, the
// permissions it grants that role (sorted).
func (p PermissionsConfig) RolePermissions() map[string][]string {
	out := map[string][]string{}
	for perm, pc := range p {
		for _, role := range pc.Roles {
			out[role] = append(out[role], perm)
		}
	}
	for role := range out {
		sort.Strings(out[role])
		out[role] = slices.Compact(out[role])
	}
	return out
}

// PermissionsOf returns the permissions of a role, from the roles block and
// from the roles listed in the permissions block, sorted and without repeats.
func (c *Config) PermissionsOf(role string) []string {
	var out []string
	if r, ok := c.Roles[role]; ok {
		out = append(out, r.Permissions...)
	}
	out = append(out, c.Permissions.RolePermissions()[role]...)
	sort.Strings(out)
	return slices.Compact(out)
}

// RoleNames returns every role the configuration defines: the keys of roles
// and the roles named in permissions, sorted.
func (c *Config) RoleNames() []string {
	set := map[string]bool{}
	for name := range c.Roles {
		set[name] = true
	}
	for role := range c.Permissions.RolePermissions() {
		set[role] = true
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// defaultPermissions are used when the file has no permissions block.
func defaultPermissions() PermissionsConfig {
	return PermissionsConfig{
		PermDeploy:      {Description: "record deploys"},
		PermRollback:    {Description: "trigger a rollback of the last deploy"},
		PermMonitor:     {Description: "see alerts and incidents"},
		PermViewLogs:    {Description: "read collected log lines"},
		PermViewMetrics: {Description: "query metrics through the Prometheus API"},
		PermManageUsers: {Description: "add, change and remove users"},
		PermManageRoles: {Description: "change roles and reload the configuration"},
		PermAcknowledge: {Description: "acknowledge and resolve incidents"},
		PermBackup:      {Description: "record backups"},
		PermIngest:      {Description: "post alerts to the Alertmanager API v2"},
	}
}

// defaultRoles are used when the file has no roles block.
func defaultRoles() RolesConfig {
	return RolesConfig{
		"admin": {
			Description: "everything",
			Permissions: []string{PermDeploy, PermRollback, PermMonitor, PermViewLogs, PermViewMetrics,
				PermManageUsers, PermManageRoles, PermAcknowledge, PermBackup, PermIngest},
		},
		"developer": {
			Description: "deploy, roll back and watch",
			Permissions: []string{PermDeploy, PermRollback, PermMonitor, PermViewLogs, PermViewMetrics, PermAcknowledge},
		},
		"viewer": {
			Description: "read only",
			Permissions: []string{PermMonitor, PermViewLogs, PermViewMetrics},
		},
	}
}

// BuiltinPermissions are the permissions vigil checks. They are always
// known: the permissions block describes them and may limit them to apps,
// but never removes one.
var BuiltinPermissions = []string{
	PermAcknowledge, PermBackup, PermDeploy, PermIngest, PermManageRoles, PermManageUsers,
	PermMonitor, PermRollback, PermViewLogs, PermViewMetrics,
}

// Implied maps the seed's coarse permissions to the finer ones vigil also
// checks, so that the seed's roles do what their names promise: monitor
// reads everything (alerts and incidents, and also logs and metrics); deploy
// and rollback act on incidents (acknowledge, resolve, silence), since who
// ships or reverts a change answers for what it breaks. An implied
// permission reaches the same apps as the permission it comes from.
var Implied = map[string][]string{
	PermMonitor:  {PermViewLogs, PermViewMetrics},
	PermDeploy:   {PermAcknowledge},
	PermRollback: {PermAcknowledge},
	// Whoever manages roles may grant any permission: so the seed's admin
	// role records backups and posts alerts without a change to its block.
	PermManageRoles: {PermBackup, PermIngest},
}

// Grants is what a user may do: each permission it holds, and the apps it
// holds it for.
type Grants struct {
	// Whole holds the permissions the user has for every app, and for what
	// has no app (metric queries, logs, the reload).
	Whole map[string]bool
	// Apps holds, for a permission the user has only for some apps, those
	// apps, sorted.
	Apps map[string][]string
}

// Has reports whether the grants hold permission for at least one app.
func (g Grants) Has(permission string) bool {
	return g.Whole[permission] || len(g.Apps[permission]) > 0
}

// CanOn reports whether the grants hold permission for app.
func (g Grants) CanOn(permission, app string) bool {
	return g.Whole[permission] || slices.Contains(g.Apps[permission], app)
}

// Names returns every permission held, for some apps or all, sorted.
func (g Grants) Names() []string {
	out := make([]string, 0, len(g.Whole)+len(g.Apps))
	for p := range g.Whole {
		out = append(out, p)
	}
	for p := range g.Apps {
		out = append(out, p)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Describe lists the grants for people: `deploy, monitor (app, database)`.
func (g Grants) Describe() string {
	names := g.Names()
	if len(names) == 0 {
		return "nothing"
	}
	parts := make([]string, 0, len(names))
	for _, p := range names {
		if g.Whole[p] {
			parts = append(parts, p)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (only %s)", p, strings.Join(g.Apps[p], ", ")))
	}
	return strings.Join(parts, ", ")
}

// GrantsOf returns what holding the permissions direct gives: each one and
// those it implies, each limited to the apps of its permission's resources.
// A permission whose resources cover every app the configuration names (see
// Apps) is whole: it reaches every app, and what has no app.
func (c *Config) GrantsOf(direct []string) Grants {
	g := Grants{Whole: map[string]bool{}, Apps: map[string][]string{}}
	apps := c.Apps()
	add := func(p string, res []string) {
		if g.Whole[p] {
			return
		}
		if len(res) == 0 || coversAll(res, apps) {
			g.Whole[p] = true
			delete(g.Apps, p)
			return
		}
		g.Apps[p] = append(g.Apps[p], res...)
	}
	for _, p := range direct {
		res := c.Permissions[p].Resources
		add(p, res)
		for _, q := range Implied[p] {
			add(q, res)
		}
	}
	for p, list := range g.Apps {
		sort.Strings(list)
		list = slices.Compact(list)
		if coversAll(list, apps) {
			g.Whole[p] = true
			delete(g.Apps, p)
			continue
		}
		g.Apps[p] = list
	}
	return g
}

// UserGrants returns what user u may do: its roles' permissions and its
// own, as GrantsOf gives them.
func (c *Config) UserGrants(u UserConfig) Grants {
	var direct []string
	for _, role := range u.AllRoles() {
		direct = append(direct, c.PermissionsOf(role)...)
	}
	return c.GrantsOf(append(direct, u.Permissions...))
}

// Apps returns every app the configuration names, sorted: the apps the
// permissions block's resources list, and the app label of each collector
// and alert rule. A permission whose resources list all of them reaches
// every app, those the configuration does not name included (vigil's own,
// an alert of a rule file without an app label): the seed's blocks, which
// give every permission all three of its apps, limit nothing, while
// `resources: [app]` alone keeps the database's incidents out of reach.
func (c *Config) Apps() []string {
	set := map[string]bool{}
	for _, pc := range c.Permissions {
		for _, a := range pc.Resources {
			set[a] = true
		}
	}
	col := c.Collectors
	if col.App != nil {
		set[col.App.Labels["app"]] = true
	}
	if col.Infrastructure != nil {
		set[col.Infrastructure.Labels["app"]] = true
	}
	if col.Database != nil {
		set[col.Database.Labels["app"]] = true
	}
	for _, r := range c.Alerts.Rules {
		set[r.Labels["app"]] = true
	}
	delete(set, "")
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// coversAll reports whether have holds every one of want.
func coversAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// suggestPermission returns ` (did you mean "x"?)` for the built-in
// permission closest to name, or the list of them.
func suggestPermission(name string) string {
	best, bestDist := "", 3
	for _, p := range BuiltinPermissions {
		if d := editDistance(name, p); d < bestDist {
			best, bestDist = p, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (permissions: %s)", strings.Join(BuiltinPermissions, ", "))
}

// accessWarnings are the problems of users and roles that do not stop
// vigil but leave it unanswered: a user who may do nothing, and a production
// config in which no one with a token may acknowledge an incident.
func (c *Config) accessWarnings() []string {
	var out []string
	canAck := false
	for i, u := range c.Users {
		g := c.UserGrants(u)
		if len(g.Names()) == 0 {
			out = append(out, fmt.Sprintf("%s:%d: users[%d] %q can do nothing: its roles (%s) grant no permission",
				c.File, c.Line(indexPath("users", i)), i, u.Name, strings.Join(u.AllRoles(), ", ")))
		}
		if len(u.Tokens) > 0 && g.Has(PermAcknowledge) {
			canAck = true
		}
	}
	if c.Environment == EnvProduction && !canAck {
		out = append(out, fmt.Sprintf("%s:%d: environment %s: no user with a token may acknowledge incidents "+
			"(%s, or %s or %s, which imply it), so incidents escalate unanswered unless a user added at runtime may",
			c.File, c.Line("environment"), EnvProduction, PermAcknowledge, PermDeploy, PermRollback))
	}
	return out
}
