package proc

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis; utime 250, stime 50,
	// cutime 100, cstime 0 ticks.
	stat := []byte("42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 100 0 20 0 1 0 5 0 0")
	require.InDelta(t, 3.0, StatCPU(stat, false), 1e-9)
	require.InDelta(t, 4.0, StatCPU(stat, true), 1e-9)
	require.Zero(t, StatCPU([]byte("garbage"), false))
}

func TestSelf(t *testing.T) {
	m := MemoryOf(os.Getpid())
	require.Positive(t, m.RSS)
	require.GreaterOrEqual(t, m.HWM, m.RSS)
	require.Positive(t, m.Anon)
	require.Zero(t, MemoryOf(-1))
	l := Listen()
	defer l.Close()
	require.Contains(t, l.Addr().String(), "127.0.0.1:")
	require.NotEqual(t, l.Addr().String(), FreeAddr())
}
