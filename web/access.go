package web

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// permits reports whether user may pass the route of c, which needs
// permission: for some apps on a perApp route, for every app elsewhere.
func permits(c *gin.Context, user auth.User, permission string) bool {
	if routeOf(c).scoped() {
		return user.CanSome(permission)
	}
	return user.Can(permission)
}

// mayOn reports whether the caller of c holds permission for app. Without
// authentication at all (no Options.Auth) everyone may.
func mayOn(c *gin.Context, permission, app string) bool {
	v, ok := c.Get(authUserKey)
	if !ok {
		return true
	}
	return v.(auth.User).CanOn(permission, app)
}

// mayAll reports whether the caller of c holds permission for every app
// (and what has no app). Without authentication everyone does.
func mayAll(c *gin.Context, permission string) bool {
	v, ok := c.Get(authUserKey)
	if !ok {
		return true
	}
	return v.(auth.User).Can(permission)
}

// refuseApp answers 403 for an app the caller's permission does not cover.
func refuseApp(c *gin.Context, permission, what, app string) {
	apiError(c, http.StatusForbidden, "forbidden", fmt.Sprintf("user %q may not %s of app %q: its permission %q does not cover that app",
		requestUserOrAnonymous(c), what, app, permission))
}

func requestUserOrAnonymous(c *gin.Context) string {
	if v, ok := c.Get(authUserKey); ok {
		return v.(auth.User).Name
	}
	return auth.Anonymous
}

// incidentApp is the app an incident belongs to: its alert's app label.
func incidentApp(inc notifier.Incident) string { return inc.Alert.Labels["app"] }

// visibleIncidents keeps the incidents the caller may see (monitor).
func visibleIncidents(c *gin.Context, list []notifier.Incident) []notifier.Incident {
	out := list[:0:0]
	for _, inc := range list {
		if mayOn(c, permMonitor, incidentApp(inc)) {
			out = append(out, inc)
		}
	}
	return out
}

// visibleAlerts keeps the alerts the caller may see (monitor).
func visibleAlerts(c *gin.Context, list []alert) []alert {
	out := []alert{}
	for _, a := range list {
		if mayOn(c, permMonitor, a.Labels["app"]) {
			out = append(out, a)
		}
	}
	return out
}

// watchedApp is the app whose deploys vigil records and whose rollback
// webhook it fires: the app collector's app label, "app" by default, as
// the rollback manager reads it.
func (h *Handler) watchedApp() string {
	if cfg := h.cfg.Load(); cfg != nil && cfg.Collectors.App != nil && cfg.Collectors.App.Labels["app"] != "" {
		return cfg.Collectors.App.Labels["app"]
	}
	return "app"
}

// visibleDeploys keeps the deploys when the caller may see the watched app.
func (h *Handler) visibleDeploys(c *gin.Context, list []rollback.Deploy) []rollback.Deploy {
	if !mayOn(c, permMonitor, h.watchedApp()) {
		return []rollback.Deploy{}
	}
	return list
}

// visibleRollbacks keeps the rollbacks the caller may see: those of
// incidents it sees (all holds only those), and those fired by hand when it
// may see the watched app.
func (h *Handler) visibleRollbacks(c *gin.Context, list []rollbackView) []rollbackView {
	if mayOn(c, permMonitor, h.watchedApp()) {
		return list
	}
	out := []rollbackView{}
	for _, r := range list {
		if r.Incident != "" {
			out = append(out, r)
		}
	}
	return out
}

// mayActOn answers 404 or 403 and returns false unless the caller may act
// (acknowledge, resolve) on incident id with its route's permission: 404
// when it may not even see it, so that the answer tells nothing of
// incidents of other apps.
func (h *Handler) mayActOn(c *gin.Context, id string) bool {
	v, ok := c.Get(authUserKey)
	if !ok {
		return true
	}
	inc, err := h.opts.Incidents.Incident(id)
	if err != nil {
		h.incidentError(c, err)
		return false
	}
	app := incidentApp(inc)
	permission := routeOf(c).permission
	if hidden, err := incidentActRefusal(v.(auth.User), permission, app); hidden {
		apiError(c, http.StatusNotFound, "not_found", fmt.Sprintf("incident %q not found", id))
		return false
	} else if err != nil {
		refuseApp(c, permission, "act on incidents", app)
		return false
	}
	return true
}

// incidentActRefusal says why u may not act with permission on an incident
// of app, nil when it may; hidden when u may not even see the incident
// (monitor), which the API answers with 404. The API (mayActOn) and Slack's
// buttons (AuthorizeIncidentAction) both ask it.
func incidentActRefusal(u auth.User, permission, app string) (hidden bool, err error) {
	if !u.CanOn(permMonitor, app) {
		return true, fmt.Errorf("user %q may not see incidents of app %q (permission %q)", u.Name, app, permMonitor)
	}
	if !u.CanOn(permission, app) {
		return false, fmt.Errorf("user %q's permission %q does not cover app %q", u.Name, permission, app)
	}
	return false, nil
}

// mayTouchWatched answers 403 and returns false unless the caller holds
// permission (rollback, deploy) for the watched app.
func (h *Handler) mayTouchWatched(c *gin.Context, permission, what string) bool {
	if app := h.watchedApp(); !mayOn(c, permission, app) {
		refuseApp(c, permission, what, app)
		return false
	}
	return true
}
