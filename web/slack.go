package web

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrForbidden is why AuthorizeIncidentAction refuses a user.
var ErrForbidden = errors.New("not allowed")

// AuthorizeIncidentAction returns nil when the vigil user named user may
// acknowledge (or, with resolve, resolve) incident id, and an error wrapping
// ErrForbidden when not. It asks what the API asks of a token of that user:
// the permission comes from the route table's row of POST
// /api/v1/incidents/:id/ack (resolve), never from a copy, so Slack's
// buttons and the API cannot disagree. Without authentication (a nil
// Options.Auth) every user may act, as on the API. A permission limited to
// some apps (its resources) covers only incidents of those apps, and, as on
// the API, only a user who may see the incident (monitor for its app) may
// act on it.
func (h *Handler) AuthorizeIncidentAction(user, id string, resolve bool) error {
	path := apiPrefix + "/incidents/:id/ack"
	if resolve {
		path = apiPrefix + "/incidents/:id/resolve"
	}
	permission, ok := h.routePermission(http.MethodPost, path)
	if !ok {
		return fmt.Errorf("%w: no route %s %s", ErrForbidden, http.MethodPost, path)
	}
	if h.opts.Auth == nil {
		return nil
	}
	a := h.opts.Auth()
	if a == nil {
		return fmt.Errorf("%w: authentication is not configured yet", ErrForbidden)
	}
	u, ok := a.UserNamed(user)
	if !ok {
		return fmt.Errorf("%w: %q is not a vigil user", ErrForbidden, user)
	}
	if !u.CanSome(permission) {
		return fmt.Errorf("%w: user %q lacks the permission %q", ErrForbidden, u.Name, permission)
	}
	// The API's handlers also hold the permission to the incident's app
	// (its resources); so does Slack.
	if h.opts.Incidents == nil {
		return fmt.Errorf("%w: incidents are not served", ErrForbidden)
	}
	inc, err := h.opts.Incidents.Incident(id)
	if err != nil {
		return fmt.Errorf("%w: incident %q: %w", ErrForbidden, id, err)
	}
	if _, err := incidentActRefusal(u, permission, incidentApp(inc)); err != nil {
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	return nil
}

// routePermission is the permission of the route table's row for method and
// path.
func (h *Handler) routePermission(method, path string) (string, bool) {
	for _, r := range h.routes {
		if r.method == method && r.path == path {
			return r.permission, true
		}
	}
	return "", false
}
