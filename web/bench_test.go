package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// BenchmarkRoutes measures requests through the router and middleware, without
// the network, on the same components as the tests.
func BenchmarkRoutes(b *testing.B) {
	env := newTestEnv(b)
	env.h.SetReady(true)
	waitFiring(b, env)
	h := env.h.Router()
	tests := []struct{ name, target string }{
		{"health", "/health"},
		{"metrics", "/metrics"},
		{"alerts", "/alerts"},
		{"api_query", "/api/v1/query?query=" + url.QueryEscape(`sum by (app) (cpu_usage)`)},
		{"api_rules", "/api/v1/rules"},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", tc.target, rec.Code, rec.Body.String())
				}
			}
		})
	}
}

// BenchmarkOperatorPage renders / for a signed-in browser with 200 open
// incidents (three notifications each), 10 resolved ones and a deploy: the
// page a busy on-call engineer keeps open, which refreshes every 15 s.
// "graphs": the incidents are the test rule Never's (cpu_usage > 1000), each
// with an hour of its own series in the TSDB (below every rule's threshold,
// so the Alerts table stays as short as before), and the first
// graphIncidents cards draw real graphs. "no_graphs": the same incidents
// under an alert no rule has, so no card has a graph.
func BenchmarkOperatorPage(b *testing.B) {
	for _, tc := range []struct {
		name, alert string
		graphs      int
	}{
		{"graphs", "Never", graphIncidents},
		{"no_graphs", "HighErrorRate", 0},
	} {
		b.Run(tc.name, func(b *testing.B) { benchmarkOperatorPage(b, tc.alert, tc.graphs) })
	}
}

func benchmarkOperatorPage(b *testing.B, alert string, graphs int) {
	f := newAuthFixture(b)
	now := time.Now()
	incs := &fakeIncidents{m: map[string]notifier.Incident{}}
	for i := range 210 {
		inc := notifier.Incident{
			ID: fmt.Sprintf("inc-%03d", i), State: notifier.StateTriggered, Priority: notifier.PriorityHigh, Level: 1,
			Alert: notifier.Alert{Name: alert, Value: 1000.0000000000001,
				Labels:      map[string]string{"alertname": alert, "app": "app", "instance": fmt.Sprint("pod-", i)},
				Annotations: map[string]string{"summary": "CPU above 1000%"}},
			CreatedAt:    now.Add(-time.Duration(i) * time.Minute),
			NextDeadline: now.Add(time.Hour),
		}
		for l := range 3 {
			inc.Notifications = append(inc.Notifications, notifier.Notification{Receiver: fmt.Sprint("l", l), Level: l % 2, Kind: notifier.KindFiring, Outcome: notifier.OutcomeDelivered})
		}
		if i >= 200 {
			inc.State, inc.ResolvedBy, inc.ResolvedAt = notifier.StateResolved, "alice", now
		}
		incs.m[inc.ID] = inc
	}
	env := newTestEnv(b, f.withAuth, func(o *Options) {
		o.Incidents = incs
		o.Deploys = &fakeDeploys{list: []rollback.Deploy{{Service: "checkout", Version: "2.0.1", At: now}}}
	})
	env.h.SetReady(true)
	app := env.db.Appender(context.Background())
	for i := range 210 {
		lset := labels.FromStrings("__name__", "cpu_usage", "app", "app", "instance", fmt.Sprint("pod-", i))
		// The TSDB's head takes no sample an hour older than its newest.
		for m := 1; m <= 60; m++ {
			if _, err := app.Append(0, lset, now.Add(time.Duration(m-60)*time.Minute).UnixMilli(), float64(10+(m+i)%40)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
	id, _, err := env.h.access.sessions.create(auth.SumOf(f.tokens["developer"]))
	if err != nil {
		b.Fatal(err)
	}
	h := env.h.Router()
	b.ReportAllocs()
	var size int
	// CPU time as well as wall time: on a shared machine the wall time
	// says more about the neighbours than about the page.
	cpu0 := cpuTime(b)
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = "127.0.0.1:9090"
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "inc-199") {
			b.Fatalf("GET /: %d", rec.Code)
		}
		if n := strings.Count(rec.Body.String(), `<path class="series"`); n != graphs {
			b.Fatalf("GET /: %d graphs, want %d", n, graphs)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(size), "bytes/page")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
