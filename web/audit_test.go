package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

func TestAuditLog(t *testing.T) {
	f := newAuthFixture(t)
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Incidents = incs })
	clock := &testClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	env.h.access.audit.now = clock.Now

	steps := []struct {
		role   string
		method string
		path   string
		body   string
		want   int
	}{
		// The developer says someone else acked: the token's user wins.
		{"developer", http.MethodPost, "/api/v1/incidents/a/ack", `{"by":"mallory","comment":"on it"}`, 200},
		{"viewer", http.MethodPost, "/api/v1/incidents/a/resolve", "", 403},
		{"", http.MethodPost, "/-/reload", "", 401},
		{"admin", http.MethodGet, "/api/v1/incidents", "", 200},
		{"admin", http.MethodPost, "/-/reload", "", 200},
	}
	for _, s := range steps {
		authz := ""
		if s.role != "" {
			authz = bearer(f.tokens[s.role])
		}
		rec := serve(env.h, "127.0.0.1", s.method, s.path, authz, strings.NewReader(s.body))
		require.Equal(t, s.want, rec.Code, "%s %s: %s", s.method, s.path, rec.Body.String())
		clock.Add(time.Second)
	}
	require.Equal(t, "dave", incs.m["a"].AcknowledgedBy)
	require.Equal(t, notifier.StateAcknowledged, incs.m["a"].State)

	read := func(query string) (int, []AuditRecord) {
		rec := serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/audit"+query, bearer(f.tokens["admin"]), nil)
		var body struct {
			Status string        `json:"status"`
			Data   []AuditRecord `json:"data"`
		}
		if rec.Code == http.StatusOK {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, "success", body.Status)
		}
		return rec.Code, body.Data
	}
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	status, got := read("")
	require.Equal(t, http.StatusOK, status)
	// Newest first; reads are not recorded.
	require.Equal(t, []AuditRecord{
		{Time: at(4), User: "alice", Method: "POST", Path: "/-/reload", Status: 200, Client: "127.0.0.1"},
		{Time: at(2), User: "", Method: "POST", Path: "/-/reload", Status: 401, Client: "127.0.0.1"},
		{Time: at(1), User: "vic", Method: "POST", Path: "/api/v1/incidents/a/resolve", Status: 403, Client: "127.0.0.1"},
		{Time: at(0), User: "dave", Method: "POST", Path: "/api/v1/incidents/a/ack", Status: 200, Client: "127.0.0.1"},
	}, got)

	tests := []struct {
		query      string
		wantStatus int
		wantLen    int
	}{
		{"?limit=1", 200, 1},
		{"?limit=100000", 200, 4},
		{"?limit=0", 400, 0},
		{"?limit=x", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, got := read(tt.query)
			require.Equal(t, tt.wantStatus, status)
			require.Len(t, got, tt.wantLen)
		})
	}
}

func TestAuditRing(t *testing.T) {
	l := newAuditLog(3, time.Now)
	require.Empty(t, l.newest(10))
	for i := range 5 {
		l.add(AuditRecord{Status: i})
	}
	tests := []struct {
		limit int
		want  []int
	}{
		{10, []int{4, 3, 2}},
		{2, []int{4, 3}},
		{1, []int{4}},
	}
	for _, tt := range tests {
		var got []int
		for _, r := range l.newest(tt.limit) {
			got = append(got, r.Status)
		}
		require.Equal(t, tt.want, got, "limit %d", tt.limit)
	}
}

// failingStore is an AuditStore whose writes fail.
type failingStore struct{ *notifier.MemKV }

func (failingStore) Put(string, []byte) error { return errors.New("disk full") }

// TestAuditLogSurvivesRestart: with a store the audit log is there after a
// restart, bounded to auditSize; queries sent by POST (as Grafana does) are
// not audited; a store that fails loses nothing from memory.
func TestAuditLogSurvivesRestart(t *testing.T) {
	f := newAuthFixture(t)
	store, err := notifier.OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	kv := store.KV("audit")
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	withStore := func(o *Options) {
		o.Incidents = incs
		o.AuditStore = kv
	}

	env := newTestEnv(t, f.withAuth, withStore)
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/incidents/a/ack", bearer(f.tokens["developer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	rec = serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/query", bearer(f.tokens["viewer"]), strings.NewReader("query=up"))
	require.NotEqual(t, http.StatusUnauthorized, rec.Code)
	require.Len(t, env.h.access.audit.newest(10), 1, "a query is not a mutating call")

	// A new handler on the same store (a restart) has the record.
	again := newTestEnv(t, f.withAuth, withStore)
	got := again.h.access.audit.newest(10)
	require.Len(t, got, 1)
	require.Equal(t, "dave", got[0].User)
	require.Equal(t, "/api/v1/incidents/a/ack", got[0].Path)

	// The store keeps auditSize records and at most a tenth more: past
	// that the oldest go, down to auditSize.
	slack := auditSize / 10
	for i := range auditSize + slack - 1 { // dave's is stored already
		require.NoError(t, again.h.access.audit.add(AuditRecord{Time: time.Unix(int64(2e9+i), 0), User: fmt.Sprint("u", i)}))
	}
	stored, err := kv.List(auditKeyPrefix)
	require.NoError(t, err)
	require.Len(t, stored, auditSize+slack, "trimmed before a tenth more was written")
	require.NoError(t, again.h.access.audit.add(AuditRecord{Time: time.Unix(int64(2e9+auditSize+slack-1), 0), User: fmt.Sprint("u", auditSize+slack-1)}))
	stored, err = kv.List(auditKeyPrefix)
	require.NoError(t, err)
	require.Len(t, stored, auditSize)
	third := newTestEnv(t, f.withAuth, withStore)
	newest := third.h.access.audit.newest(auditSize)
	require.Len(t, newest, auditSize)
	require.Equal(t, fmt.Sprint("u", auditSize+slack-1), newest[0].User)
	require.Equal(t, fmt.Sprint("u", slack), newest[auditSize-1].User)

	// A store that cannot write: the call is answered and kept in memory.
	broken := newTestEnv(t, f.withAuth, func(o *Options) {
		o.Incidents = incs
		o.AuditStore = failingStore{notifier.NewMemKV()}
	})
	rec = serve(broken.h, "127.0.0.1", http.MethodPost, "/api/v1/incidents/a/resolve", bearer(f.tokens["developer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "/api/v1/incidents/a/resolve", broken.h.access.audit.newest(1)[0].Path)
}

// TestAuditPathBounded: a huge path from a caller without a token costs the
// audit log 256 bytes, not megabytes.
func TestAuditPathBounded(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)
	long := "/api/v1/incidents/" + strings.Repeat("é", 100_000) + "/ack"
	rec := serve(env.h, "127.0.0.9", http.MethodPost, long, "", nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	got := env.h.access.audit.newest(1)[0].Path
	require.LessOrEqual(t, len(got), maxAuditPath+len("…(cut)"))
	require.True(t, strings.HasSuffix(got, "…(cut)"))
	require.True(t, utf8.ValidString(got))
	require.Equal(t, "/health", auditPath("/health"))
}
