package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestNewLoggerToFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vigil.log")
	level := new(slog.LevelVar)
	logger, closer, err := newLogger(config.LoggingConfig{
		Level: "warn", Format: "text", Output: "file", File: file, MaxSize: 1 << 20, MaxFiles: 2,
	}, level)
	require.NoError(t, err)
	logger.Info("hidden")
	logger.Warn("shown", "k", "v")
	level.Set(slog.LevelInfo) // what a reload of logging.level does
	logger.Info("now shown")
	require.NoError(t, closer.Close())

	body, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NotContains(t, string(body), "hidden")
	require.Contains(t, string(body), "msg=shown k=v")
	require.Contains(t, string(body), "now shown")
}

func TestNewLoggerRotates(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.log")
	logger, closer, err := newLogger(config.LoggingConfig{
		Level: "info", Format: "json", Output: "file", File: file, MaxSize: 1 << 20, MaxFiles: 2,
	}, new(slog.LevelVar))
	require.NoError(t, err)
	line := strings.Repeat("x", 4096)
	for i := 0; i < 600; i++ { // about 2.5 MB: two rotations at 1 MB
		logger.Info(line)
	}
	require.NoError(t, closer.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(entries), 2, "the log did not rotate")
	require.LessOrEqual(t, len(entries), 3, "maxFiles backups plus the live file")
}

func TestNewLoggerErrors(t *testing.T) {
	for _, c := range []config.LoggingConfig{
		{Level: "loud"},
		{Format: "xml"},
		{Output: "printer"},
	} {
		_, _, err := newLogger(c, new(slog.LevelVar))
		require.Error(t, err, "%+v", c)
	}
}

// TestNewLoggerStdoutAndFile: the seed's logging block writes output: stdout
// and file: together; the file is written too (and rotated), not ignored.
func TestNewLoggerStdoutAndFile(t *testing.T) {
	for _, output := range []string{"stdout", "stderr"} {
		t.Run(output, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "vigil.log")
			logger, closer, err := newLogger(config.LoggingConfig{
				Level: "info", Format: "json", Output: output, File: file, MaxSize: 100 << 20, MaxFiles: 10,
			}, new(slog.LevelVar))
			require.NoError(t, err)
			logger.Info("to both", "k", "v")
			require.NoError(t, closer.Close())
			body, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Contains(t, string(body), `"msg":"to both","k":"v"`)
		})
	}
}
