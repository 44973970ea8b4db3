package rules

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

func TestScopeString(t *testing.T) {
	for _, tc := range []struct {
		name, in, app, env, want string
	}{
		{
			name: "bare selector",
			in:   `cpu_usage > 80`, app: "app", env: "production",
			want: `cpu_usage{app="app",environment="production"} > 80`,
		},
		{
			name: "up == 0 under the database",
			in:   `up == 0`, app: "database",
			want: `up{app="database"} == 0`,
		},
		{
			name: "own app matcher kept, environment added",
			in:   `cpu_usage{app="infrastructure"} > 80`, app: "app", env: "staging",
			want: `cpu_usage{app="infrastructure",environment="staging"} > 80`,
		},
		{
			name: "regex matcher on app kept",
			in:   `up{app=~"app|api"} == 0`, app: "app", env: "production",
			want: `up{app=~"app|api",environment="production"} == 0`,
		},
		{
			name: "negative matcher on environment kept",
			in:   `up{environment!="development"}`, app: "app", env: "production",
			want: `up{app="app",environment!="development"}`,
		},
		{
			name: "empty values add nothing",
			in:   `cpu_usage > 80`,
			want: `cpu_usage > 80`,
		},
		{
			name: "only environment",
			in:   `cpu_usage > 80`, env: "production",
			want: `cpu_usage{environment="production"} > 80`,
		},
		{
			name: "function over range selector",
			in:   `rate(http_requests_total{code=~"5.."}[5m]) > 1`, app: "app",
			want: `rate(http_requests_total{app="app",code=~"5.."}[5m]) > 1`,
		},
		{
			name: "binary op between two selectors",
			in:   `errors_total / requests_total * 100 > 5`, app: "app",
			want: `errors_total{app="app"} / requests_total{app="app"} * 100 > 5`,
		},
		{
			name: "aggregation",
			in:   `sum by (instance) (memory_usage) > 90`, app: "app",
			want: `sum by (instance) (memory_usage{app="app"}) > 90`,
		},
		{
			name: "subquery",
			in:   `max_over_time(cpu_usage[10m:1m]) > 80`, app: "app", env: "production",
			want: `max_over_time(cpu_usage{app="app",environment="production"}[10m:1m]) > 80`,
		},
		{
			name: "selector by name matcher only",
			in:   `{__name__="up"} == 0`, app: "app",
			want: `{__name__="up",app="app"} == 0`,
		},
		{
			name: "offset and absent",
			in:   `absent(up offset 5m)`, app: "database",
			want: `absent(up{app="database"} offset 5m)`,
		},
		{
			name: "duration literal reads as seconds",
			in:   `query_duration > 1s`, app: "database",
			want: `query_duration{app="database"} > 1s`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ScopeString(tc.in, tc.app, tc.env)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			// The result must parse back to the same expression.
			again, err := promqlparse.ParseExpr(got)
			require.NoError(t, err)
			require.Equal(t, got, again.String())
		})
	}
}

func TestScopeStringParseError(t *testing.T) {
	_, err := ScopeString(`cpu_usage >`, "app", "")
	require.ErrorContains(t, err, `parse "cpu_usage >"`)
	var perr parser.ParseErrors
	require.ErrorAs(t, err, &perr)
}

// TestDurationLiteralIsSeconds pins the PromQL behaviour DESIGN.md relies on:
// Prometheus (v0.310, still in v0.316) reads `1s` in a comparison as the
// number 1, and `500ms` as 0.5.
func TestDurationLiteralIsSeconds(t *testing.T) {
	for in, want := range map[string]float64{"1s": 1, "500ms": 0.5, "2m": 120} {
		expr, err := promqlparse.ParseExpr("query_duration > " + in)
		require.NoError(t, err, in)
		be, ok := expr.(*parser.BinaryExpr)
		require.True(t, ok)
		n, ok := be.RHS.(*parser.NumberLiteral)
		require.True(t, ok, "%s parses as %T", in, be.RHS)
		require.Equal(t, want, n.Val, in)
	}
}
