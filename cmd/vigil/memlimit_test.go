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

// TestGCStep: the tuner lowers GOGC as the live heap grows, leaves it for
// changes of a point or two, hands free pages back once after lowering it
// (not in the steady state), and raises it back when the heap shrinks.
func TestGCStep(t *testing.T) {
	const mb = 1 << 20
	// A first scrape of 100,000 series: lowered, no release yet (the goal
	// moves with the new GOGC).
	p, lowered, set, free := gcStep(sidecarGCPercent, false, 137*mb, 206*mb, 230*mb)
	require.Equal(t, 23, p)
	require.True(t, lowered)
	require.True(t, set)
	require.False(t, free)
	// Next reading, same heap: the burst's pages beyond the goal go back.
	p, lowered, set, free = gcStep(p, lowered, 137*mb, 168*mb, 200*mb)
	require.Equal(t, 23, p)
	require.False(t, lowered)
	require.False(t, set)
	require.True(t, free)
	// The steady state: nothing, even with pages above the goal.
	_, _, set, free = gcStep(p, lowered, 137*mb, 168*mb, 200*mb)
	require.False(t, set)
	require.False(t, free)
	// A change of a point or two is left alone.
	_, _, set, _ = gcStep(p, false, 140*mb, 170*mb, 170*mb)
	require.False(t, set)
	// After lowering, no release while the heap is near its goal.
	_, _, set, free = gcStep(25, true, 128*mb, 160*mb, 165*mb)
	require.False(t, set)
	require.False(t, free)
	// The heap shrinks back: GOGC returns to the default.
	p, lowered, set, _ = gcStep(23, false, 10*mb, 15*mb, 20*mb)
	require.Equal(t, sidecarGCPercent, p)
	require.False(t, lowered)
	require.True(t, set)
}
