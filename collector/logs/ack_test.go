package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/testutil"
)

// TestPositionWaitsForLoki: while Loki fails every push, lines reach the
// output file but their position stays where Loki's acknowledgements end,
// on disk too; a stop that gives up on the push leaves them there, and the
// next start sends them to Loki without writing them to the output file
// again. (Before, the position moved when a line was handed to the client,
// and a kill -9 lost the client's batches.)
func TestPositionWaitsForLoki(t *testing.T) {
	dir := t.TempDir()
	src, dataDir := filepath.Join(dir, "src"), filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	rcv := newLokiReceiver(t)
	rcv.failures.Store(1 << 40)
	cfg := testConfig(src, out, rcv.url())
	opts := testOptions(dataDir)
	opts.StopTimeout = 300 * time.Millisecond
	a := filepath.Join(src, "a.log")
	appendLines(t, a, 0, 40)
	size := fileSize(t, a)

	r1 := start(t, opts, cfg)
	eventually(t, "the output file to hold the lines", func() bool { return len(outputLines(t, out)) == 40 })
	eventually(t, "a failed push", func() bool { return rcv.failed.Load() > 0 })
	eventually(t, "the saved position to know the lines were written", func() bool {
		return savedPosition(t, dataDir, a).Written == size
	})
	p := savedPosition(t, dataDir, a)
	require.Zero(t, p.Offset, "the position moved before Loki took the lines")
	require.Equal(t, size, p.Written)
	r1.stop(t)
	p = savedPosition(t, dataDir, a)
	require.Zero(t, p.Offset)
	require.Equal(t, size, p.Written)
	total, _ := rcv.received()
	require.Zero(t, total)

	rcv.failures.Store(0)
	r2 := start(t, testOptions(dataDir), cfg)
	waitReceived(t, rcv, 40)
	eventually(t, "the position to reach the end", func() bool {
		return savedPosition(t, dataDir, a).Offset == size
	})
	r2.stop(t)
	_, lines := rcv.received()
	requireExactlyOnce(t, "Loki", lines, 40)
	requireExactlyOnce(t, "output file", outputLines(t, out), 40)
}

// TestLevelFormatOutput: a log's level drops less severe lines from the
// output file, Loki, the recent lines and the echo (lines naming no level
// are kept); format json reads only the JSON keys; output stdout echoes the
// kept lines. Every line is still counted.
func TestLevelFormatOutput(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	rcv := newLokiReceiver(t)
	cfg := testConfig(src, out, rcv.url())
	cfg.Collectors.Logs[0].Level = "warn"
	cfg.Collectors.Logs[0].Format = "json"
	cfg.Collectors.Logs[0].Output = "both"
	opts := testOptions(filepath.Join(dir, "data"))
	var echo testutil.Buffer
	opts.Stdout = &echo
	r := start(t, opts, cfg)

	lines := []string{
		`{"level":"debug","msg":"ERROR in the message only"}`,
		`{"level":"info","msg":"served"}`,
		`{"level":"warn","msg":"slow"}`,
		`{"level":"error","msg":"failed"}`,
		`{"msg":"no level"}`,
		`[ERROR] not JSON, so no level under format json`,
		`{"severity":"CRITICAL","msg":"down"}`,
	}
	kept := []string{lines[2], lines[3], lines[4], lines[5], lines[6]}
	require.NoError(t, os.WriteFile(filepath.Join(src, "app.log"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	waitReceived(t, rcv, len(kept))
	eventually(t, "every line counted", func() bool { return sumLines(r) == len(lines) })
	eventually(t, "the kept lines counted as sent", func() bool { return statusOf(t, r.m, "app").LokiSent == uint64(len(kept)) })
	st := statusOf(t, r.m, "app")
	require.EqualValues(t, len(lines), st.Lines)
	r.stop(t)

	_, got := rcv.received()
	want := map[string]int{}
	for _, l := range kept {
		want[l] = 1
	}
	require.Equal(t, want, got, "Loki")
	require.Equal(t, want, outputLines(t, out), "output file")
	require.Equal(t, strings.Join(kept, "\n")+"\n", echo.String(), "stdout")
	recent, err := r.m.Lines("app", 0)
	require.NoError(t, err)
	require.Len(t, recent, len(kept))
}

// TestLogEntryKeysRejected: values config validation refuses are refused
// by ApplyConfig too (a config built in code).
func TestLogEntryKeysRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.LogConfig)
		want string
	}{
		{"level", func(l *config.LogConfig) { l.Level = "verbose" }, `level "verbose" is not one of`},
		{"format", func(l *config.LogConfig) { l.Format = "xml" }, `format "xml" is not one of json, text`},
		{"output", func(l *config.LogConfig) { l.Output = "syslog" }, `output "syslog" is not one of`},
		{"output without file", func(l *config.LogConfig) { l.Output = "file"; l.File = "" }, `output "file" needs file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(testOptions(t.TempDir()), testLogger(t), nil)
			require.NoError(t, err)
			cfg := testConfig(t.TempDir(), "", "")
			tc.edit(&cfg.Collectors.Logs[0])
			require.ErrorContains(t, m.ApplyConfig(cfg), tc.want)
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// savedPosition reads path's entry from positions.json; -1 offsets when
// there is none yet.
func savedPosition(t *testing.T, dataDir, path string) position {
	t.Helper()
	pos, err := loadPositions(filepath.Join(dataDir, "logs", "positions.json"))
	require.NoError(t, err)
	for _, p := range pos.files {
		if p.Path == path {
			return p
		}
	}
	return position{Offset: -1, Written: -1}
}

// TestLokiDownPausesReading: while Loki refuses every push, the tailer
// stops reading once the client holds a batch being pushed and one being
// built: the log file is the buffer, not vigil's memory.
func TestLokiDownPausesReading(t *testing.T) {
	dir := t.TempDir()
	src, dataDir := filepath.Join(dir, "src"), filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(src, 0o755))
	rcv := newLokiReceiver(t)
	rcv.failures.Store(1 << 40)
	cfg := testConfig(src, "", rcv.url())
	opts := testOptions(dataDir)
	opts.StopTimeout = 300 * time.Millisecond
	a := filepath.Join(src, "a.log")
	appendLines(t, a, 0, 200000) // about 7 MB
	size := fileSize(t, a)

	r := start(t, opts, cfg)
	eventually(t, "failed pushes", func() bool { return rcv.failed.Load() > 3 })
	eventually(t, "the saved position to record the lines handed over", func() bool {
		return savedPosition(t, dataDir, a).Written > 0
	})
	time.Sleep(200 * time.Millisecond)
	p := savedPosition(t, dataDir, a)
	require.Zero(t, p.Offset, "the position moved while Loki took nothing")
	// A batch pushed, one built and one chunk waiting, each at most a batch
	// plus one read (256 KiB).
	require.Less(t, p.Written, int64(2<<20), "the tailer kept reading while Loki was down")
	require.Less(t, p.Written, size)
	r.stop(t)
}
