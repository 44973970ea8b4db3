package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fleetIncident is what the fleet test reads of an incident.
type fleetIncident struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Members []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"members"`
	Rollback *struct {
		Outcome string `json:"outcome"`
	} `json:"rollback"`
}

func (p *vigilProc) fleetIncidents() []fleetIncident {
	p.t.Helper()
	var env struct {
		Data []fleetIncident `json:"data"`
	}
	getJSON(p.t, p.url("/api/v1/incidents"), &env)
	return env.Data
}

// TestFleetPagesOncePerProblem runs the fleet of DESIGN.md with real
// processes: three sidecars, each scraping its own pod of the app, forward
// their alerts to two gateways that share one PostgreSQL database. When the
// CPU rises on all three pods there is one incident with three members, one
// Level 1 page per receiver, one rollback call and one Level 2 page at the
// deadline; an acknowledgement through gateway A shows on gateway B; the
// incident resolves only when the last pod clears.
func TestFleetPagesOncePerProblem(t *testing.T) {
	dsn := freshDatabase(t, haDSN(t))
	hooks := newHookServer(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(e2eToken), 0o600))

	const responseTime = 15 * time.Second
	var gateways []*vigilProc
	var gatewayURLs []string
	addrs := []string{freePort(t), freePort(t)}
	for _, a := range addrs {
		gatewayURLs = append(gatewayURLs, fmt.Sprintf("%q", "http://"+a))
	}
	for i, addr := range addrs {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
storage:
  incidents: "%[3]s"
  lease: 2s
escalation:
  response_times: {critical: %[5]s}
  levels:
    - {name: support, notify: [l1]}
    - {name: development, notify: [l2]}
    - {name: architecture, notify: [l3]}
receivers:
  - {name: l1, webhook: {url: "%[4]s/l1", secret: s1}}
  - {name: l2, webhook: {url: "%[4]s/l2", secret: s1}}
  - {name: l3, webhook: {url: "%[4]s/l3", secret: s1}}
rollback:
  webhook: {url: "%[4]s/rollback", secret: s2}
  when: {severity: critical}
  window: 10m
  cooldown: 1h
`, filepath.Join(dir, "data"), addr, dsn, hooks.URL, responseTime))
		g := startVigil(t, cfg, addr)
		t.Logf("gateway %c at %s", 'A'+i, addr)
		gateways = append(gateways, g)
	}
	a, b := gateways[0], gateways[1]
	a.postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.0.0","environment":"production"}`)
	a.postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.1.0","environment":"production"}`)

	var apps []*gaugeApp
	for i := range 3 {
		app := newGaugeApp(t, 10)
		apps = append(apps, app)
		dir := t.TempDir()
		addr := freePort(t)
		cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
global:
  external_labels: {pod: checkout-%[4]d}
collectors:
  app: {targets: ["%[3]s"], labels: {app: app}}
alerts:
  rules:
    - {name: high_cpu, condition: cpu_usage > 80, duration: 1s, severity: critical, labels: {app: app}}
  forward:
    urls: [%[5]s]
    token_file: %[6]s
`, filepath.Join(dir, "data"), addr, app.hostPort(), i, strings.Join(gatewayURLs, ", "), tokenFile))
		startVigil(t, cfg, addr)
	}

	for _, app := range apps {
		app.cpu.Store(95)
	}
	var inc fleetIncident
	require.Eventually(t, func() bool {
		list := a.fleetIncidents()
		if len(list) != 1 {
			return false
		}
		inc = list[0]
		return len(inc.Members) == 3 && len(hooks.accepted("/l1")) > 0 && len(hooks.accepted("/rollback")) > 0
	}, 60*time.Second, 200*time.Millisecond, "no incident with three members, Level 1 page and rollback")
	pods := map[string]bool{}
	for _, m := range inc.Members {
		pods[m.Labels["pod"]] = true
	}
	require.Equal(t, map[string]bool{"checkout-0": true, "checkout-1": true, "checkout-2": true}, pods)

	// Both gateways see the same one incident.
	listB := b.fleetIncidents()
	require.Len(t, listB, 1)
	require.Equal(t, inc.ID, listB[0].ID)

	// Level 2 once at the deadline, nothing sent twice.
	require.Eventually(t, func() bool { return len(hooks.accepted("/l2")) > 0 }, responseTime+20*time.Second,
		200*time.Millisecond, "Level 2 was not paged at its deadline")
	time.Sleep(3 * time.Second)
	require.Len(t, hooks.accepted("/l1"), 1, "Level 1 must be paged once for the group")
	require.Len(t, hooks.accepted("/l2"), 1, "Level 2 must be paged once")
	require.Len(t, hooks.accepted("/rollback"), 1, "the rollback webhook must be called once")

	// An acknowledgement through A shows on B's API and page.
	a.postJSON("/api/v1/incidents/"+inc.ID+"/ack", `{"by":"alice","comment":"on it"}`)
	require.Eventually(t, func() bool {
		l := b.fleetIncidents()
		return len(l) == 1 && l[0].State == "acknowledged"
	}, 10*time.Second, 100*time.Millisecond, "gateway B does not show the acknowledgement")
	// The acknowledgement is by the token's user, with the comment.
	page := getBody(t, b.url("/"))
	require.Contains(t, page, `class="incident state-acknowledged`)
	require.Contains(t, page, "on it")

	// Two pods clear: still open. The third clears: resolved.
	apps[0].cpu.Store(10)
	apps[1].cpu.Store(10)
	time.Sleep(8 * time.Second)
	require.NotEqual(t, "resolved", a.fleetIncidents()[0].State, "resolved before the last member cleared")
	apps[2].cpu.Store(10)
	require.Eventually(t, func() bool {
		l := b.fleetIncidents()
		return len(l) == 1 && l[0].State == "resolved"
	}, 30*time.Second, 200*time.Millisecond, "the incident did not resolve when all three pods cleared")
	require.Len(t, a.fleetIncidents(), 1)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}
