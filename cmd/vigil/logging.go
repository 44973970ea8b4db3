package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/vigil-sh/vigil/config"
)

// newLogger builds vigil's own logger from the seed's logging block. The level
// lives in level so a reload can change it; format and output need a restart.
func newLogger(c config.LoggingConfig, level *slog.LevelVar) (*slog.Logger, io.Closer, error) {
	if err := level.UnmarshalText([]byte(orDefault(c.Level, "info"))); err != nil {
		return nil, nil, fmt.Errorf("logging.level %q: %w", c.Level, err)
	}
	var (
		w      io.Writer
		closer io.Closer = io.NopCloser(nil)
	)
	rotated := func() *lumberjack.Logger {
		return &lumberjack.Logger{
			Filename:   c.File,
			MaxSize:    c.MaxSize.Megabytes(),
			MaxBackups: c.MaxFiles,
			MaxAge:     int(time.Duration(c.MaxAge).Hours() / 24),
			Compress:   c.Compress,
		}
	}
	// The seed writes output: stdout beside file: (its logging block is a
	// console and a file): with a file, stdout and stderr go to the file as
	// well, so that no key of the block is ignored.
	var console io.Writer
	switch strings.ToLower(orDefault(c.Output, "stdout")) {
	case "stdout":
		console = os.Stdout
	case "stderr":
		console = os.Stderr
	}
	switch strings.ToLower(orDefault(c.Output, "stdout")) {
	case "stdout", "stderr":
		w = console
		if c.File != "" {
			lj := rotated()
			w, closer = io.MultiWriter(console, lj), lj
		}
	case "file":
		lj := rotated()
		w, closer = lj, lj
	case "both":
		lj := rotated()
		w, closer = io.MultiWriter(os.Stdout, lj), lj
	default:
		return nil, nil, fmt.Errorf("logging.output %q: want stdout, stderr, file or both", c.Output)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(orDefault(c.Format, "json")) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text", "logfmt":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, nil, fmt.Errorf("logging.format %q: want json or text", c.Format)
	}
	return slog.New(h), closer, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
