package web

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/auth"
)

// Failed authentication is limited per client address: after
// maxAuthFailures failures within failureWindow of the first, every further
// failure of the client gets 429 until that window ends. Successes do not
// count, and a valid credential always passes: only failures are refused.
const (
	maxAuthFailures = 10
	failureWindow   = time.Minute
	// maxTrackedClients bounds the limiter's memory.
	maxTrackedClients = 10000
)

// auditUserKey is the gin context key of the name the audit log records: the
// authenticated user, auth.Anonymous when vigil is open, "slack" for Slack's
// route.
const auditUserKey = "vigil.audit_user"

// access is the per-handler state of authentication: the failure limiter and
// the audit log.
type access struct {
	limiter  *failureLimiter
	audit    *auditLog
	sessions *sessionStore
}

func newAccess(now func() time.Time) *access {
	return &access{
		limiter:  &failureLimiter{now: now, clients: map[string]*failures{}},
		audit:    newAuditLog(auditSize, now),
		sessions: newSessionStore(now),
	}
}

// authenticate decides a request to a route that needs permission. It
// answers the request itself and returns false when the request may not go
// on. Tokens are read from the Authorization header only: "Bearer <token>",
// or "Basic" with the user's name and one of its tokens as the password, for
// Grafana's data source. A token in the query string is refused, because URLs
// end up in logs, proxies and browser histories. No token is ever logged or
// written to a response. Routes of the operator page (page) also take the
// session cookie of a signed-in browser, and then a CSRF token on every form
// post (see authenticateSession).
func (h *Handler) authenticate(c *gin.Context, permission string, page bool) bool {
	switch permission {
	case permOpen:
		return true
	case permSlack:
		c.Set(auditUserKey, "slack")
		return true
	}
	// A browser on another site can post to vigil without any token when it
	// runs open, and with a signed-in session's cookie otherwise: mutating
	// calls from other origins are refused on every guarded route.
	if mutating(c.Request.Method) {
		if reason := crossSite(c.Request); reason != "" {
			h.logger.Info("Cross-site request refused", "reason", reason, "method", c.Request.Method,
				"path", c.Request.URL.Path, "client", c.ClientIP())
			apiError(c, http.StatusForbidden, "forbidden", "cross-origin requests that change things are refused")
			c.Abort()
			return false
		}
	}
	if h.opts.Auth == nil {
		// Authentication is off altogether (tests and embedders).
		return h.letInOpen(c, page)
	}
	a := h.opts.Auth()
	if a == nil {
		apiError(c, http.StatusServiceUnavailable, "unavailable", "authentication is not configured yet")
		c.Abort()
		return false
	}
	// The failure limit is checked only once credentials have failed: a
	// valid token passes even while its address is over the limit, so that
	// whoever shares an address with Grafana (an ingress, a NAT) cannot
	// lock it out by sending bad tokens.
	client := c.ClientIP()
	q := c.Request.URL.Query()
	if q.Has("token") || q.Has("access_token") {
		h.refuse(c, client, "token in the query string",
			"tokens in the URL are refused: send the header Authorization: Bearer <token>")
		return false
	}
	if a.Open() && !h.localHost(c.Request.Host) {
		// Open, vigil is only for whoever reaches it by address, localhost
		// or its external URL: another name that resolves to it is a DNS
		// rebinding page reading or acting through a browser.
		h.logger.Info("Request for an unknown host refused while authentication is off", "host", c.Request.Host,
			"path", c.Request.URL.Path, "client", c.ClientIP())
		apiError(c, http.StatusForbidden, "forbidden", fmt.Sprintf("host %q is not this vigil's: authentication is off, "+
			"so only IP addresses, localhost, names without a dot and the external URL's host are served", c.Request.Host))
		c.Abort()
		return false
	}
	if a.Open() {
		// Anonymous acts in the audit log; an incident's "by" stays what
		// the caller says (userKey is left unset).
		user, _ := a.Authenticate("")
		c.Set(auditUserKey, user.Name)
		c.Set(authUserKey, user)
		return h.letInOpen(c, page)
	}
	if page && c.GetHeader("Authorization") == "" {
		return h.authenticateSession(c, a, permission)
	}
	user, presented, err := credentials(c.Request, a)
	if !presented {
		c.Header("WWW-Authenticate", `Bearer realm="vigil"`)
		apiError(c, http.StatusUnauthorized, "unauthorized", "authentication required: send the header Authorization: Bearer <token>")
		c.Abort()
		return false
	}
	if errors.Is(err, auth.ErrExpired) {
		h.refuse(c, client, "expired token", err.Error()+": ask for a new one")
		return false
	}
	if err != nil {
		h.refuse(c, client, "invalid credentials", "invalid token")
		return false
	}
	h.setUser(c, user)
	if !permits(c, user, permission) {
		apiError(c, http.StatusForbidden, "forbidden", fmt.Sprintf("user %q lacks the permission %q", user.Name, permission))
		c.Abort()
		return false
	}
	return true
}

// letInOpen lets a request in while no token is needed. No cookie stands
// between another site and an open vigil, so the page's form posts must
// carry the CSRF cookie's token.
func (h *Handler) letInOpen(c *gin.Context, page bool) bool {
	if page && mutating(c.Request.Method) && c.GetHeader("Authorization") == "" {
		return h.checkCSRF(c, "")
	}
	return true
}

// refuse answers credentials that failed and counts the failure: 401, or
// 429 with Retry-After once the client has failed too often in its window.
// reason goes to the log, msg to the client; neither holds the credentials.
func (h *Handler) refuse(c *gin.Context, client, reason, msg string) {
	wait, blocked := h.access.limiter.blocked(client)
	h.countFailure(client, reason, c)
	if blocked {
		secs := max(int(wait.Round(time.Second)/time.Second), 1)
		c.Header("Retry-After", strconv.Itoa(secs))
		apiError(c, http.StatusTooManyRequests, "too_many_requests",
			fmt.Sprintf("too many failed authentications from this client; retry in %ds", secs))
		c.Abort()
		return
	}
	c.Header("WWW-Authenticate", `Bearer realm="vigil"`)
	apiError(c, http.StatusUnauthorized, "unauthorized", msg)
	c.Abort()
}

// countFailure counts a failed authentication of client and logs it; reason
// never holds the credentials.
func (h *Handler) countFailure(client, reason string, c *gin.Context) {
	if h.access.limiter.fail(client) {
		h.logger.Warn("Client blocked after repeated failed authentication",
			"client", client, "failures", maxAuthFailures, "for", failureWindow)
	}
	h.logger.Info("Authentication failed", "reason", reason, "client", client,
		"method", c.Request.Method, "path", c.Request.URL.Path)
}

// credentials checks the request's Authorization header. presented is false
// when there is no header at all; err says why credentials that were
// presented fail (auth.ErrExpired for an expired token).
func credentials(r *http.Request, a *auth.Authenticator) (user auth.User, presented bool, err error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return auth.User{}, false, nil
	}
	invalid := errors.New("invalid token")
	scheme, rest, _ := strings.Cut(header, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		token := strings.TrimSpace(rest)
		if token == "" {
			return auth.User{}, true, invalid
		}
		user, err = a.Check(auth.SumOf(token))
		return user, true, err
	case strings.EqualFold(scheme, "Basic"):
		name, password, okBasic := r.BasicAuth()
		if !okBasic || password == "" {
			return auth.User{}, true, invalid
		}
		user, err = a.CheckBasic(name, password)
		return user, true, err
	}
	return auth.User{}, true, invalid
}

// failures counts one client's failed authentications since start.
type failures struct {
	start time.Time
	count int
}

// failureLimiter counts failed authentications per client in fixed windows.
type failureLimiter struct {
	now func() time.Time

	mu      sync.Mutex
	clients map[string]*failures
}

// blocked reports whether client has failed too often in its current window,
// and how long the window still runs.
func (l *failureLimiter) blocked(client string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.clients[client]
	if !ok {
		return 0, false
	}
	left := failureWindow - l.now().Sub(f.start)
	if left <= 0 {
		delete(l.clients, client)
		return 0, false
	}
	return left, f.count >= maxAuthFailures
}

// fail counts a failure of client and reports whether it blocks the client.
func (l *failureLimiter) fail(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if f, ok := l.clients[client]; ok && now.Sub(f.start) < failureWindow {
		f.count++
		return f.count == maxAuthFailures
	}
	if len(l.clients) >= maxTrackedClients {
		l.evict(now)
	}
	l.clients[client] = &failures{start: now, count: 1}
	return maxAuthFailures == 1
}

// evict drops the clients whose window is over, or else the one whose window
// started first, so that the map stays bounded.
func (l *failureLimiter) evict(now time.Time) {
	var oldest string
	var oldestStart time.Time
	for client, f := range l.clients {
		if now.Sub(f.start) >= failureWindow {
			delete(l.clients, client)
			continue
		}
		if oldest == "" || f.start.Before(oldestStart) {
			oldest, oldestStart = client, f.start
		}
	}
	if len(l.clients) >= maxTrackedClients {
		delete(l.clients, oldest)
	}
}

// crossSite returns why a request comes from another site, or "": the
// browser says so in Sec-Fetch-Site, or its Origin is not the host it asks.
// Requests from programs (curl, Grafana, deploy controllers) carry neither
// header and pass.
func crossSite(r *http.Request) string {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "Sec-Fetch-Site: " + r.Header.Get("Sec-Fetch-Site")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Host != r.Host {
		return fmt.Sprintf("origin %q is not host %q", origin, r.Host)
	}
	return ""
}

// localHost reports whether host (with or without a port) is one a DNS
// rebinding page cannot use: an IP address, localhost, a single-label name
// (a compose service or a local machine name, which public DNS cannot hand
// out), or the external URL's host.
func (h *Handler) localHost(host string) bool {
	name := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		name = hn
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	switch {
	case name == "":
		return true
	case net.ParseIP(name) != nil:
		return true
	case strings.EqualFold(name, "localhost"), strings.HasSuffix(strings.ToLower(name), ".localhost"):
		return true
	case !strings.Contains(name, "."):
		return true
	}
	return h.opts.ExternalURL != nil && strings.EqualFold(name, h.opts.ExternalURL.Hostname())
}
