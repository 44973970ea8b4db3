package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/auth"
)

// Directory manages users and roles at runtime; auth.Directory satisfies it.
// Its errors wrap auth.ErrNotFound, auth.ErrConflict or auth.ErrInvalid, and
// their messages are for the caller.
type Directory interface {
	Users() []auth.UserInfo
	User(name string) (auth.UserInfo, error)
	CreateUser(by string, spec auth.UserSpec) (auth.UserInfo, error)
	UpdateUser(by string, spec auth.UserSpec) (auth.UserInfo, error)
	DeleteUser(by, name string) (auth.UserInfo, error)
	Roles() []auth.RoleInfo
	Role(name string) (auth.RoleInfo, error)
	CreateRole(by string, spec auth.RoleSpec) (auth.RoleInfo, error)
	UpdateRole(by string, spec auth.RoleSpec) (auth.RoleInfo, error)
	DeleteRole(by, name string) (auth.RoleInfo, error)
}

// newUserRequest is the body of POST /api/v1/users. Tokens are hashes, as in
// the config file's users[].tokens.
type newUserRequest struct {
	Name   string   `json:"name"`
	Roles  []string `json:"roles"`
	Tokens []string `json:"tokens"`
}

// userRequest is the body of PUT /api/v1/users/:name: it replaces both.
type userRequest struct {
	Roles  []string `json:"roles"`
	Tokens []string `json:"tokens"`
}

// newRoleRequest is the body of POST /api/v1/roles.
type newRoleRequest struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// roleRequest is the body of PUT /api/v1/roles/:name: it replaces both.
type roleRequest struct {
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// directory answers 404 and returns nil when users and roles are not
// managed at runtime.
func (h *Handler) directory(c *gin.Context) Directory {
	if h.opts.Directory == nil {
		apiError(c, http.StatusNotFound, "not_found", "users and roles are not managed here")
		return nil
	}
	return h.opts.Directory
}

// caller is who makes the request, as the audit log names them.
func caller(c *gin.Context) string {
	v, _ := c.Get(auditUserKey)
	name, _ := v.(string)
	return name
}

// directoryError answers an error of the Directory.
func (h *Handler) directoryError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, auth.ErrInvalid):
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
	case errors.Is(err, auth.ErrNotFound):
		apiError(c, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, auth.ErrConflict):
		apiError(c, http.StatusConflict, "conflict", err.Error())
	default:
		h.logger.Error("Changing users or roles failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
	}
}

func apiCreated(c *gin.Context, data any) {
	c.JSON(http.StatusCreated, gin.H{"status": "success", "data": data})
}

// listUsers answers GET /api/v1/users: every user, configured and runtime,
// without token hashes.
func (h *Handler) listUsers(c *gin.Context) {
	if d := h.directory(c); d != nil {
		apiSuccess(c, d.Users())
	}
}

// getUser answers GET /api/v1/users/:name.
func (h *Handler) getUser(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	u, err := d.User(c.Param("name"))
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiSuccess(c, u)
}

// createUser answers POST /api/v1/users {name, roles, tokens}.
func (h *Handler) createUser(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	var req newUserRequest
	if err := readJSON(c, &req); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if !h.mayGrant(c, d, req.Roles, nil) {
		return
	}
	u, err := d.CreateUser(caller(c), auth.UserSpec{Name: req.Name, Roles: req.Roles, Tokens: req.Tokens})
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiCreated(c, u)
}

// updateUser answers PUT /api/v1/users/:name {roles, tokens}.
func (h *Handler) updateUser(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	var req userRequest
	if err := readJSON(c, &req); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if !h.mayChangeUser(c, d, c.Param("name")) || !h.mayGrant(c, d, req.Roles, nil) {
		return
	}
	u, err := d.UpdateUser(caller(c), auth.UserSpec{Name: c.Param("name"), Roles: req.Roles, Tokens: req.Tokens})
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiSuccess(c, u)
}

// deleteUser answers DELETE /api/v1/users/:name with the user as it was.
func (h *Handler) deleteUser(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	if !h.mayChangeUser(c, d, c.Param("name")) {
		return
	}
	u, err := d.DeleteUser(caller(c), c.Param("name"))
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiSuccess(c, u)
}

// listRoles answers GET /api/v1/roles: every role, configured and runtime.
func (h *Handler) listRoles(c *gin.Context) {
	if d := h.directory(c); d != nil {
		apiSuccess(c, d.Roles())
	}
}

// getRole answers GET /api/v1/roles/:name.
func (h *Handler) getRole(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	r, err := d.Role(c.Param("name"))
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiSuccess(c, r)
}

// createRole answers POST /api/v1/roles {name, description, permissions}.
func (h *Handler) createRole(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	var req newRoleRequest
	if err := readJSON(c, &req); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if !h.mayGrant(c, d, nil, req.Permissions) {
		return
	}
	r, err := d.CreateRole(caller(c), auth.RoleSpec{Name: req.Name, Description: req.Description, Permissions: req.Permissions})
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiCreated(c, r)
}

// updateRole answers PUT /api/v1/roles/:name {description, permissions}.
func (h *Handler) updateRole(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	var req roleRequest
	if err := readJSON(c, &req); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if !h.mayGrant(c, d, nil, req.Permissions) {
		return
	}
	if cur, err := d.Role(c.Param("name")); err == nil && !h.mayGrant(c, d, nil, cur.Permissions) {
		return
	}
	r, err := d.UpdateRole(caller(c), auth.RoleSpec{Name: c.Param("name"), Description: req.Description, Permissions: req.Permissions})
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiSuccess(c, r)
}

// deleteRole answers DELETE /api/v1/roles/:name with the role as it was.
func (h *Handler) deleteRole(c *gin.Context) {
	d := h.directory(c)
	if d == nil {
		return
	}
	if cur, err := d.Role(c.Param("name")); err == nil && !h.mayGrant(c, d, nil, cur.Permissions) {
		return
	}
	r, err := d.DeleteRole(caller(c), c.Param("name"))
	if err != nil {
		h.directoryError(c, err)
		return
	}
	apiSuccess(c, r)
}

// mayGrant refuses (403) a change that would hand out a permission the
// caller does not hold itself: the permissions listed, and those of the
// roles listed. Without it, manage_roles could grant itself manage_users,
// and manage_users could make its own admin. Unknown roles are left to the
// Directory, which refuses them with 400.
func (h *Handler) mayGrant(c *gin.Context, d Directory, roles, permissions []string) bool {
	v, ok := c.Get(authUserKey)
	if !ok {
		// Authentication is off altogether (no Options.Auth).
		return true
	}
	u := v.(auth.User)
	want := slices.Clone(permissions)
	for _, role := range roles {
		if r, err := d.Role(role); err == nil {
			want = append(want, r.Permissions...)
		}
	}
	var missing []string
	for _, p := range want {
		// Only the permissions routes check give access; others (unknown
		// ones included, which the Directory refuses) are left alone.
		if !u.Can(p) && h.guards(p) && !slices.Contains(missing, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return true
	}
	slices.Sort(missing)
	apiError(c, http.StatusForbidden, "forbidden", fmt.Sprintf("user %q cannot hand out permissions it does not hold: %s",
		u.Name, strings.Join(missing, ", ")))
	return false
}

// mayChangeUser refuses (403) changing or deleting a user who holds a
// permission the caller lacks: a user manager cannot demote an admin.
func (h *Handler) mayChangeUser(c *gin.Context, d Directory, name string) bool {
	target, err := d.User(name)
	if err != nil {
		// The Directory answers unknown and configured users itself.
		return true
	}
	return h.mayGrant(c, d, nil, target.Permissions)
}

// guards reports whether some route needs permission.
func (h *Handler) guards(permission string) bool {
	for _, r := range h.routes {
		if r.permission == permission {
			return true
		}
	}
	return false
}
