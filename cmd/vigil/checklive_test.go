package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestCheckConfigLive(t *testing.T) {
	const dead = `{"status":"success","data":[{"file":"vigil.yml#alerts","group":"vigil","rule":"high_network_usage",
		"selector":"network_usage{app=\"infrastructure\",environment=\"production\"}","since":"2026-12-01T08:00:00Z"}]}`
	for _, tc := range []struct {
		name       string
		token      string
		answer     string
		status     int
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "dead rule listed", token: "secret", answer: dead, status: 200, wantCode: 0,
			wantStdout: `  warning: vigil.yml#alerts: group "vigil" rule "high_network_usage": network_usage{app="infrastructure",environment="production"} has matched no series since 2026-12-01T08:00:00Z`},
		{name: "nothing dead", token: "secret", answer: `{"status":"success","data":[]}`, status: 200, wantCode: 0,
			wantStdout: "SUCCESS: every rule input matches series"},
		{name: "no token", answer: `{"status":"error"}`, status: 401, wantCode: 1,
			wantStderr: "set VIGIL_TOKEN (or --token-file) to a token with view_metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, "/api/v1/rules/dead", r.URL.Path)
				if r.Header.Get("Authorization") != "Bearer secret" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.answer))
			}))
			defer srv.Close()
			t.Setenv("VIGIL_TOKEN", tc.token)
			var stdout, stderr bytes.Buffer
			code := execute([]string{"check", "config", "--live", srv.URL}, &stdout, &stderr)
			require.Equal(t, tc.wantCode, code, stdout.String()+stderr.String())
			// Flags may follow the files, too.
			stdout.Reset()
			stderr.Reset()
			cfg := filepath.Join(t.TempDir(), "vigil.yml")
			require.NoError(t, os.WriteFile(cfg, []byte("service: checkout\nenvironment: development\n"), 0o600))
			code = execute([]string{"check", "config", cfg, "--live", srv.URL}, &stdout, &stderr)
			require.Contains(t, stdout.String(), "Checking "+cfg+"\n  SUCCESS")
			require.Equal(t, tc.wantCode, code, stdout.String()+stderr.String())
			require.Contains(t, stdout.String(), tc.wantStdout)
			require.Contains(t, stderr.String(), tc.wantStderr)
		})
	}
}

// --token-file is read with the bounds of the config's secret files: a
// named pipe or a device is refused at once (not read until it ends), and a
// file over 64 KiB is refused rather than read whole.
func TestCheckLiveTokenFileBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "token.fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "token.big")
	require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte("x"), config.MaxSecretFileSize+1), 0o600))
	good := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(good, []byte("secret\n"), 0o600))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":[]}`))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, file, wantStderr string
		wantCode               int
	}{
		{"named pipe", fifo, "not a regular file (it is a named pipe)", 1},
		{"device", "/dev/zero", "not a regular file", 1},
		{"too large", big, "file too large: more than 64 KiB", 1},
		{"token", good, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- execute([]string{"check", "config", "--live", srv.URL, "--token-file", tc.file}, &stdout, &stderr)
			}()
			select {
			case code := <-done:
				require.Equal(t, tc.wantCode, code, stdout.String()+stderr.String())
				require.Contains(t, stderr.String(), tc.wantStderr)
			case <-time.After(10 * time.Second):
				t.Fatal("--token-file blocked")
			}
		})
	}
}
