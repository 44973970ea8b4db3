package web

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// permManageUsers guards the users endpoints and the audit log.
const permManageUsers = "manage_users"

// auditSize is how many calls the audit log keeps, and the most
// GET /api/v1/audit returns; defaultAuditLimit is what it returns by default.
const (
	auditSize         = 1000
	defaultAuditLimit = 100
)

// AuditRecord is one mutating call to vigil's API: who, what, when, result.
// User is empty when the caller did not authenticate.
type AuditRecord struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Client string    `json:"client"`
}

// auditLog keeps the last calls in a ring, in memory: it starts empty when
// vigil starts. The log lines it writes at info level are the durable record.
type auditLog struct {
	now func() time.Time

	mu      sync.Mutex
	records []AuditRecord
	next    int
	full    bool
}

func newAuditLog(size int, now func() time.Time) *auditLog {
	return &auditLog{now: now, records: make([]AuditRecord, size)}
}

func (l *auditLog) add(r AuditRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records[l.next] = r
	l.next = (l.next + 1) % len(l.records)
	if l.next == 0 {
		l.full = true
	}
}

// newest returns up to limit records, newest first.
func (l *auditLog) newest(limit int) []AuditRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	if l.full {
		n = len(l.records)
	}
	n = min(n, limit)
	out := make([]AuditRecord, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.records[(l.next-i+len(l.records))%len(l.records)])
	}
	return out
}

func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// audit records a mutating call once it has been answered, refused or not.
// The path goes without its query string, which may hold what a client
// should not have sent there.
func (h *Handler) audit(c *gin.Context) {
	user, _ := c.Get(auditUserKey)
	name, _ := user.(string)
	l := h.access.audit
	r := AuditRecord{
		Time:   l.now(),
		User:   name,
		Method: c.Request.Method,
		Path:   c.Request.URL.Path,
		Status: c.Writer.Status(),
		Client: c.ClientIP(),
	}
	l.add(r)
	h.logger.Info("Audit", "user", r.User, "method", r.Method, "path", r.Path, "status", r.Status, "client", r.Client)
}

// listAudit answers GET /api/v1/audit?limit=N with the newest calls first.
func (h *Handler) listAudit(c *gin.Context) {
	limit := defaultAuditLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			apiError(c, http.StatusBadRequest, "bad_data", fmt.Sprintf("limit %q is not a positive number", v))
			return
		}
		limit = min(n, auditSize)
	}
	apiSuccess(c, h.access.audit.newest(limit))
}
