package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemo runs `vigil demo`, the whole loop in about 80 seconds: a deploy,
// an error spike, an incident at level 1, an escalation to level 2, an
// acknowledgement, the rollback webhook, and the resolution told to every
// level. It runs beside the other tests of this package.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, vigilBin, "demo").CombinedOutput()
	require.NoError(t, err, "vigil demo:\n%s", out)
	for _, step := range []string{
		"watch it on the operator page",
		"incident ",
		"escalated to Level 2",
		"deploy controller ← ROLLBACK",
		"incident resolved; every level that was notified has been told",
		"canary analysis: FAIL (step 1 of 5: error_rate",
		"reason: analysis",
		"backup_missed fired: incident ",
		"a fresh backup is recorded: backup_missed resolved",
	} {
		require.True(t, strings.Contains(string(out), step), "the demo did not show %q:\n%s", step, out)
	}
}
