package web

import (
	"crypto/rand"
	"encoding/hex"
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
// Two gateways of an HA pair share one: each writes its own records under
// keys unique across both and lists those of both.
type AuditStore interface {
	Put(key string, value []byte) error
	Delete(key string) error
	List(prefix string) (map[string][]byte, error)
}

// auditLog keeps the last calls in a ring in memory and, with a store, in
// the store too. With a store the log is read from the store, so that it
// shows the calls of every gateway sharing it and survives a restart; the
// ring then holds only the records the store refused, until it takes them.
type auditLog struct {
	now func() time.Time

	mu      sync.Mutex
	records []AuditRecord
	next    int
	full    bool

	store AuditStore
	// pending are records the store refused, oldest first, with their keys:
	// shown with the stored ones and written again at the next record.
	pending []keyedRecord
	// stored is how many records the store held at the last trim plus
	// those this gateway wrote since: past len(l.records) and a tenth it
	// trims.
	stored int
}

type keyedRecord struct {
	key string
	rec AuditRecord
}

// auditKeyPrefix starts every audit record's key; the rest sorts by time:
// "rec/<Unix nanoseconds, 20 digits>-<12 random hex digits>", the random
// part keeping keys of two gateways (or one call of each in the same
// nanosecond) apart.
const auditKeyPrefix = "rec/"

func auditKey(t time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return fmt.Sprintf("%s%020d-%s", auditKeyPrefix, t.UnixNano(), hex.EncodeToString(b[:]))
}

// useStore keeps every later record in store, reads the log from there,
// and trims what it holds beyond the log's size.
func (l *auditLog) useStore(store AuditStore) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.trim(store)
	if err != nil {
		return err
	}
	l.store, l.stored = store, n
	return nil
}

// trim deletes the oldest records of store beyond len(l.records) and
// returns how many are left. Two gateways may trim at once: each deletes
// only keys older than the newest len(l.records) it lists, which stay,
// and deleting a key twice is harmless.
func (l *auditLog) trim(store AuditStore) (int, error) {
	stored, err := store.List(auditKeyPrefix)
	if err != nil {
		return 0, fmt.Errorf("reading the audit log: %w", err)
	}
	keys := slices.Sorted(maps.Keys(stored))
	for len(keys) > len(l.records) {
		if err := store.Delete(keys[0]); err != nil {
			return len(keys), fmt.Errorf("trimming the audit log: %w", err)
		}
		keys = keys[1:]
	}
	return len(keys), nil
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

// add records r in the ring and in the store. A store error is returned;
// the record is then kept in memory, shown, and written again with the
// next one.
func (l *auditLog) add(r AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.put(r)
	if l.store == nil {
		return nil
	}
	l.pending = append(l.pending, keyedRecord{key: auditKey(r.Time), rec: r})
	if len(l.pending) > len(l.records) {
		l.pending = l.pending[len(l.pending)-len(l.records):]
	}
	for len(l.pending) > 0 {
		p := l.pending[0]
		b, err := json.Marshal(p.rec)
		if err != nil {
			return err
		}
		if err := l.store.Put(p.key, b); err != nil {
			return fmt.Errorf("writing the audit record: %w", err)
		}
		l.pending = l.pending[1:]
		l.stored++
	}
	// Trimmed in steps of a tenth of the log, so that a full log is listed
	// once per that many records, not at every one.
	if l.stored > len(l.records)+max(len(l.records)/10, 1) {
		n, err := l.trim(l.store)
		l.stored = n
		if err != nil {
			return err
		}
	}
	return nil
}

// read returns up to limit records, newest first: with a store, those of
// every gateway sharing it.
func (l *auditLog) read(limit int) ([]AuditRecord, error) {
	l.mu.Lock()
	store := l.store
	pending := slices.Clone(l.pending)
	l.mu.Unlock()
	if store == nil {
		return l.fromRing(limit), nil
	}
	stored, err := store.List(auditKeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	for _, p := range pending {
		if _, ok := stored[p.key]; !ok {
			b, _ := json.Marshal(p.rec)
			stored[p.key] = b
		}
	}
	keys := slices.Sorted(maps.Keys(stored))
	slices.Reverse(keys)
	out := make([]AuditRecord, 0, min(limit, len(keys)))
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		var r AuditRecord
		if err := json.Unmarshal(stored[k], &r); err != nil {
			continue // a record that cannot be read is skipped, not fatal
		}
		out = append(out, r)
	}
	return out, nil
}

// newest is read for callers that cannot answer an error: a store that
// cannot be read gives this gateway's records in memory.
func (l *auditLog) newest(limit int) []AuditRecord {
	out, err := l.read(limit)
	if err != nil {
		return l.fromRing(limit)
	}
	return out
}

// fromRing returns up to limit records of the ring, newest first.
func (l *auditLog) fromRing(limit int) []AuditRecord {
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
	records, err := h.access.audit.read(limit)
	if err != nil {
		h.logger.Error("Audit log not read", "err", err)
		apiError(c, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	apiSuccess(c, records)
}
