package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/testutil"
)

// statusOf returns the Status entry of log name, failing the test if absent.
func statusOf(t *testing.T, m *Manager, name string) LogStatus {
	t.Helper()
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for log %q", name)
	return LogStatus{}
}

func statusNames(m *Manager) []string {
	var names []string
	for _, s := range m.Status() {
		names = append(names, s.Name)
	}
	return names
}

// twoLogs configures logs "web" (src/web/*.log) and "api" (src/api/*.log).
func twoLogs(t *testing.T, src, lokiURL string) *config.Config {
	t.Helper()
	cfg := testConfig(filepath.Join(src, "web"), "", lokiURL)
	cfg.Collectors.Logs[0].Name = "web"
	api := cfg.Collectors.Logs[0]
	api.Name = "api"
	api.Paths = []string{filepath.Join(src, "api", "*.log")}
	cfg.Collectors.Logs = append(cfg.Collectors.Logs, api)
	require.NoError(t, os.MkdirAll(filepath.Join(src, "web"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(src, "api"), 0o755))
	return cfg
}

// TestStatusFilesLinesAndOutput: lines are counted, the files followed
// follow renames and rotation, output errors show and clear, and a log
// without Loki says so.
func TestStatusFilesLinesAndOutput(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	// The output directory is a regular file: writes fail until it is
	// replaced by a directory.
	outDir := filepath.Join(dir, "out")
	require.NoError(t, os.WriteFile(outDir, nil, 0o644))
	out := filepath.Join(outDir, "app.log")
	r := start(t, testOptions(filepath.Join(dir, "data")), testConfig(src, out, ""))

	st := statusOf(t, r.m, "app")
	require.Zero(t, st.Lines)
	require.True(t, st.LastLine.IsZero())
	require.Equal(t, out, st.File)
	require.False(t, st.Loki)

	a := filepath.Join(src, "a.log")
	before := time.Now()
	appendLines(t, a, 0, 10)
	eventually(t, "10 lines", func() bool { return statusOf(t, r.m, "app").Lines == 10 })
	st = statusOf(t, r.m, "app")
	require.Equal(t, []string{a}, st.Files)
	require.False(t, st.LastLine.Before(before), "LastLine %v before the write at %v", st.LastLine, before)
	require.False(t, st.LastLine.After(time.Now()))
	require.Contains(t, st.FileError, "not a directory")
	require.False(t, st.Loki)
	require.Zero(t, st.LokiSent)
	require.Zero(t, st.LokiFailed)
	require.Empty(t, st.LokiError)
	require.True(t, st.LastPush.IsZero())

	// The next successful write clears the error.
	require.NoError(t, os.Remove(outDir))
	require.NoError(t, os.MkdirAll(outDir, 0o755))
	lastLine := st.LastLine
	appendLines(t, a, 10, 15)
	eventually(t, "15 lines", func() bool { return statusOf(t, r.m, "app").Lines == 15 })
	st = statusOf(t, r.m, "app")
	require.Empty(t, st.FileError)
	require.True(t, st.LastLine.After(lastLine))

	// A rename to a name the glob matches shows under the new name.
	b, c := filepath.Join(src, "b.log"), filepath.Join(src, "c.log")
	appendLines(t, b, 15, 20)
	eventually(t, "b.log followed", func() bool {
		return fmt.Sprint(statusOf(t, r.m, "app").Files) == fmt.Sprint([]string{a, b})
	})
	require.NoError(t, os.Rename(b, c))
	eventually(t, "b.log followed as c.log", func() bool {
		return fmt.Sprint(statusOf(t, r.m, "app").Files) == fmt.Sprint([]string{a, c})
	})

	// logrotate, create mode: a.log renamed out of the glob, written to a
	// little more by the app, then created again.
	old, err := os.OpenFile(a, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	require.NoError(t, os.Rename(a, a+".1"))
	writeLines(t, old, 20, 25)
	require.NoError(t, old.Close())
	eventually(t, "the rotated file to leave Files", func() bool {
		st := statusOf(t, r.m, "app")
		return st.Lines == 25 && fmt.Sprint(st.Files) == fmt.Sprint([]string{c})
	})
	appendLines(t, a, 25, 30)
	eventually(t, "the new a.log", func() bool {
		st := statusOf(t, r.m, "app")
		return st.Lines == 30 && fmt.Sprint(st.Files) == fmt.Sprint([]string{a, c})
	})
	last, err := r.m.Lines("app", 1)
	require.NoError(t, err)
	require.Equal(t, lineText(29), last[0].Line)

	// Once Run has returned nothing is followed; the counts stay.
	r.stop(t)
	st = statusOf(t, r.m, "app")
	require.Empty(t, st.Files)
	require.EqualValues(t, 30, st.Lines)
}

// TestStatusLoki: while Loki answers 500 every log shows the error and
// lines dropped after the retries count as failed, per log; once Loki
// recovers the error clears and accepted lines count as sent, per log.
// No credential of the URL and no tenant ID shows.
func TestStatusLoki(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	rcv := newLokiReceiver(t)
	rcv.failures.Store(1 << 40)
	u, err := url.Parse(rcv.url())
	require.NoError(t, err)
	u.User = url.UserPassword("vigil-user", "s3cret-pass")
	u.RawQuery = "api_key=t0ken-value"
	cfg := twoLogs(t, src, u.String())
	opts := testOptions(filepath.Join(dir, "data"))
	opts.LokiMaxRetries = 2
	r := start(t, opts, cfg)
	require.Equal(t, []string{"api", "web"}, statusNames(r.m))

	appendLines(t, filepath.Join(src, "api", "a.log"), 0, 10)
	eventually(t, "10 failed lines", func() bool { return statusOf(t, r.m, "api").LokiFailed == 10 })
	for _, st := range r.m.Status() {
		require.True(t, st.Loki, st.Name)
		require.Contains(t, st.LokiError, "500", st.Name)
		require.Contains(t, st.LokiError, "ingester unavailable", st.Name)
		require.Zero(t, st.LokiSent, st.Name)
		require.True(t, st.LastPush.IsZero(), st.Name)
		for _, secret := range []string{"vigil-user", "s3cret-pass", "t0ken-value", "team-a"} {
			require.NotContains(t, st.LokiError, secret)
		}
	}
	require.Zero(t, statusOf(t, r.m, "web").LokiFailed)

	rcv.failures.Store(0)
	before := time.Now()
	appendLines(t, filepath.Join(src, "api", "a.log"), 10, 17)
	appendLines(t, filepath.Join(src, "web", "w.log"), 17, 22)
	eventually(t, "the lines accepted", func() bool {
		return statusOf(t, r.m, "api").LokiSent == 7 && statusOf(t, r.m, "web").LokiSent == 5
	})
	for _, st := range r.m.Status() {
		require.Empty(t, st.LokiError, st.Name)
		require.False(t, st.LastPush.Before(before), st.Name)
	}
	require.EqualValues(t, 10, statusOf(t, r.m, "api").LokiFailed)
	require.Zero(t, statusOf(t, r.m, "web").LokiFailed)
	waitReceived(t, rcv, 12)
	total, _ := rcv.received()
	require.Equal(t, 12, total, "Loki received what Status counts as sent")
	rcv.mtx.Lock()
	require.Equal(t, map[string]bool{"vigil-user:s3cret-pass": true}, rcv.auth, "basic auth from the URL")
	require.Equal(t, map[string]bool{"team-a": true}, rcv.tenants)
	rcv.mtx.Unlock()

	// Without Loki in the config the logs are not shipped.
	cfg.Collectors.Loki = nil
	require.NoError(t, r.m.ApplyConfig(cfg))
	for _, st := range r.m.Status() {
		require.False(t, st.Loki, st.Name)
		require.Zero(t, st.LokiSent, st.Name)
		require.Empty(t, st.LokiError, st.Name)
	}
}

// TestStatusLokiUnreachable: a connection error shows without the URL's
// credentials or query, in Status and in vigil's log.
func TestStatusLokiUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	lokiURL := "http://vigil-user:s3cret-pass@" + addr + "/loki/api/v1/push?api_key=t0ken-value"
	var logBuf testutil.Buffer
	opts := testOptions(filepath.Join(dir, "data"))
	opts.LokiMaxRetries = 3
	m, err := New(opts, slog.New(slog.NewTextHandler(&logBuf, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(testConfig(src, "", lokiURL)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	appendLines(t, filepath.Join(src, "app.log"), 0, 3)
	eventually(t, "a push error", func() bool { return statusOf(t, m, "app").LokiError != "" })
	st := statusOf(t, m, "app")
	require.Contains(t, st.LokiError, "connection refused")
	require.Contains(t, st.LokiError, `"http://`+addr+`/loki/api/v1/push"`)
	require.Zero(t, st.LokiSent)

	// Stop without waiting for the client's retries (StopTimeout).
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	logged := logBuf.String()
	require.Contains(t, logged, "connection refused")
	for _, secret := range []string{"vigil-user", "s3cret-pass", "t0ken-value", "team-a"} {
		require.NotContains(t, st.LokiError, secret)
		require.NotContains(t, logged, secret)
	}
}

// TestStatusReload: Status lists the configured logs sorted by name, drops
// a log removed by a reload, keeps the counts of a log whose tailer
// restarted, and may be called while Run and ApplyConfig run.
func TestStatusReload(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	cfg := twoLogs(t, src, "")
	r := start(t, testOptions(filepath.Join(dir, "data")), cfg)
	require.Equal(t, []string{"api", "web"}, statusNames(r.m))

	stop := make(chan struct{})
	polled := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				polled <- n
				return
			default:
			}
			for _, st := range r.m.Status() {
				_ = st.Files
			}
			n++
		}
	}()

	appendLines(t, filepath.Join(src, "web", "w.log"), 0, 8)
	appendLines(t, filepath.Join(src, "api", "a.log"), 8, 12)
	eventually(t, "the lines of both logs", func() bool {
		return statusOf(t, r.m, "web").Lines == 8 && statusOf(t, r.m, "api").Lines == 4
	})

	// Drop api; give web an output file, which restarts its tailer.
	out := filepath.Join(dir, "out", "web.log")
	cfg.Collectors.Logs = cfg.Collectors.Logs[:1]
	cfg.Collectors.Logs[0].File = out
	require.NoError(t, r.m.ApplyConfig(cfg))
	require.Equal(t, []string{"web"}, statusNames(r.m))
	appendLines(t, filepath.Join(src, "web", "w.log"), 12, 14)
	eventually(t, "web's new lines", func() bool { return statusOf(t, r.m, "web").Lines == 10 })
	st := statusOf(t, r.m, "web")
	require.Equal(t, out, st.File)
	require.Equal(t, []string{filepath.Join(src, "web", "w.log")}, st.Files)

	close(stop)
	require.Positive(t, <-polled)

	require.NoError(t, r.m.ApplyConfig(&config.Config{}))
	require.Empty(t, r.m.Status())
}

func TestRedactor(t *testing.T) {
	u, err := url.Parse("https://vigil-user:s3cret%2Fpass@loki.example:3100/loki/api/v1/push?api_key=t0ken%2Bvalue&x=1")
	require.NoError(t, err)
	r := newRedactor(u, "team-a")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{
			name: "url error",
			err: &url.Error{Op: "Post", URL: "https://vigil-user:***@loki.example:3100/loki/api/v1/push?api_key=t0ken%2Bvalue&x=1",
				Err: errors.New("dial tcp: connection refused")},
			want: `Post "https://loki.example:3100/loki/api/v1/push": dial tcp: connection refused`,
		},
		{
			name: "status error naming the tenant",
			err:  errors.New("server returned HTTP status 429 Too Many Requests (429): ingestion rate limit exceeded for user team-a"),
			want: "server returned HTTP status 429 Too Many Requests (429): ingestion rate limit exceeded for user REDACTED",
		},
		{
			name: "secrets in free text",
			err:  fmt.Errorf("proxy said: bad key t0ken+value for vigil-user (s3cret/pass) at %s", u),
			want: "proxy said: bad key REDACTED for REDACTED (REDACTED) at https://loki.example:3100/loki/api/v1/push",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, r.error(tc.err))
		})
	}
	long := r.error(errors.New(strings.Repeat("é", maxErrorLen)))
	require.LessOrEqual(t, len(long), maxErrorLen+len("…"))
	require.True(t, strings.HasSuffix(long, "…"))
	require.True(t, utf8.ValidString(long))
}
