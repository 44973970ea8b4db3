package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/backup"
)

// TestBackupsAPI: the backup job records backups with POST /api/v1/backups
// under the backup permission, which the seed's admin has (through
// manage_roles) and its developer does not; the records are listed newest
// first and exported as vigil_backup_* metrics.
func TestBackupsAPI(t *testing.T) {
	seed := newSeedAccess(t, nil)
	a, err := auth.New(seed.cfg)
	require.NoError(t, err)
	store, err := notifier.OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	backups, err := backup.New(&backup.Options{KV: store.KV("backup"), Clock: func() time.Time { return now }}, nil, reg)
	require.NoError(t, err)
	env := newTestEnv(t, func(o *Options) {
		o.Auth = func() *auth.Authenticator { return a }
		o.Backups = backups
	})
	env.h.SetReady(true)
	post := func(user, body string) (int, map[string]any) {
		rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/backups", bearer(seed.tokens[user]), strings.NewReader(body))
		var out map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
		return rec.Code, out
	}

	code, _ := post("developer", `{"time": "2026-12-02T00:00:05Z", "size": 1024}`)
	require.Equal(t, http.StatusForbidden, code, "developer has no backup permission")

	code, out := post("admin", `{"time": "2026-12-02T00:00:05Z", "size": 1048576, "location": "s3://backups/2026-12-02.tar.zst"}`)
	require.Equal(t, http.StatusOK, code, "%v", out)
	data := out["data"].(map[string]any)
	require.Equal(t, true, data["ok"], "ok defaults to true")
	require.Equal(t, "admin", data["by"])
	code, _ = post("admin", `{"time": "2026-12-02T00:30:00Z", "ok": false, "error": "disk full"}`)
	require.Equal(t, http.StatusOK, code)
	code, out = post("admin", `{"time": "2026-12-03T00:00:00Z"}`)
	require.Equal(t, http.StatusBadRequest, code, "a day in the future")
	require.Contains(t, out["error"], "in the future")
	code, _ = post("admin", `{"size": -1}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, out = post("admin", `{"time": "yesterday"}`)
	require.Equal(t, http.StatusBadRequest, code, "a body that is not a backup")
	require.Equal(t, "bad_data", out["errorType"])
	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/backups", "", strings.NewReader(`{"time": "2026-12-02T00:00:05Z"}`))
	require.Equal(t, http.StatusUnauthorized, rec.Code, "no token, no record")

	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/backups", bearer(seed.tokens["viewer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var list struct{ Data []backup.Backup }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list.Data, 2)
	require.False(t, list.Data[0].OK)
	require.Equal(t, "disk full", list.Data[0].Error)
	require.Equal(t, int64(1048576), list.Data[1].Size)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/backups?limit=1", bearer(seed.tokens["viewer"]), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list.Data, 1)
	require.Equal(t, "disk full", list.Data[0].Error, "the newest first")
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/backups?limit=x", bearer(seed.tokens["viewer"]), nil)
	require.Equal(t, http.StatusBadRequest, rec.Code)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_backup_failures_total Failed backups recorded (ok: false), kept across restarts.
# TYPE vigil_backup_failures_total counter
vigil_backup_failures_total 1
# HELP vigil_backup_last_size_bytes Size of the newest successful backup recorded.
# TYPE vigil_backup_last_size_bytes gauge
vigil_backup_last_size_bytes 1.048576e+06
# HELP vigil_backup_last_success_timestamp_seconds Unix time of the newest successful backup recorded (POST /api/v1/backups); absent before the first.
# TYPE vigil_backup_last_success_timestamp_seconds gauge
vigil_backup_last_success_timestamp_seconds 1.796169605e+09
`), "vigil_backup_failures_total", "vigil_backup_last_size_bytes", "vigil_backup_last_success_timestamp_seconds"))
}
