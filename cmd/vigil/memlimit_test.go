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

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, sidecarGCPercent},
		{10 << 20, sidecarGCPercent}, // 2,000 series: the heap may grow by half
		{64 << 20, sidecarGCPercent}, // growth of exactly gcHeadroom at 50%
		{128 << 20, 25},              // 32 MiB of 128 MiB
		{137 << 20, 23},              // 100,000 series
		{1 << 30, gcMinPercent},      // a huge heap keeps a fifth as headroom
		{math.MaxUint64 / 2, gcMinPercent},
	} {
		require.Equal(t, tc.want, gcPercentFor(tc.live), "live %d bytes", tc.live)
	}
}
