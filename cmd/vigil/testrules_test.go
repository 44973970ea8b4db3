package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTestRulesFlags runs `vigil test rules` with promtool's --run over
// promtool's own rules_run_fuzzy.yml (rows "Test fuzzy floating point
// comparison correct/wrong match" of promtool's unittest_test.go) and its
// unittest.yml and start-time-test.yml, which need no flag.
func TestTestRulesFlags(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	require.NoError(t, err)
	dir := filepath.Join(strings.TrimSpace(string(out)), "cmd", "promtool", "testdata")
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--run", "correct", filepath.Join(dir, "rules_run_fuzzy.yml")}, 0},
		{[]string{"--run", "wrong", filepath.Join(dir, "rules_run_fuzzy.yml")}, 1},
		{[]string{"--ignore-unknown-fields", filepath.Join(dir, "rules_run_extrafields.yml")}, 0},
		{[]string{filepath.Join(dir, "rules_run_extrafields.yml")}, 1},
		{[]string{filepath.Join(dir, "unittest.yml"), filepath.Join(dir, "start-time-test.yml")}, 0},
		{[]string{"--run"}, 2},
	} {
		var stdout, stderr bytes.Buffer
		got := execute(append([]string{"test", "rules"}, tc.args...), &stdout, &stderr)
		require.Equal(t, tc.want, got, "%v\n%s%s", tc.args, stdout.String(), stderr.String())
	}
}
