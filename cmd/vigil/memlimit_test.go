package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
	"time"

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
	const mb = 1 << 20
	for _, tc := range []struct {
		live, alloc uint64
		want        int
	}{
		{0, 0, sidecarGCPercent},
		{10 * mb, 0, sidecarGCPercent}, // 2,000 series: the heap may grow by half
		{64 * mb, 0, sidecarGCPercent}, // growth of exactly gcHeadroom at 50%
		{128 * mb, 0, 25},              // 32 MiB of 128 MiB
		{137 * mb, 0, 23},              // 100,000 series
		{137 * mb, mb / 3, 23},         // and their scrapes: 0.3 MB/s
		{137 * mb, 8 * mb, 29},         // 40 MiB allocated in gcCycleEvery
		{137 * mb, 120 * mb, 50},       // rules over every request series: GOGC 50, as before the tuner
		{1 << 30, 0, gcMinPercent},     // a huge heap keeps a fifth as headroom
		{1 << 30, 100 * mb, 48},        // unless it allocates fast
		{math.MaxUint64 / 2, 0, gcMinPercent},
		{math.MaxUint64 / 2, math.MaxUint64, sidecarGCPercent}, // no overflow
	} {
		require.Equal(t, tc.want, gcPercentFor(tc.live, tc.alloc), "live %d bytes, %d bytes/s", tc.live, tc.alloc)
	}
}

// TestGCStep: the tuner lowers GOGC as the live heap grows, leaves it for
// changes of a point or two, hands free pages back once after lowering it
// (not in the steady state), and raises it back when the heap shrinks.
func TestGCStep(t *testing.T) {
	const mb = 1 << 20
	// A first scrape of 100,000 series: lowered, no release yet (the goal
	// moves with the new GOGC).
	p, lowered, set, free := gcStep(sidecarGCPercent, false, 137*mb, 206*mb, 230*mb, 0)
	require.Equal(t, 23, p)
	require.True(t, lowered)
	require.True(t, set)
	require.False(t, free)
	// Next reading, same heap: the burst's pages beyond the goal go back.
	p, lowered, set, free = gcStep(p, lowered, 137*mb, 168*mb, 200*mb, 0)
	require.Equal(t, 23, p)
	require.False(t, lowered)
	require.False(t, set)
	require.True(t, free)
	// The steady state: nothing, even with pages above the goal.
	_, _, set, free = gcStep(p, lowered, 137*mb, 168*mb, 200*mb, 0)
	require.False(t, set)
	require.False(t, free)
	// A change of a point or two is left alone.
	_, _, set, _ = gcStep(p, false, 140*mb, 170*mb, 170*mb, 0)
	require.False(t, set)
	// After lowering, no release while the heap is near its goal.
	_, _, set, free = gcStep(25, true, 128*mb, 160*mb, 165*mb, 0)
	require.False(t, set)
	require.False(t, free)
	// The heap shrinks back: GOGC returns to the default.
	p, lowered, set, _ = gcStep(23, false, 10*mb, 15*mb, 20*mb, 0)
	require.Equal(t, sidecarGCPercent, p)
	require.False(t, lowered)
	require.True(t, set)
	// Fast allocation at 100,000 series: back to the default, so that the
	// collector does not run several times a second.
	p, lowered, set, free = gcStep(23, false, 137*mb, 168*mb, 170*mb, 120*mb)
	require.Equal(t, sidecarGCPercent, p)
	require.False(t, lowered)
	require.True(t, set)
	require.False(t, free)
	// It calms down: lowered again, and the pages it left go back once.
	p, lowered, set, free = gcStep(p, lowered, 137*mb, 206*mb, 240*mb, mb/3)
	require.Equal(t, 23, p)
	require.True(t, lowered)
	require.True(t, set)
	require.False(t, free)
	_, _, _, free = gcStep(p, lowered, 137*mb, 168*mb, 200*mb, mb/3)
	require.True(t, free)
}

// TestAllocRate: the rate over the last reading, decaying by half a reading
// after a burst; no rate before the second reading.
func TestAllocRate(t *testing.T) {
	const mb = 1 << 20
	every := uint64(gcTuneEvery / time.Second)
	require.Zero(t, allocRate(0, 0, 500*mb), "first reading")
	r := allocRate(0, 500*mb, 500*mb+every*120*mb)
	require.Equal(t, uint64(120*mb), r)
	r = allocRate(r, 1000*mb, 1000*mb+every*mb)
	require.Equal(t, uint64(60*mb), r, "after the burst: half")
	r = allocRate(r, 1000*mb, 1000*mb+every*mb)
	require.Equal(t, uint64(30*mb), r)
	for range 10 {
		r = allocRate(r, 1000*mb, 1000*mb+every*mb)
	}
	require.Equal(t, uint64(mb), r, "settles on the steady rate")
}
