package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// amAlert is one alert of Alertmanager's API v2 POST /api/v2/alerts body.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`

	// receivedAt and auth are the gateway's, not the body's.
	receivedAt time.Time
	auth       string
}

// amGateway stands in for a gateway: it takes Alertmanager's POST
// /api/v2/alerts and records every alert with the request's Authorization.
type amGateway struct {
	*httptest.Server
	mtx    sync.Mutex
	alerts []amAlert
	bad    []string
}

func newAMGateway(t *testing.T) *amGateway {
	g := &amGateway{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
			g.mtx.Lock()
			g.bad = append(g.bad, r.Method+" "+r.URL.Path)
			g.mtx.Unlock()
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var batch []amAlert
		if err := json.Unmarshal(body, &batch); err != nil {
			g.mtx.Lock()
			g.bad = append(g.bad, "body: "+err.Error())
			g.mtx.Unlock()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		g.mtx.Lock()
		for _, a := range batch {
			a.receivedAt, a.auth = now, r.Header.Get("Authorization")
			g.alerts = append(g.alerts, a)
		}
		g.mtx.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(g.Close)
	return g
}

// received returns the alerts named name so far; resolved picks those whose
// endsAt had passed when they arrived (Alertmanager's reading of resolved).
func (g *amGateway) received(name string, resolved bool) []amAlert {
	g.mtx.Lock()
	defer g.mtx.Unlock()
	var out []amAlert
	for _, a := range g.alerts {
		if a.Labels["alertname"] == name && a.EndsAt.Before(a.receivedAt) == resolved {
			out = append(out, a)
		}
	}
	return out
}

func (g *amGateway) unexpected() []string {
	g.mtx.Lock()
	defer g.mtx.Unlock()
	return append([]string(nil), g.bad...)
}

// forwardConfig is a production sidecar whose high_cpu rule (cpu_usage >
// 80 for 1s) is forwarded to urls, with a local webhook receiver l1.
func forwardConfig(dir, addr string, app *gaugeApp, hooks *hookServer, urls []string, notifyLocally bool) string {
	return fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
global:
  external_labels: {pod: checkout-7d9f-abcde, replica: checkout-7d9f-abcde}
collectors:
  app: {targets: ["%[3]s"], labels: {app: app}}
alerts:
  rules:
    - {name: high_cpu, condition: cpu_usage > 80, duration: 1s, severity: critical, labels: {app: app},
       summary: "CPU at {{ $value }}"}
  forward:
    urls: ["%[5]s"]
    token_file: gateway.token
    timeout: 2s
    notify_locally: %[6]t
escalation:
  response_times: {critical: 1h}
  levels:
    - {name: support, notify: [l1]}
receivers:
  - {name: l1, webhook: {url: "%[4]s/l1", secret: s1}}
`, filepath.Join(dir, "data"), addr, app.hostPort(), hooks.URL, strings.Join(urls, `", "`), notifyLocally)
}

// readyForward is /ready's forward block.
func readyForward(t *testing.T, v *vigilProc) *struct {
	NotifyLocally bool `json:"notify_locally"`
	Gateways      []struct {
		URL    string  `json:"url"`
		Sent   float64 `json:"sent"`
		Errors float64 `json:"errors"`
	} `json:"gateways"`
} {
	t.Helper()
	resp, err := http.Get(v.url("/ready"))
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Forward *struct {
			NotifyLocally bool `json:"notify_locally"`
			Gateways      []struct {
				URL    string  `json:"url"`
				Sent   float64 `json:"sent"`
				Errors float64 `json:"errors"`
			} `json:"gateways"`
		} `json:"forward"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Forward
}

// TestForwardToGateways is issue 11's sidecar forwarding: a firing and then
// resolved alert reaches both gateways through Prometheus's notifier, with
// the bearer token from token_file, global.external_labels and the app's
// instance; a gateway that refuses connections stops neither; the local
// receivers get nothing until a reload sets notify_locally.
func TestForwardToGateways(t *testing.T) {
	app := newGaugeApp(t, 95)
	hooks := newHookServer(t)
	gwA, gwB := newAMGateway(t), newAMGateway(t)
	down := "http://" + freePort(t) // nothing listens: connection refused
	dir := t.TempDir()
	const token = "gw-token-1f2e3d"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gateway.token"), []byte(token+"\n"), 0o600))
	addr := freePort(t)
	urls := []string{gwA.URL, down, gwB.URL}
	cfg := writeConfig(t, dir, forwardConfig(dir, addr, app, hooks, urls, false))
	v := startVigil(t, cfg, addr)

	// Firing, at both live gateways.
	for _, gw := range []*amGateway{gwA, gwB} {
		require.Eventually(t, func() bool { return len(gw.received("high_cpu", false)) > 0 },
			20*time.Second, 50*time.Millisecond, "high_cpu did not reach gateway %s", gw.URL)
		a := gw.received("high_cpu", false)[0]
		require.Equal(t, "Bearer "+token, a.auth, "the token of token_file, as a bearer token")
		require.Equal(t, "high_cpu", a.Labels["alertname"])
		require.Equal(t, "critical", a.Labels["severity"])
		require.Equal(t, "app", a.Labels["app"])
		require.Equal(t, "checkout-7d9f-abcde", a.Labels["pod"], "global.external_labels ride along")
		require.Equal(t, "checkout-7d9f-abcde", a.Labels["replica"])
		require.Equal(t, app.hostPort(), a.Labels["instance"], "the scraped instance rides along")
		require.Equal(t, "CPU at 95", a.Annotations["summary"])
		require.False(t, a.StartsAt.IsZero())
		require.False(t, a.StartsAt.After(a.receivedAt), "startsAt is when it fired")
		// endsAt is the rules' ValidUntil: 4 × the resend delay (1m) ahead.
		require.Greater(t, a.EndsAt.Sub(a.receivedAt), 3*time.Minute)
		require.True(t, strings.HasPrefix(a.GeneratorURL, "http"), a.GeneratorURL)
		require.Contains(t, a.GeneratorURL, "cpu_usage")
	}

	// Resolved: endsAt in the past when it arrives, same startsAt.
	firedAt := gwA.received("high_cpu", false)[0].StartsAt
	app.cpu.Store(10)
	for _, gw := range []*amGateway{gwA, gwB} {
		require.Eventually(t, func() bool { return len(gw.received("high_cpu", true)) > 0 },
			20*time.Second, 50*time.Millisecond, "the resolved high_cpu did not reach gateway %s", gw.URL)
		a := gw.received("high_cpu", true)[0]
		require.True(t, a.StartsAt.Equal(firedAt), "startsAt %s, fired at %s", a.StartsAt, firedAt)
		require.True(t, a.EndsAt.After(a.StartsAt))
		require.Equal(t, "checkout-7d9f-abcde", a.Labels["pod"])
		require.Empty(t, gw.unexpected())
	}

	// The sidecar notified nobody itself: many evaluations after the alert
	// fired, no incident and no webhook call.
	require.Empty(t, v.incidents(), "a forwarding sidecar opens no incident of its own")
	require.Zero(t, hooks.tried("/l1"), "a forwarding sidecar calls no receiver of its own")

	// The dead gateway's failures are Prometheus's to count, and /ready
	// shows them beside the live gateways' deliveries.
	downPost := down + "/api/v2/alerts"
	require.Eventually(t, func() bool {
		return metricValue(t, v, `prometheus_notifications_errors_total{alertmanager="`+downPost+`"}`) > 0
	}, 10*time.Second, 100*time.Millisecond)
	require.GreaterOrEqual(t, metricValue(t, v, `prometheus_notifications_sent_total{alertmanager="`+gwA.URL+`/api/v2/alerts"}`), 2.0)
	require.Equal(t, 3.0, metricValue(t, v, "prometheus_notifications_alertmanagers_discovered"))
	st := readyForward(t, v)
	require.NotNil(t, st)
	require.False(t, st.NotifyLocally)
	require.Len(t, st.Gateways, 3)
	require.Equal(t, gwA.URL, st.Gateways[0].URL)
	require.GreaterOrEqual(t, st.Gateways[0].Sent, 2.0)
	require.Equal(t, down, st.Gateways[1].URL)
	require.Zero(t, st.Gateways[1].Sent)
	require.Positive(t, st.Gateways[1].Errors)
	require.GreaterOrEqual(t, st.Gateways[2].Sent, 2.0)

	// A reload sets notify_locally: the next firing goes to the gateways
	// and to the local receiver.
	writeConfig(t, dir, forwardConfig(dir, addr, app, hooks, urls, true))
	require.NoError(t, v.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		st := readyForward(t, v)
		return st != nil && st.NotifyLocally
	}, 10*time.Second, 50*time.Millisecond, "the reload did not apply notify_locally")
	before := len(gwB.received("high_cpu", false))
	app.cpu.Store(95)
	require.Eventually(t, func() bool { return len(hooks.accepted("/l1")) > 0 },
		20*time.Second, 50*time.Millisecond, "with notify_locally the local receiver is paged")
	require.Eventually(t, func() bool { return len(gwB.received("high_cpu", false)) > before },
		20*time.Second, 50*time.Millisecond, "with notify_locally the gateways still get the alert")
	require.Len(t, v.incidents(), 1)
}

// TestForwardToVigilGateway: a sidecar vigil forwards to a gateway vigil's
// own POST /api/v2/alerts; the gateway opens the incident (with the
// sidecar's pod label) and resolves it when the sidecar's alert resolves.
func TestForwardToVigilGateway(t *testing.T) {
	app := newGaugeApp(t, 95)
	hooks := newHookServer(t)
	gwDir, scDir := t.TempDir(), t.TempDir()
	gwAddr, scAddr := freePort(t), freePort(t)
	gwCfg := writeConfig(t, gwDir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
escalation:
  response_times: {critical: 1h}
  levels:
    - {name: support, notify: [l1]}
receivers:
  - {name: l1, webhook: {url: "%s/gateway-l1", secret: s1}}
`, filepath.Join(gwDir, "data"), gwAddr, hooks.URL))
	gw := startVigil(t, gwCfg, gwAddr)

	// The test user (admin) holds ingest.
	require.NoError(t, os.WriteFile(filepath.Join(scDir, "gateway.token"), []byte(e2eToken), 0o600))
	scCfg := writeConfig(t, scDir, forwardConfig(scDir, scAddr, app, hooks, []string{"http://" + gwAddr}, false))
	sc := startVigil(t, scCfg, scAddr)

	require.Eventually(t, func() bool { return len(hooks.accepted("/gateway-l1")) > 0 },
		30*time.Second, 100*time.Millisecond, "the gateway did not page for the forwarded alert")
	incs := gw.incidents()
	require.Len(t, incs, 1)
	require.Equal(t, "triggered", incs[0].State)
	resp, err := http.Get(gw.url("/api/v1/incidents"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "checkout-7d9f-abcde", "the sidecar's pod label reached the gateway's incident")
	require.Empty(t, sc.incidents(), "the sidecar notified nobody itself")
	require.Zero(t, hooks.tried("/l1"))

	app.cpu.Store(10)
	require.Eventually(t, func() bool {
		incs := gw.incidents()
		return len(incs) == 1 && incs[0].State == "resolved"
	}, 30*time.Second, 100*time.Millisecond, "the gateway's incident did not resolve with the sidecar's alert")
}
