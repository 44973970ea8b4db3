package rules

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunUnitTests(t *testing.T) {
	for _, tc := range []struct {
		file       string
		wantFailed bool
		contains   []string
	}{
		{
			file:     "testdata/seed_rules_test.yml",
			contains: []string{"Unit Testing:  testdata/seed_rules_test.yml\n  SUCCESS\n"},
		},
		{
			file:       "testdata/seed_rules_fail_test.yml",
			wantFailed: true,
			contains: []string{
				"Unit Testing:  testdata/seed_rules_fail_test.yml\n  FAILED:\n",
				"    name: expects firing too early,\n    alertname: high_cpu, time: 3m, \n        exp:[\n",
				`Labels:{alertname="high_cpu", app="app", environment="production", instance="a", severity="critical"}`,
				"        got:[]",
				`    expr: "cpu_usage", time: 1m,` + "\n" +
					`        exp: {__name__="cpu_usage", app="app", environment="production", instance="a"} 8E+01` + "\n" +
					`        got: {__name__="cpu_usage", app="app", environment="production", instance="a"} 9E+01`,
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out bytes.Buffer
			failed := RunUnitTests([]string{tc.file}, &out)
			require.Equal(t, tc.wantFailed, failed, out.String())
			for _, s := range tc.contains {
				require.Contains(t, out.String(), s)
			}
		})
	}
}
