package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	logger := slog.New(slog.DiscardHandler)
	container := func() (uint64, bool) { return 128 << 20, true }

	t.Setenv("GOMEMLIMIT", "")
	require.Equal(t, int64(120795955), setMemoryLimit(logger, container))
	require.Equal(t, int64(120795955), debug.SetMemoryLimit(-1), "90% of 128 MiB")

	debug.SetMemoryLimit(math.MaxInt64)
	require.Zero(t, setMemoryLimit(logger, func() (uint64, bool) { return 0, false }))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "no container limit: Go's default stays")

	t.Setenv("GOMEMLIMIT", "300MiB")
	require.Zero(t, setMemoryLimit(logger, container))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "GOMEMLIMIT wins")
}
