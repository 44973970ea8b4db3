package rules

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"
)

// promtoolTestdata is cmd/promtool/testdata of the Prometheus module vigil
// builds with (go.mod pins it), so the test follows an upgrade.
func promtoolTestdata(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	require.NoError(t, err, "go list -m github.com/prometheus/prometheus")
	dir := filepath.Join(strings.TrimSpace(string(out)), "cmd", "promtool", "testdata")
	require.DirExists(t, dir)
	return dir
}

// TestPromtoolTestFiles runs promtool's own rule unit test files through
// vigil's test runner and expects the exit code promtool gives them. Every
// row is a case of TestRulesUnitTest or TestRulesUnitTestRun in
// cmd/promtool/unittest_test.go of Prometheus v0.316.0, named as there; opts
// are that case's LazyLoaderOpts, run and ignoreUnknownFields arguments.
// "Enabled feature (experimental functions)" has no row: vigil's runner
// has no switch for PromQL's experimental functions.
func TestPromtoolTestFiles(t *testing.T) {
	dir := promtoolTestdata(t)
	var (
		none   = UnitTestOptions{}
		at     = UnitTestOptions{Query: promqltest.LazyLoaderOpts{EnableAtModifier: true}}
		negOff = UnitTestOptions{Query: promqltest.LazyLoaderOpts{EnableNegativeOffset: true}}
		run    = func(re ...string) UnitTestOptions { return UnitTestOptions{Run: re} }
	)
	for _, tc := range []struct {
		promtoolCase string
		files        []string
		opts         UnitTestOptions
		want         int
	}{
		{"TestRulesUnitTest/Passing Unit Tests", []string{"unittest.yml"}, none, 0},
		{"TestRulesUnitTest/Long evaluation interval", []string{"long-period.yml"}, none, 0},
		{"TestRulesUnitTest/Bad input series", []string{"bad-input-series.yml"}, none, 1},
		{"TestRulesUnitTest/Bad PromQL", []string{"bad-promql.yml"}, none, 1},
		{"TestRulesUnitTest/Bad rules (syntax error)", []string{"bad-rules-syntax-test.yml"}, none, 1},
		{"TestRulesUnitTest/Bad rules (error evaluating)", []string{"bad-rules-error-test.yml"}, none, 1},
		{"TestRulesUnitTest/Simple failing test", []string{"failing.yml"}, none, 1},
		{"TestRulesUnitTest/Disabled feature (@ modifier)", []string{"at-modifier-test.yml"}, none, 1},
		{"TestRulesUnitTest/Enabled feature (@ modifier)", []string{"at-modifier-test.yml"}, at, 0},
		{"TestRulesUnitTest/Disabled feature (negative offset)", []string{"negative-offset-test.yml"}, none, 1},
		{"TestRulesUnitTest/Enabled feature (negative offset)", []string{"negative-offset-test.yml"}, negOff, 0},
		{"TestRulesUnitTest/Disabled feature (experimental functions)", []string{"experimental-functions-test.yml"}, none, 1},
		{"TestRulesUnitTest/No test group interval", []string{"no-test-group-interval.yml"}, negOff, 0},
		{"TestRulesUnitTest/Start time tests", []string{"start-time-test.yml"}, at, 0},
		// The JUnit case runs the files of the four rows above whose options
		// enable one feature, all with no feature: some fail.
		{"TestRulesUnitTest/Junit xml output", []string{"at-modifier-test.yml", "negative-offset-test.yml", "no-test-group-interval.yml", "start-time-test.yml"}, none, 1},
		{"TestRulesUnitTestRun/Test all without run arg", []string{"rules_run.yml"}, none, 1},
		{"TestRulesUnitTestRun/Test all with run arg", []string{"rules_run.yml"}, run("correct", "wrong"), 1},
		{"TestRulesUnitTestRun/Test correct", []string{"rules_run.yml"}, run("correct"), 0},
		{"TestRulesUnitTestRun/Test wrong", []string{"rules_run.yml"}, run("wrong"), 1},
		{"TestRulesUnitTestRun/Test all with extra fields", []string{"rules_run_extrafields.yml"}, UnitTestOptions{IgnoreUnknownFields: true}, 0},
		{"TestRulesUnitTestRun/Test precise floating point comparison expected failure", []string{"rules_run_no_fuzzy.yml"}, none, 1},
		{"TestRulesUnitTestRun/Test fuzzy floating point comparison correct match", []string{"rules_run_fuzzy.yml"}, run("correct"), 0},
		{"TestRulesUnitTestRun/Test fuzzy floating point comparison wrong match", []string{"rules_run_fuzzy.yml"}, run("wrong"), 1},
	} {
		t.Run(tc.promtoolCase, func(t *testing.T) {
			files := make([]string, len(tc.files))
			for i, f := range tc.files {
				files[i] = filepath.Join(dir, f)
			}
			var out bytes.Buffer
			got := 0
			if RunUnitTestsWith(tc.opts, files, &out) {
				got = 1
			}
			require.Equal(t, tc.want, got, out.String())
		})
	}
}

// TestPromtoolTestFilesCommandLine checks that the command line's defaults
// (the @ modifier and negative offsets on, as in promtool's binary) pass the
// files promtool's binary passes.
func TestPromtoolTestFilesCommandLine(t *testing.T) {
	dir := promtoolTestdata(t)
	for _, f := range []string{"unittest.yml", "long-period.yml", "at-modifier-test.yml", "negative-offset-test.yml", "no-test-group-interval.yml", "start-time-test.yml"} {
		var out bytes.Buffer
		require.False(t, RunUnitTests([]string{filepath.Join(dir, f)}, &out), out.String())
	}
}
