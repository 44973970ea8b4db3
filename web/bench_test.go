package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
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
