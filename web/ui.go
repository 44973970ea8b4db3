package web

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/collector/logs"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
	vigilrules "github.com/vigil-sh/vigil/rules"
	"github.com/vigil-sh/vigil/storage"
)

// The operator page: one server-rendered page at /, a sign-in form, and
// buttons that post forms to /ui/... . Its CSS and script are files under
// /ui/static/, so the Content-Security-Policy can refuse every inline script.

//go:embed ui
var uiFiles embed.FS

var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"ago":     ago,
	"until":   until,
	"stamp":   stamp,
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":     func(d time.Duration) string { return formatSeconds(d.Seconds()) },
}).ParseFS(uiFiles, "ui/page.html", "ui/graph.html"))

// authUserKey is the gin context key of the authenticated auth.User.
const authUserKey = "vigil.auth_user"

// Bounds of what the page lists.
const (
	// pageIncidents bounds the open incidents the page renders (about 8 ms
	// and 370 kB for 200, docs/benchmarks.md); in an alert storm the rest
	// are counted, and the API lists them all.
	pageIncidents = 200
	pageResolved  = 10
	pageDeploys   = 10
)

// pageData is what the page template renders.
type pageData struct {
	Service     string
	Environment string
	Version     string
	// SignIn shows the sign-in form instead of the page.
	SignIn bool
	// Problem is an error to show, such as a refused sign-in.
	Problem string
	// Notice confirms what the last action did; Warning says it did not
	// happen.
	Notice  string
	Warning string
	CSRF    string

	User  string
	Roles string
	Open  bool
	// CanSilence shows the Silence form and the Expire buttons: silences
	// have no app, so their routes need acknowledge on every app.
	CanSilence bool
	// CanRollback shows the Roll back button.
	CanRollback bool
	Now         time.Time

	Alerts    []alert
	Incidents []incidentView
	// MoreIncidents counts the open incidents beyond pageIncidents.
	MoreIncidents int
	Resolved      []incidentView
	Deploys       []rollback.Deploy
	Rollbacks     []rollbackView
	Targets       []targetView
	Logs          []logs.LogStatus
	Silences      []notifier.Silence
	// SilenceDurations are the Silence form's choices.
	SilenceDurations []string
	// Failures are parts of the page that could not be loaded.
	Failures []string
	// DeadRules are rule inputs that match no series: rules that cannot fire.
	DeadRules []vigilrules.DeadRule

	// GraphsFor is how many incidents have graphs when not all do.
	GraphsFor int

	// units are the units of the alerting rules' values, by alert name.
	units map[string]unit
	// canGraph lets the incidents show graphs: they are metrics, which the
	// Prometheus API serves only with view_metrics.
	canGraph bool
	// RemoteWrite is each remote_write queue's state.
	RemoteWrite []storage.QueueStatus
	// Forward is alerts.forward's state.
	Forward *ForwardStatus

	// Analyses are the newest deploy analyses, step by step.
	Analyses []analysisView

	// Store is the incident store and, when shared, its peers.
	Store *notifier.StoreStatus
}

// Value writes an alert's sample value as Grafana would, in the unit its
// rule's metric gives.
func (d *pageData) Value(alertName string, v alertValue) string {
	return formatValue(float64(v), d.units[alertName])
}

// incidentView is an incident with what the page shows about it.
type incidentView struct {
	notifier.Incident
	LevelName string
	Notified  []notifiedView
	// Notes are the comments left with acknowledgements and resolutions
	// that say something.
	Notes []notifier.Comment
	// Value is the alert's value when it last fired, rounded.
	Value string
	// Graph is the alert's expression over the last hour; GraphNote says
	// why there is none.
	Graph     *graphView
	GraphNote string
	// CanAct shows the Acknowledge and Resolve buttons: the caller's
	// acknowledge covers the incident's app.
	CanAct bool
	// MembersFiring counts the alerts of the incident's group still
	// firing, FirstMembers are the first notifier.MemberSample of them;
	// shown when the group has more than one.
	MembersFiring int
	FirstMembers  []memberView
}

// memberView is one alert of an incident's group: the labels that tell it
// apart and its state.
type memberView struct {
	Labels string
	State  string
}

// notifiedView is who was told about an incident at one level, and how that
// went the last time.
type notifiedView struct {
	Receiver string
	Level    string
	Outcome  string
	Kind     notifier.Kind
	Count    int
}

// rollbackView is a rollback webhook call and the incident that asked for
// it, or who fired it by hand and why; GET /api/v1/rollbacks lists them.
type rollbackView struct {
	notifier.RollbackRecord
	Incident string `json:"incident,omitempty"`
	Alert    string `json:"alert,omitempty"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// targetView is one scrape target's health.
type targetView struct {
	Pool       string
	Instance   string
	Health     string
	LastError  string
	LastScrape time.Time
	Duration   time.Duration
}

// securityHeaders are set on every page and static file.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null"
	// on form posts, which checkCSRF refuses.
	h.Set("Referrer-Policy", "same-origin")
}

// render writes the page template with status.
func (h *Handler) render(c *gin.Context, status int, d *pageData) {
	if cfg := h.cfg.Load(); cfg != nil {
		d.Service, d.Environment = cfg.Service, cfg.Environment
	}
	d.Version = h.vigilVersion()
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		h.logger.Error("Rendering the operator page failed", "err", err)
		c.String(http.StatusInternalServerError, "rendering the page failed")
		return
	}
	securityHeaders(c.Writer)
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// renderSignIn shows the sign-in form with a CSRF token bound to a cookie.
func (h *Handler) renderSignIn(c *gin.Context, status int, problem string) {
	h.render(c, status, &pageData{SignIn: true, Problem: problem, CSRF: h.cookieCSRF(c)})
}

// authenticateSession authenticates a request to a page route that carries
// no Authorization header: by its session cookie, and on POST by the CSRF
// token of that session. Without a session a GET gets the sign-in form.
func (h *Handler) authenticateSession(c *gin.Context, a *auth.Authenticator, permission string) bool {
	sess, id := h.access.sessions.fromRequest(c.Request)
	var user auth.User
	ok := false
	if sess != nil {
		if user, ok = a.AuthenticateSum(sess.sum); !ok {
			// The token left the configuration: so does the session.
			h.access.sessions.remove(id)
		}
	}
	if !ok {
		if c.Request.Method == http.MethodGet {
			h.renderSignIn(c, http.StatusOK, "")
		} else {
			c.Header("WWW-Authenticate", `Bearer realm="vigil"`)
			apiError(c, http.StatusUnauthorized, "unauthorized", "sign in first, or send the header Authorization: Bearer <token>")
		}
		c.Abort()
		return false
	}
	h.setUser(c, user)
	if !permits(c, user, permission) {
		msg := fmt.Sprintf("user %q lacks the permission %q", user.Name, permission)
		if c.Request.Method == http.MethodGet {
			h.render(c, http.StatusForbidden, &pageData{User: user.Name, Roles: strings.Join(user.Roles, ", "), CSRF: sess.csrf, Problem: msg})
		} else {
			apiError(c, http.StatusForbidden, "forbidden", msg)
		}
		c.Abort()
		return false
	}
	if mutating(c.Request.Method) && !h.checkCSRF(c, sess.csrf) {
		return false
	}
	c.Set(csrfKey, sess.csrf)
	return true
}

// csrfKey is the gin context key of the CSRF token the page's forms carry.
const csrfKey = "vigil.csrf"

// setUser records the authenticated user on the request.
func (h *Handler) setUser(c *gin.Context, user auth.User) {
	c.Set(userKey, user.Name)
	c.Set(auditUserKey, user.Name)
	c.Set(authUserKey, user)
}

// checkCSRF refuses a form post whose CSRF token is not want (the session's,
// or the CSRF cookie's when want is empty), or that comes from another
// origin. It bounds and parses the form, so handlers read
// c.Request.PostForm.
func (h *Handler) checkCSRF(c *gin.Context, want string) bool {
	if reason := crossSite(c.Request); reason != "" {
		h.logger.Info("Form post refused", "reason", reason, "path", c.Request.URL.Path, "client", c.ClientIP())
		apiError(c, http.StatusForbidden, "forbidden", "cross-origin form posts are refused")
		c.Abort()
		return false
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	if err := c.Request.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			apiError(c, http.StatusRequestEntityTooLarge, "bad_data", fmt.Sprintf("the body is larger than %d bytes", maxBodyBytes))
		} else {
			apiError(c, http.StatusBadRequest, "bad_data", "the form cannot be read")
		}
		c.Abort()
		return false
	}
	if want == "" {
		if ck, err := c.Request.Cookie(csrfCookie); err == nil {
			want = ck.Value
		}
	}
	got := c.GetHeader(csrfHeader)
	if got == "" {
		got = c.Request.PostForm.Get(csrfField)
	}
	if !sameToken(got, want) {
		h.logger.Info("Form post refused", "reason", "missing or wrong CSRF token", "path", c.Request.URL.Path,
			"client", c.ClientIP(), "sent", got != "", "expected", want != "")
		apiError(c, http.StatusForbidden, "forbidden", "missing or wrong CSRF token: reload the page and try again")
		c.Abort()
		return false
	}
	return true
}

// incidentFragment is the anchor of an incident on the page, the only place
// a sign-in goes back to besides the page itself.
var incidentFragment = regexp.MustCompile(`^#incident-[A-Za-z0-9_-]{1,64}$`)

// incidentID is what an incident id looks like, for ids the page repeats
// from its query string.
var incidentID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// signIn answers POST /ui/login: the token from the form starts a session.
// Failures count towards the client's failed-authentication limit.
func (h *Handler) signIn(c *gin.Context) {
	if !h.checkCSRF(c, "") {
		return
	}
	a := h.authenticator()
	if a == nil {
		h.renderSignIn(c, http.StatusServiceUnavailable, "authentication is not configured yet")
		return
	}
	client := c.ClientIP()
	token := strings.TrimSpace(c.Request.PostForm.Get("token"))
	sum := auth.SumOf(token)
	user, err := a.Check(sum)
	if token == "" || err != nil || a.Open() {
		msg := "That token is not valid."
		if errors.Is(err, auth.ErrExpired) {
			msg = "That token has expired; ask for a new one."
		}
		// Only failures are limited: a valid token signs in even from a
		// blocked address (see authenticate).
		wait, blocked := h.access.limiter.blocked(client)
		if token != "" && !a.Open() {
			h.countFailure(client, "sign-in form: "+err.Error(), c)
		}
		if blocked {
			h.renderSignIn(c, http.StatusTooManyRequests,
				fmt.Sprintf("too many failed sign-ins from this address; try again in %s", wait.Round(time.Second)))
			return
		}
		h.renderSignIn(c, http.StatusUnauthorized, msg)
		return
	}
	id, _, err := h.access.sessions.create(sum)
	if err != nil {
		h.logger.Warn("Sign-in refused", "user", user.Name, "err", err)
		h.renderSignIn(c, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.setCookie(c.Writer, c.Request, sessionCookie, id, sessionTTL)
	h.clearCookie(c.Writer, c.Request, csrfCookie)
	c.Set(auditUserKey, user.Name)
	h.logger.Info("Signed in to the operator page", "user", user.Name, "client", client)
	target := "/"
	if f := c.Request.PostForm.Get("fragment"); incidentFragment.MatchString(f) {
		// Only an incident anchor: the form must not redirect anywhere else.
		target += f
	}
	c.Redirect(http.StatusSeeOther, target)
}

// signOut answers POST /ui/logout: it ends the session of the request when
// the form carries its CSRF token, and clears the cookie in any case.
func (h *Handler) signOut(c *gin.Context) {
	sess, id := h.access.sessions.fromRequest(c.Request)
	if sess != nil {
		if !h.checkCSRF(c, sess.csrf) {
			return
		}
		h.access.sessions.remove(id)
	}
	h.clearCookie(c.Writer, c.Request, sessionCookie)
	c.Redirect(http.StatusSeeOther, "/")
}

// authenticator is the authenticator in force, nil when there is none yet
// or when authentication is off (no Options.Auth).
func (h *Handler) authenticator() *auth.Authenticator {
	if h.opts.Auth == nil {
		return nil
	}
	return h.opts.Auth()
}

// open reports whether every request is let in without a token.
func (h *Handler) open() bool {
	if h.opts.Auth == nil {
		return true
	}
	a := h.opts.Auth()
	return a != nil && a.Open()
}

// uiIncidentAction answers the page's Acknowledge and Resolve buttons.
func (h *Handler) uiIncidentAction(resolve bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if h.opts.Incidents == nil {
			apiError(c, http.StatusNotFound, "not_found", "no incidents")
			return
		}
		if !parseForm(c) {
			return
		}
		id := c.Param("id")
		if !h.mayActOn(c, id) {
			return
		}
		comment := strings.TrimSpace(c.Request.PostForm.Get("comment"))
		act, done := h.opts.Incidents.Acknowledge, "acknowledged"
		if resolve {
			act, done = h.opts.Incidents.Resolve, "resolved"
		}
		if _, err := act(id, pageUser(c), comment); err != nil {
			h.incidentError(c, err)
			return
		}
		c.Redirect(http.StatusSeeOther, "/?"+url.Values{"done": {done}, "incident": {id}}.Encode()+"#incident-"+url.PathEscape(id))
	}
}

// parseForm parses a page form that checkCSRF has not (a bearer-token
// caller's), bounded like every body.
func parseForm(c *gin.Context) bool {
	if c.Request.PostForm != nil {
		return true
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	if err := c.Request.ParseForm(); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", "the form cannot be read")
		return false
	}
	return true
}

// pageUser is who acts through the page: the signed-in user, or anonymous
// while vigil runs open.
func pageUser(c *gin.Context) string {
	if by := requestUser(c); by != "" {
		return by
	}
	return auth.Anonymous
}

// Outcomes of the page's Roll back button, passed to the page in the
// redirect as fixed codes (never an error's text) and told in rollbackNotice.
var rollbackNotice = map[string]string{
	"delivered":      "Rollback sent: the deploy controller accepted it.",
	"dry-run":        "Rollback recorded as a dry run: nothing was called.",
	"failed":         "Rollback failed: the deploy controller did not accept it. See Deploys and rollbacks below.",
	"not-configured": "Rollback is not configured (rollback.webhook).",
	"environment":    "Rollback is refused outside production.",
	"no-deploy":      "There is no deploy to roll back.",
	"cooldown":       "Rollback refused: the last one was within the cooldown.",
}

// uiRollback answers the page's Roll back button: the rollback webhook for
// the last deploy, as POST /api/v1/rollback fires it.
func (h *Handler) uiRollback(c *gin.Context) {
	if !parseForm(c) {
		return
	}
	if !h.mayTouchWatched(c, permRollback, "roll back") {
		return
	}
	outcome := "not-configured"
	if h.opts.Deploys != nil {
		reason := strings.TrimSpace(c.Request.PostForm.Get("reason"))
		if reason == "" {
			reason = "rolled back from the operator page"
		}
		rec, err := h.opts.Deploys.FireNow(c.Request.Context(), reason, pageUser(c))
		switch {
		case errors.Is(err, rollback.ErrNotConfigured):
		case errors.Is(err, rollback.ErrEnvironment):
			outcome = "environment"
		case errors.Is(err, rollback.ErrNoDeploy):
			outcome = "no-deploy"
		case errors.Is(err, rollback.ErrCooldown):
			outcome = "cooldown"
		case err != nil || rec == nil:
			outcome = "failed"
		case rec.DryRun:
			outcome = "dry-run"
		default:
			outcome = "delivered"
		}
	}
	c.Redirect(http.StatusSeeOther, "/?"+url.Values{"rollback": {outcome}}.Encode()+"#deploys")
}

// page answers GET /: what is firing, the open incidents, deploys, rollbacks
// and collector health.
func (h *Handler) page(c *gin.Context) {
	d := &pageData{Now: time.Now(), User: auth.Anonymous, CanSilence: true, CanRollback: true, canGraph: true}
	if v, ok := c.Get(authUserKey); ok {
		u := v.(auth.User)
		d.User, d.Roles = u.Name, strings.Join(u.Roles, ", ")
		d.CanSilence = u.Can(permAcknowledge)
		d.CanRollback = u.CanOn(permRollback, h.watchedApp())
		d.canGraph = u.Can(permViewMetrics)
	}
	if h.open() {
		d.Open = true
		d.CSRF = h.cookieCSRF(c)
	} else {
		d.CSRF = c.GetString(csrfKey)
	}
	d.Alerts = visibleAlerts(c, h.activeAlerts(""))
	byName := h.alertingRules()
	d.units = make(map[string]unit, len(byName))
	for name, rs := range byName {
		d.units[name] = unitOfExpr(rs[0].Query())
	}
	all := h.pageIncidents(c, d)
	h.pageGraphs(c.Request.Context(), d, byName)
	h.pageDeploys(d)
	d.Deploys = h.visibleDeploys(c, d.Deploys)
	h.pageAnalysisViews(c, d)
	rollbacks, err := h.rollbackHistory(all, pageDeploys)
	if err != nil {
		d.Failures = append(d.Failures, "rollbacks: "+err.Error())
	}
	d.Rollbacks = h.visibleRollbacks(c, rollbacks)
	d.Targets = h.pageTargets()
	// Dead rules name the rules and selectors of every app: shown, as
	// GET /api/v1/rules/dead lists them, only with view_metrics on every app.
	if h.opts.DeadRules != nil && mayAll(c, permViewMetrics) {
		d.DeadRules = h.opts.DeadRules()
	}
	if h.opts.LogStatus != nil {
		d.Logs = h.opts.LogStatus()
	}
	if h.opts.RemoteWrite != nil {
		d.RemoteWrite = h.opts.RemoteWrite()
	}
	if h.opts.Forward != nil {
		d.Forward = h.opts.Forward()
	}
	if h.opts.Store != nil {
		st := h.opts.Store()
		d.Store = &st
	}
	// Silences have no app: shown, as GET /api/v1/silences lists them, only
	// to whoever may monitor every app.
	if h.opts.Silences != nil && mayAll(c, permMonitor) {
		d.SilenceDurations = pageSilenceDurations
		if list, err := h.opts.Silences.Silences(false); err != nil {
			d.Failures = append(d.Failures, "silences: "+err.Error())
		} else {
			d.Silences = list
		}
	}
	if done, id := c.Query("done"), c.Query("incident"); done == "acknowledged" || done == "resolved" {
		for _, inc := range append(slices.Clone(d.Incidents), d.Resolved...) {
			if inc.ID == id {
				d.Notice = fmt.Sprintf("Incident %s %s.", id, done)
			}
		}
	}
	if id := c.Query("silenced"); id != "" && incidentID.MatchString(id) {
		d.Notice = fmt.Sprintf("The alert of incident %s is silenced: its notifications are muted until the silence ends.", id)
	}
	if c.Query("expired") == "1" {
		d.Notice = "Silence ended: notifications go out again."
	}
	if msg, ok := rollbackNotice[c.Query("rollback")]; ok {
		if c.Query("rollback") == "delivered" || c.Query("rollback") == "dry-run" {
			d.Notice = msg
		} else {
			d.Warning = msg
		}
	}
	h.render(c, http.StatusOK, d)
}

// cookieCSRF returns the CSRF token of a browser without a session (the
// sign-in form, or any form while vigil runs open): its CSRF cookie's, or a
// new one set in the cookie.
func (h *Handler) cookieCSRF(c *gin.Context) string {
	if ck, err := c.Request.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	token := randomToken()
	h.setCookie(c.Writer, c.Request, csrfCookie, token, sessionTTL)
	return token
}

// pageIncidents fills the open and the recently resolved incidents and
// returns every incident it read that the user may see.
func (h *Handler) pageIncidents(c *gin.Context, d *pageData) (all []notifier.Incident) {
	if h.opts.Incidents == nil {
		return nil
	}
	all, err := h.opts.Incidents.Incidents("")
	if err != nil {
		d.Failures = append(d.Failures, "incidents: "+err.Error())
		return nil
	}
	all = visibleIncidents(c, all)
	var levels []string
	if cfg := h.cfg.Load(); cfg != nil {
		for _, l := range cfg.Escalation.Levels {
			levels = append(levels, l.Name)
		}
	}
	for _, inc := range all {
		if inc.State == notifier.StateResolved {
			if len(d.Resolved) < pageResolved {
				d.Resolved = append(d.Resolved, newIncidentView(inc, levels, d.units))
			}
			continue
		}
		v := newIncidentView(inc, levels, d.units)
		v.CanAct = mayOn(c, permAcknowledge, incidentApp(inc))
		d.Incidents = append(d.Incidents, v)
	}
	// Unacknowledged first, then by priority, then newest first.
	slices.SortStableFunc(d.Incidents, func(a, b incidentView) int {
		return cmp.Or(
			cmp.Compare(stateRank(a.State), stateRank(b.State)),
			cmp.Compare(priorityRank(a.Priority), priorityRank(b.Priority)),
			b.CreatedAt.Compare(a.CreatedAt),
		)
	})
	if len(d.Incidents) > pageIncidents {
		d.MoreIncidents = len(d.Incidents) - pageIncidents
		d.Incidents = d.Incidents[:pageIncidents]
	}
	return all
}

func stateRank(s notifier.State) int {
	if s == notifier.StateTriggered {
		return 0
	}
	return 1
}

func priorityRank(p string) int {
	switch p {
	case notifier.PriorityCritical:
		return 0
	case notifier.PriorityHigh:
		return 1
	case notifier.PriorityMedium:
		return 2
	case notifier.PriorityLow:
		return 3
	}
	return 4
}

// levelName names level i (0-based) of the escalation.
func levelName(levels []string, i int) string {
	switch {
	case i < 0:
		return "not notified yet"
	case i < len(levels) && levels[i] != "":
		return fmt.Sprintf("L%d %s", i+1, levels[i])
	}
	return fmt.Sprintf("L%d", i+1)
}

func newIncidentView(inc notifier.Incident, levels []string, units map[string]unit) incidentView {
	v := incidentView{Incident: inc, LevelName: levelName(levels, inc.Level), Value: formatValue(inc.Alert.Value, units[inc.Alert.Name])}
	if ms := notifier.MemberList(&inc); len(ms) > 1 {
		v.MembersFiring = notifier.FiringMembers(&inc)
		for _, mb := range ms[:min(len(ms), notifier.MemberSample)] {
			v.FirstMembers = append(v.FirstMembers, memberView{Labels: notifier.MemberLabels(&inc, mb), State: mb.State})
		}
	}
	for _, cm := range inc.Comments {
		if strings.TrimSpace(cm.Text) != "" {
			v.Notes = append(v.Notes, cm)
		}
	}
	// The latest notification of each receiver at each level.
	type key struct {
		receiver string
		level    int
	}
	at := map[key]int{}
	for _, n := range inc.Notifications {
		if n.Kind == notifier.KindRollback {
			continue
		}
		k := key{n.Receiver, n.Level}
		i, ok := at[k]
		if !ok {
			at[k] = len(v.Notified)
			v.Notified = append(v.Notified, notifiedView{Receiver: n.Receiver, Level: levelName(levels, n.Level)})
			i = at[k]
		}
		v.Notified[i].Outcome, v.Notified[i].Kind = n.Outcome, n.Kind
		v.Notified[i].Count++
	}
	return v
}

// alertingRules lists the alerting rules in force by name; a name may
// belong to more than one rule, told apart by their labels.
func (h *Handler) alertingRules() map[string][]*rules.AlertingRule {
	out := map[string][]*rules.AlertingRule{}
	if h.opts.Rules == nil {
		return out
	}
	for _, r := range h.opts.Rules.AlertingRules() {
		out[r.Name()] = append(out[r.Name()], r)
	}
	return out
}

// pageDeploys fills the recent deploys.
func (h *Handler) pageDeploys(d *pageData) {
	if h.opts.Deploys == nil {
		return
	}
	list, err := h.opts.Deploys.Deploys(pageDeploys)
	if err != nil {
		d.Failures = append(d.Failures, "deploys: "+err.Error())
		return
	}
	d.Deploys = list
}

// pageTargets lists every scrape target's health, down ones first.
func (h *Handler) pageTargets() []targetView {
	if h.opts.Targets == nil {
		return nil
	}
	var out []targetView
	b := labels.NewBuilder(labels.EmptyLabels())
	for pool, ts := range h.opts.Targets.TargetsActive() {
		for _, t := range ts {
			v := targetView{
				Pool:       pool,
				Instance:   t.Labels(b).Get("instance"),
				Health:     string(t.Health()),
				LastScrape: t.LastScrape(),
				Duration:   t.LastScrapeDuration(),
			}
			if err := t.LastError(); err != nil {
				v.LastError = err.Error()
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b targetView) int {
		return cmp.Or(
			cmp.Compare(healthRank(a.Health), healthRank(b.Health)),
			cmp.Compare(a.Pool, b.Pool),
			cmp.Compare(a.Instance, b.Instance),
		)
	})
	return out
}

func healthRank(h string) int {
	switch scrape.TargetHealth(h) {
	case scrape.HealthBad:
		return 0
	case scrape.HealthUnknown:
		return 1
	}
	return 2
}

// staticFile answers GET /ui/static/*file from the files embedded in the
// binary. Names are checked before anything is opened: no "..", no
// backslashes, nothing outside ui/static.
func (h *Handler) staticFile(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("file"), "/")
	if name == "" || strings.Contains(name, `\`) || !fs.ValidPath(name) || path.Clean(name) != name {
		writeNotFound(c.Writer)
		return
	}
	b, err := fs.ReadFile(uiFiles, "ui/static/"+name)
	if err != nil {
		writeNotFound(c.Writer)
		return
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	securityHeaders(c.Writer)
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, ctype, b)
}

// ago says how long ago t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return roughly(time.Since(t)) + " ago"
}

// until says how long until t, roughly.
func until(t time.Time) string {
	d := time.Until(t)
	if d < 0 {
		return "overdue by " + roughly(-d)
	}
	return "in " + roughly(d)
}

// stamp is t in UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// roughly writes a duration the way people say it: 45s, 12m, 3h 20m, 2d 4h.
func roughly(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd %dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}
