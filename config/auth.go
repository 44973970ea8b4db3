package config

import (
	"reflect"
	"slices"
	"sort"

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
// have it.
type PermissionConfig struct {
	Description string   `yaml:"description"`
	Roles       []string `yaml:"roles"`
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
	}
}

// defaultRoles are used when the file has no roles block.
func defaultRoles() RolesConfig {
	return RolesConfig{
		"admin": {
			Description: "everything",
			Permissions: []string{PermDeploy, PermRollback, PermMonitor, PermViewLogs, PermViewMetrics,
				PermManageUsers, PermManageRoles, PermAcknowledge},
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
