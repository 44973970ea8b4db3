package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// TestHAAuditLogShared: two gateways on one PostgreSQL store each list the
// calls made on the other, made after both started.
func TestHAAuditLogShared(t *testing.T) {
	f := newAuthFixture(t)
	stores := storetest.SharedPostgres(t, 2)
	incs := &fakeIncidents{m: map[string]notifier.Incident{"a": {ID: "a", State: notifier.StateTriggered}}}
	var envs [2]*testEnv
	for i, s := range stores {
		envs[i] = newTestEnv(t, f.withAuth, func(o *Options) {
			o.Incidents = incs
			o.AuditStore = s.KV("audit")
		})
	}
	clock := &testClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	for _, e := range envs {
		e.h.access.audit.now = clock.Now
	}
	// A acks, B resolves, A is refused a reload: one second apart.
	calls := []struct {
		gw     int
		role   string
		path   string
		status int
	}{
		{0, "developer", "/api/v1/incidents/a/ack", 200},
		{1, "developer", "/api/v1/incidents/a/resolve", 200},
		{0, "viewer", "/-/reload", 403},
	}
	for _, c := range calls {
		rec := serve(envs[c.gw].h, "127.0.0.1", http.MethodPost, c.path, bearer(f.tokens[c.role]), nil)
		require.Equal(t, c.status, rec.Code, rec.Body.String())
		clock.Add(time.Second)
	}
	for i, e := range envs {
		rec := serve(e.h, "127.0.0.1", http.MethodGet, "/api/v1/audit?limit=2", bearer(f.tokens["admin"]), nil)
		require.Equal(t, http.StatusOK, rec.Code)
		var body struct {
			Data []AuditRecord `json:"data"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		var got []string
		for _, r := range body.Data {
			got = append(got, fmt.Sprintf("%s %s %d", r.User, r.Path, r.Status))
		}
		require.Equal(t, []string{"vic /-/reload 403", "dave /api/v1/incidents/a/resolve 200"}, got, "gateway %d", i)
	}
}

// TestHAAuditTrimTwoWriters: two gateways writing one store in turn, the
// same nanosecond included, keep every one of the newest records and
// trim the store to the log's size.
func TestHAAuditTrimTwoWriters(t *testing.T) {
	kv := notifier.NewMemKV()
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return at }
	var logs [2]*auditLog
	for i := range logs {
		logs[i] = newAuditLog(5, now)
		require.NoError(t, logs[i].useStore(kv))
	}
	for i := range 23 {
		if i%4 != 3 { // a few calls on both gateways in the same nanosecond
			at = at.Add(time.Second)
		}
		require.NoError(t, logs[i%2].add(AuditRecord{Time: at, Status: i}))
	}
	stored, err := kv.List(auditKeyPrefix)
	require.NoError(t, err)
	require.LessOrEqual(t, len(stored), 5+1, "trimmed to the size, give or take the other writer's last record")
	for _, l := range logs {
		var got []int
		for _, r := range l.newest(5) {
			got = append(got, r.Status)
		}
		require.ElementsMatch(t, []int{22, 21, 20, 19, 18}, got, "both gateways list the newest of both")
	}
}
