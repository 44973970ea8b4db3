package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPageOutExecutable(t *testing.T) {
	before := residentFileKB()
	require.Positive(t, before)
	n, err := pageOutExecutable()
	if err != nil {
		t.Skipf("this kernel has no MADV_PAGEOUT: %v", err)
	}
	require.Positive(t, n, "no read-only mapping of the executable was found")
	// The test binary keeps running after its pages were released (those it
	// uses come back on demand), and fewer of them are resident.
	after := residentFileKB()
	require.Positive(t, after)
	require.Less(t, after, before, "no page of the executable was released")
	t.Logf("file-backed resident memory: %d kB before, %d kB after", before, after)
}
