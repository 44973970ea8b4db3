package web

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		u    unit
		want string
	}{
		// The example: a float sum that missed 100.
		{99.99999999999848, unitPercent, "100%"},
		{99.99999999999848, unitNone, "100"},
		{95, unitPercent, "95%"},
		{95.5, unitPercent, "95.5%"},
		{80.123456, unitPercent, "80.1%"},
		{1.23456, unitNone, "1.23"},
		{1.5, unitNone, "1.5"},
		{2, unitNone, "2"},
		{0, unitNone, "0"},
		{0.012345, unitNone, "0.0123"},
		{0.10000000000000002, unitNone, "0.1"},
		{1234.5678, unitNone, "1235"},
		{-3.14159, unitNone, "-3.14"},
		{-0.0001, unitNone, "-0.0001"},
		{123456789, unitNone, "123456789"},
		{1e20, unitNone, "1e+20"},
		{1.5e-12, unitNone, "1.5e-12"},
		{math.NaN(), unitPercent, "NaN"},
		{math.Inf(1), unitSeconds, "+Inf"},
		{math.Inf(-1), unitNone, "-Inf"},
		{0.9876, unitRatio, "98.8%"},
		{1, unitRatio, "100%"},
		{1.23456, unitSeconds, "1.23 s"},
		{0.0087, unitSeconds, "8.7 ms"},
		{0.000549, unitSeconds, "549 µs"},
		{0.00000012, unitSeconds, "120 ns"},
		{0, unitSeconds, "0 s"},
		{90, unitSeconds, "1.5 min"},
		{7200, unitSeconds, "2 hour"},
		{172800, unitSeconds, "2 day"},
		{512, unitBytes, "512 B"},
		{1536, unitBytes, "1.5 KiB"},
		{3 * 1024 * 1024 * 1024, unitBytes, "3 GiB"},
	} {
		require.Equal(t, tc.want, formatValue(tc.v, tc.u), "formatValue(%v, %d)", tc.v, tc.u)
	}
}

func TestUnitOfExpr(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want unit
	}{
		{`cpu_usage{app="app"} > 80`, unitPercent},
		{`memory_usage > 80`, unitPercent},
		{`disk_usage > 80`, unitPercent},
		{`error_rate > 1`, unitPercent},
		{`query_duration > 1s`, unitSeconds},
		{`histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))`, unitSeconds},
		{`process_resident_memory_bytes > 1e9`, unitBytes},
		{`up == 0`, unitNone},
		{`rate(http_requests_total[5m]) > 10`, unitNone},
		{`cpu_usage > on() query_duration`, unitNone},
		{`vector(1)`, unitNone},
	} {
		expr, err := promqlparse.ParseExpr(tc.expr)
		require.NoError(t, err, tc.expr)
		require.Equal(t, tc.want, unitOfExpr(expr), tc.expr)
	}
}
