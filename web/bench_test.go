package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

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
func BenchmarkOperatorPage(b *testing.B) {
	f := newAuthFixture(b)
	now := time.Now()
	incs := &fakeIncidents{m: map[string]notifier.Incident{}}
	for i := range 210 {
		inc := notifier.Incident{
			ID: fmt.Sprintf("inc-%03d", i), State: notifier.StateTriggered, Priority: notifier.PriorityHigh, Level: 1,
			Alert:        notifier.Alert{Name: "HighErrorRate", Labels: map[string]string{"app": "app", "instance": fmt.Sprint("pod-", i)}, Annotations: map[string]string{"summary": "5xx above 5%"}},
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
	id, _, err := env.h.access.sessions.create(auth.SumOf(f.tokens["developer"]))
	if err != nil {
		b.Fatal(err)
	}
	h := env.h.Router()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = "127.0.0.1:9090"
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "inc-199") {
			b.Fatalf("GET /: %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}
