package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"
)

// BenchmarkErrorRate evaluates the app's error_rate once per iteration over
// one app exporting 20,000 http_requests_total series, one in 20 code="500",
// scraped every 5 s for 2 minutes: the old single expression, and the
// signals group's rules that replace it (vigil:http_requests:rate1m, then
// error_rate reading it).
func BenchmarkErrorRate(b *testing.B) {
	const n = 20_000
	old, err := ScopeString(fmt.Sprintf(oldErrorRate, signalLabels), "app", "")
	require.NoError(b, err)
	rs, err := SignalRules(errorRateCfg())
	require.NoError(b, err)
	require.Equal(b, []string{requestsRateRecord, "error_rate"}, []string{rs[len(rs)-2].Record, rs[len(rs)-1].Record})
	b.Run("old", func(b *testing.B) {
		benchSignalGroup(b, n, []rulefmt.Rule{{Record: "error_rate", Expr: old}})
	})
	b.Run("new", func(b *testing.B) { benchSignalGroup(b, n, rs[len(rs)-2:]) })
}

// benchSignalGroup evaluates the group of rs once per iteration, a
// millisecond apart, over n request series.
func benchSignalGroup(b *testing.B, n int, rs []rulefmt.Rule) {
	db := openTestDB(b)
	ls := make([]labels.Labels, n)
	for i := range ls {
		code := "200"
		if i%20 == 0 {
			code = "500"
		}
		ls[i] = labels.FromStrings("__name__", "http_requests_total", "app", "app", "job", "app", "instance", "a:1",
			"handler", fmt.Sprintf("/api/h%d", i), "code", code)
	}
	const step = 5 * time.Second
	for s := 0; s <= 24; s++ {
		appendSamples(b, db, benchStart.Add(time.Duration(s)*step), float64(100*s), ls...)
	}
	ts := benchStart.Add(24 * step)
	benchEval(b, signalGroup(b, newTestEngine(), db, rs), ts, time.Millisecond)
	got := recordedAt(b, db, "error_rate", ts.Add(time.Duration(b.N-1)*time.Millisecond))
	require.Len(b, got, 1)
	for _, v := range got {
		require.InDelta(b, 5.0, v, 1e-9)
	}
}
