package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBackupMissedEndToEnd: with a per-minute backup schedule, a backup job
// whose last report (POST /api/v1/backups) is three minutes old raises
// vigil's own backup_missed, listed among vigil's own rules; a fresh backup
// clears it; the record is exported on /metrics.
func TestBackupMissedEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freePort(t)
	file := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(`service: checkout
environment: development
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text, output: stdout}
metrics: {interval: 1s}
alerts: {evaluation_interval: 1s}
backup:
  schedule: "* * * * *"
  retention: 1d
  storage: local
`, filepath.Join(dir, "data"), addr)), 0o644))
	v := startVigil(t, file, addr)

	post := func(body string) {
		t.Helper()
		resp, err := http.Post(v.url("/api/v1/backups"), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	}
	missed := func() (float64, bool) {
		for _, a := range v.alerts() {
			if a.Name == "backup_missed" && a.State == "firing" {
				return a.Value, true
			}
		}
		return 0, false
	}

	post(`{"time": "` + time.Now().Add(-3*time.Minute).UTC().Format(time.RFC3339) + `", "size": 2048, "location": "file:///backups/1"}`)
	var value float64
	require.Eventually(t, func() bool {
		var ok bool
		value, ok = missed()
		return ok
	}, 30*time.Second, 100*time.Millisecond, "backup_missed did not fire")
	require.InDelta(t, 180, value, 30, "the last backup's age")

	resp, err := http.Get(v.url("/api/v1/rules?type=alert"))
	require.NoError(t, err)
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name  string `json:"name"`
					Query string `json:"query"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rules))
	resp.Body.Close()
	var query string
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			if r.Name == "backup_missed" {
				require.Equal(t, "vigil-own-rules", g.Name)
				query = r.Query
			}
		}
	}
	require.Contains(t, query, "> 120", "a minute's period and a minute's grace")

	post(`{"size": 4096, "location": "file:///backups/2"}`)
	require.Eventually(t, func() bool { _, ok := missed(); return !ok }, 30*time.Second, 100*time.Millisecond,
		"backup_missed did not clear after a fresh backup")

	resp, err = http.Get(v.url("/metrics"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "vigil_backup_last_size_bytes 4096")
	require.Contains(t, string(body), "vigil_backup_failures_total 0")
}
