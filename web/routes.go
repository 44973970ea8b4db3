package web

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/storage"
)

// Permissions from DESIGN.md's HTTP table; "" is an open route.
const (
	permOpen        = ""
	permMonitor     = "monitor"
	permViewMetrics = "view_metrics"
	permManageRoles = "manage_roles"
	permViewLogs    = "view_logs"
	permAcknowledge = "acknowledge"
	permDeploy      = "deploy"
	permRollback    = "rollback"
	permBackup      = "backup"
	// permSlack marks the route Slack calls: it carries no vigil token, the
	// handler verifies Slack's signing secret.
	permSlack = "slack_signature"
)

// route is one row of the route table: authentication wraps each route by its
// permission and access, so every route is listed here and nowhere else.
type route struct {
	method     string
	path       string
	permission string
	access     routeAccess
	handler    gin.HandlerFunc
}

// routeAccess says which apps a route's permission must reach (allApps or
// perApp, one of them on every row) and whether the route takes the
// operator page's session (pageSession).
type routeAccess uint8

const (
	// allApps routes answer with what has no app (metric queries, logs,
	// silences, users, the reload): they need the permission for every app.
	allApps routeAccess = 1 << iota
	// perApp routes look at the app of each thing they show or change (an
	// incident's or alert's app label, the watched app's deploys and
	// rollbacks) and keep to the apps the caller's permission covers (the
	// permission's resources): a user who holds it for some apps only is
	// let in.
	perApp
	// pageSession routes are the operator page's: they also take a
	// signed-in browser's session cookie instead of a bearer token, with a
	// CSRF token on every post. The sign-in and sign-out forms and the
	// static files are open routes that check what they need themselves.
	pageSession
)

// scoped reports whether r is a perApp route.
func (r route) scoped() bool { return r.access&perApp != 0 }

// page reports whether r takes the page's session.
func (r route) page() bool { return r.access&pageSession != 0 }

// prometheusRoutes are the Prometheus API endpoints vigil serves, relative to
// /api/v1, with the methods Prometheus serves them on. They are listed one by
// one rather than under a wildcard, so vigil's own /api/v1 routes can sit
// beside them and each has its permission.
var prometheusRoutes = []struct {
	path    string
	methods []string
}{
	{"/query", []string{http.MethodGet, http.MethodPost}},
	{"/query_range", []string{http.MethodGet, http.MethodPost}},
	{"/query_exemplars", []string{http.MethodGet, http.MethodPost}},
	{"/format_query", []string{http.MethodGet, http.MethodPost}},
	{"/parse_query", []string{http.MethodGet, http.MethodPost}},
	{"/series", []string{http.MethodGet, http.MethodPost}},
	{"/labels", []string{http.MethodGet, http.MethodPost}},
	{"/label/:name/values", []string{http.MethodGet}},
	{"/metadata", []string{http.MethodGet}},
	{"/scrape_pools", []string{http.MethodGet}},
	{"/targets", []string{http.MethodGet}},
	{"/targets/metadata", []string{http.MethodGet}},
	{"/rules", []string{http.MethodGet}},
	{"/alerts", []string{http.MethodGet}},
	{"/alertmanagers", []string{http.MethodGet}},
	{"/status/buildinfo", []string{http.MethodGet}},
	{"/status/runtimeinfo", []string{http.MethodGet}},
	{"/status/flags", []string{http.MethodGet}},
	{"/status/config", []string{http.MethodGet}},
	{"/status/tsdb", []string{http.MethodGet}},
	{"/status/walreplay", []string{http.MethodGet}},
}

// routeTable is every route vigil serves.
func (h *Handler) routeTable() []route {
	rs := []route{
		{http.MethodGet, "/health", permOpen, allApps, h.health},
		{http.MethodHead, "/health", permOpen, allApps, h.health},
		{http.MethodGet, "/ready", permOpen, allApps, h.readiness},
		{http.MethodHead, "/ready", permOpen, allApps, h.readiness},
		{http.MethodGet, defaultMetricsPath, permOpen, allApps, h.serveMetrics()},
		{http.MethodGet, defaultMetricsPath + "/collectors/:name", permOpen, allApps, h.serveCollector},
		{http.MethodGet, "/", permMonitor, perApp | pageSession, h.page},
		{http.MethodPost, "/ui/login", permOpen, allApps, h.signIn},
		{http.MethodPost, "/ui/logout", permOpen, allApps, h.signOut},
		{http.MethodPost, "/ui/incidents/:id/ack", permAcknowledge, perApp | pageSession, h.uiIncidentAction(false)},
		{http.MethodPost, "/ui/incidents/:id/resolve", permAcknowledge, perApp | pageSession, h.uiIncidentAction(true)},
		{http.MethodPost, "/ui/rollback", permRollback, perApp | pageSession, h.uiRollback},
		{http.MethodPost, "/ui/silences", permAcknowledge, allApps | pageSession, h.uiSilence},
		{http.MethodPost, "/ui/silences/:id/expire", permAcknowledge, allApps | pageSession, h.uiExpireSilence},
		{http.MethodGet, "/ui/static/*file", permOpen, allApps, h.staticFile},
		{http.MethodGet, "/alerts", permMonitor, perApp, h.alerts},
		{http.MethodPost, "/-/reload", permManageRoles, allApps, h.reload},
		{http.MethodGet, "/debug/pprof/:name", permManageRoles, allApps, h.pprofProfile},
		{http.MethodGet, apiPrefix + "/logs", permViewLogs, allApps, h.logs},
		{http.MethodGet, apiPrefix + "/incidents", permMonitor, perApp, h.listIncidents},
		{http.MethodGet, apiPrefix + "/incidents/:id", permMonitor, perApp, h.getIncident},
		{http.MethodPost, apiPrefix + "/incidents/:id/ack", permAcknowledge, perApp, h.incidentAction(false)},
		{http.MethodPost, apiPrefix + "/incidents/:id/resolve", permAcknowledge, perApp, h.incidentAction(true)},
		{http.MethodGet, apiPrefix + "/deploys", permMonitor, perApp, h.listDeploys},
		{http.MethodPost, apiPrefix + "/deploys", permDeploy, perApp, h.recordDeploy},
		{http.MethodGet, apiPrefix + "/deploys/:id/analysis", permMonitor, perApp, h.deployAnalysis},
		{http.MethodPost, apiPrefix + "/rollback", permRollback, perApp, h.rollback},
		{http.MethodGet, apiPrefix + "/backups", permMonitor, allApps, h.listBackups},
		{http.MethodPost, apiPrefix + "/backups", permBackup, allApps, h.recordBackup},
		{http.MethodGet, apiPrefix + "/rollbacks", permMonitor, perApp, h.listRollbacks},
		{http.MethodGet, apiPrefix + "/silences", permMonitor, allApps, h.listSilences},
		{http.MethodPost, apiPrefix + "/silences", permAcknowledge, allApps, h.addSilence},
		{http.MethodDelete, apiPrefix + "/silences/:id", permAcknowledge, allApps, h.expireSilence},
		{http.MethodPost, "/slack/interactions", permSlack, allApps, h.slackInteractions},
		{http.MethodGet, apiPrefix + "/audit", permManageUsers, allApps, h.listAudit},
		{http.MethodGet, apiPrefix + "/users", permManageUsers, allApps, h.listUsers},
		{http.MethodPost, apiPrefix + "/users", permManageUsers, allApps, h.createUser},
		{http.MethodGet, apiPrefix + "/users/:name", permManageUsers, allApps, h.getUser},
		{http.MethodPut, apiPrefix + "/users/:name", permManageUsers, allApps, h.updateUser},
		{http.MethodDelete, apiPrefix + "/users/:name", permManageUsers, allApps, h.deleteUser},
		{http.MethodGet, apiPrefix + "/rules/dead", permViewMetrics, allApps, h.listDeadRules},
		{http.MethodGet, apiPrefix + "/roles", permManageRoles, allApps, h.listRoles},
		{http.MethodPost, apiPrefix + "/roles", permManageRoles, allApps, h.createRole},
		{http.MethodGet, apiPrefix + "/roles/:name", permManageRoles, allApps, h.getRole},
		{http.MethodPut, apiPrefix + "/roles/:name", permManageRoles, allApps, h.updateRole},
		{http.MethodDelete, apiPrefix + "/roles/:name", permManageRoles, allApps, h.deleteRole},
		{http.MethodPost, amPrefix + "/alerts", permIngest, perApp, h.postAlerts},
		{http.MethodGet, amPrefix + "/alerts", permMonitor, perApp, h.getAlerts},
		{http.MethodGet, amPrefix + "/status", permMonitor, allApps, h.getAMStatus},
		{http.MethodGet, amPrefix + "/receivers", permMonitor, allApps, h.getAMReceivers},
		{http.MethodGet, amPrefix + "/silences", permMonitor, allApps, h.getAMSilences},
		{http.MethodPost, amPrefix + "/silences", permAcknowledge, allApps, h.postAMSilence},
		{http.MethodGet, amPrefix + "/silence/:id", permMonitor, allApps, h.getAMSilence},
		{http.MethodDelete, amPrefix + "/silence/:id", permAcknowledge, allApps, h.deleteAMSilence},
	}
	prom := gin.WrapH(h.promAPI)
	for _, pr := range prometheusRoutes {
		for _, m := range pr.methods {
			rs = append(rs, route{m, apiPrefix + pr.path, permViewMetrics, allApps, prom})
		}
	}
	return rs
}

// newEngine builds the gin engine from the route table.
func (h *Handler) newEngine() *gin.Engine {
	e := gin.New()
	// Client addresses come from the connection: no proxy headers are trusted
	// (nil always succeeds).
	_ = e.SetTrustedProxies(nil)
	e.Use(h.logRequests, h.instrument, gin.CustomRecoveryWithWriter(io.Discard, h.recovered))
	e.NoRoute(func(c *gin.Context) { writeNotFound(c.Writer) })
	h.routes = h.routeTable()
	for _, r := range h.routes {
		e.Handle(r.method, r.path, h.authorize(r), r.handler)
	}
	return e
}

// routeKey is the gin context key under which a request's row of the
// route table is kept.
const routeKey = "vigil.route"

// routeOf returns the row of the route table c is served by; the zero
// route, whose empty permission no user holds for any app, if none.
func routeOf(c *gin.Context) route {
	v, _ := c.Get(routeKey)
	r, _ := v.(route)
	return r
}

// authorize guards a route by its permission and access from the table:
// open routes and Slack's (whose handler checks Slack's signature) pass;
// every other route needs a bearer token, or basic auth, of a user with the
// permission (see authenticate and permits). Every mutating call is
// recorded in the audit log, whatever its outcome.
func (h *Handler) authorize(r route) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(routeKey, r)
		if h.authenticate(c, r.permission, r.page()) {
			c.Next()
		}
		if audited(c.Request.Method, r.permission) {
			h.audit(c)
		}
	}
}

// logRequests logs each request at debug level.
func (h *Handler) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	h.logger.Debug("HTTP request",
		"method", c.Request.Method,
		"path", c.Request.URL.Path,
		"route", c.FullPath(),
		"status", c.Writer.Status(),
		"duration", time.Since(start),
		"remote", c.ClientIP(),
	)
}

// instrument counts requests and their durations by route.
func (h *Handler) instrument(c *gin.Context) {
	start := time.Now()
	c.Next()
	handler := c.FullPath()
	if handler == "" {
		handler = "none"
	}
	h.metrics.requestDuration.
		WithLabelValues(handler, c.Request.Method, fmt.Sprint(c.Writer.Status())).
		Observe(time.Since(start).Seconds())
}

// recovered answers 500 in JSON after a handler panicked.
func (h *Handler) recovered(c *gin.Context, err any) {
	h.logger.Error("Panic serving HTTP request", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody("internal server error"))
}

// writeNotFound answers an unknown route.
func writeNotFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"status":"error","error":"not found"}`))
}

// statusBody is the answer of /health, /ready and /-/reload.
type statusBody struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// RemoteWrite is each remote_write queue's state (on /ready only).
	RemoteWrite []storage.QueueStatus `json:"remote_write,omitempty"`
	// Forward is alerts.forward's state (on /ready only).
	Forward *ForwardStatus `json:"forward,omitempty"`
	// Store is the incident store and its peers (on /ready only).
	Store *notifier.StoreStatus `json:"store,omitempty"`
}

func errorBody(msg string) statusBody { return statusBody{Status: "error", Error: msg} }

// health is liveness: vigil answers, so it is alive.
func (h *Handler) health(c *gin.Context) {
	c.JSON(http.StatusOK, statusBody{Status: "ok"})
}

// readiness is 200 once SetReady(true), 503 before.
func (h *Handler) readiness(c *gin.Context) {
	if h.ready.Load() {
		// A backend that is down does not make vigil unready: the queues
		// catch up from the WAL, and the pod keeps its traffic.
		body := statusBody{Status: "ready"}
		if h.opts.RemoteWrite != nil {
			body.RemoteWrite = h.opts.RemoteWrite()
		}
		if h.opts.Forward != nil {
			body.Forward = h.opts.Forward()
		}
		if h.opts.Store != nil {
			st := h.opts.Store()
			body.Store = &st
		}
		c.JSON(http.StatusOK, body)
		return
	}
	c.JSON(http.StatusServiceUnavailable, statusBody{Status: "not ready"})
}

// reload re-reads the configuration through Options.Reload.
func (h *Handler) reload(c *gin.Context) {
	if h.opts.Reload == nil {
		c.JSON(http.StatusInternalServerError, errorBody("reload is not available"))
		return
	}
	if err := h.opts.Reload(); err != nil {
		h.logger.Error("Reload requested over HTTP failed", "err", err)
		h.reloadMtx.Lock()
		h.reloadSuccess = false
		h.reloadMtx.Unlock()
		c.JSON(http.StatusInternalServerError, errorBody(err.Error()))
		return
	}
	h.reloadMtx.Lock()
	h.reloadSuccess = true
	h.reloadMtx.Unlock()
	c.JSON(http.StatusOK, statusBody{Status: "success"})
}

// defaultLogLimit and maxLogLimit bound GET /api/v1/logs?limit=N.
const (
	defaultLogLimit = 100
	maxLogLimit     = 10000
)

// logs answers GET /api/v1/logs?log=NAME&limit=N with the last lines of a
// tailed log, newest last, in Prometheus's envelope.
func (h *Handler) logs(c *gin.Context) {
	name := c.Query("log")
	if name == "" {
		c.JSON(http.StatusBadRequest, gin.H{"status": "error", "errorType": "bad_data", "error": "log is required: ?log=NAME"})
		return
	}
	limit, ok := limitParam(c, defaultLogLimit, maxLogLimit)
	if !ok {
		return
	}
	if h.opts.LogLines == nil {
		c.JSON(http.StatusNotFound, gin.H{"status": "error", "errorType": "not_found", "error": fmt.Sprintf("no log %q", name)})
		return
	}
	lines, err := h.opts.LogLines(name, limit)
	if err != nil {
		c.JSON(http.StatusNotFound, gin.H{"status": "error", "errorType": "not_found", "error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "success", "data": lines})
}
