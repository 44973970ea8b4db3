package web

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

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

// AuditStore keeps audit records across restarts; notifier.KV satisfies it.
type AuditStore interface {
	Put(key string, value []byte) error
	Delete(key string) error
	List(prefix string) (map[string][]byte, error)
}

// auditLog keeps the last calls in a ring in memory and, with a store, on
// disk too: the ring is reloaded from the store at start, so a restart (or
// a crash) loses none of the last auditSize calls.
type auditLog struct {
	now func() time.Time

	mu      sync.Mutex
	records []AuditRecord
	next    int
	full    bool

	store AuditStore
	// keys are the store keys of the records in the ring, oldest first.
	keys []string
	seq  uint64
}

// auditKeyPrefix starts every audit record's key; the rest sorts by time.
const auditKeyPrefix = "rec/"

// useStore loads the newest records from store into the ring and keeps
// every later record there as well. Records beyond auditSize are deleted.
func (l *auditLog) useStore(store AuditStore) error {
	stored, err := store.List(auditKeyPrefix)
	if err != nil {
		return fmt.Errorf("reading the audit log: %w", err)
	}
	keys := slices.Sorted(maps.Keys(stored))
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(keys) > len(l.records) {
		if err := store.Delete(keys[0]); err != nil {
			return fmt.Errorf("trimming the audit log: %w", err)
		}
		keys = keys[1:]
	}
	for _, k := range keys {
		var r AuditRecord
		if err := json.Unmarshal(stored[k], &r); err != nil {
			continue // a record that cannot be read is skipped, not fatal
		}
		l.put(r)
		l.keys = append(l.keys, k)
	}
	l.store = store
	return nil
}

// put adds r to the ring; l.mu is held.
func (l *auditLog) put(r AuditRecord) {
	l.records[l.next] = r
	l.next = (l.next + 1) % len(l.records)
	if l.next == 0 {
		l.full = true
	}
}

func newAuditLog(size int, now func() time.Time) *auditLog {
	return &auditLog{now: now, records: make([]AuditRecord, size)}
}

// add records r in the ring and in the store. A store error is returned,
// the record stays in the ring.
func (l *auditLog) add(r AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.put(r)
	if l.store == nil {
		return nil
	}
	l.seq++
	key := fmt.Sprintf("%s%020d-%06d", auditKeyPrefix, r.Time.UnixNano(), l.seq%1e6)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := l.store.Put(key, b); err != nil {
		return fmt.Errorf("writing the audit record: %w", err)
	}
	l.keys = append(l.keys, key)
	if len(l.keys) > len(l.records) {
		if err := l.store.Delete(l.keys[0]); err != nil {
			return fmt.Errorf("trimming the audit log: %w", err)
		}
		l.keys = l.keys[1:]
	}
	return nil
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

// maxAuditPath bounds the path an audit record keeps: a refused request may
// carry a path of a megabyte, and nobody should fill the store or the log
// with them.
const maxAuditPath = 256

// auditPath is path, cut to maxAuditPath bytes (on a rune boundary) with a
// mark that it was cut.
func auditPath(path string) string {
	if len(path) <= maxAuditPath {
		return path
	}
	cut := maxAuditPath
	for cut > 0 && !utf8.RuneStart(path[cut]) {
		cut--
	}
	return path[:cut] + "…(cut)"
}

// audited reports whether calls to a route go into the audit log: calls
// that may change something. Prometheus's API takes POST for queries
// (Grafana sends them so), which change nothing. Senders' alert posts
// (ingest) are a machine's stream, one every few seconds, that would push
// people's actions out of the log: the alerts are kept in the store, and
// refused posts are logged and counted as failures.
func audited(method, permission string) bool {
	return mutating(method) && permission != permViewMetrics && permission != permIngest
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
		Path:   auditPath(c.Request.URL.Path),
		Status: c.Writer.Status(),
		Client: c.ClientIP(),
	}
	if err := l.add(r); err != nil {
		h.logger.Error("Audit record not stored; it is in this log line and in memory", "err", err)
	}
	h.logger.Info("Audit", "user", r.User, "method", r.Method, "path", r.Path, "status", r.Status, "client", r.Client)
}

// listAudit answers GET /api/v1/audit?limit=N with the newest calls first.
func (h *Handler) listAudit(c *gin.Context) {
	limit, ok := limitParam(c, defaultAuditLimit, auditSize)
	if !ok {
		return
	}
	apiSuccess(c, h.access.audit.newest(limit))
}
