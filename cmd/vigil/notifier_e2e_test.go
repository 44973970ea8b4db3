package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hookCall is one request a test receiver got.
type hookCall struct {
	path, id, kind, level string
	at                    time.Time
	accepted              bool
}

// hookServer stands in for webhook receivers and the deploy controller: it
// records every call and refuses them all (503) while failing is set.
type hookServer struct {
	*httptest.Server
	failing atomic.Bool
	mtx     sync.Mutex
	calls   []hookCall
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct {
			Incident struct {
				Kind      string `json:"kind"`
				LevelName string `json:"levelName"`
			} `json:"incident"`
		}
		_ = json.Unmarshal(body, &p)
		c := hookCall{path: r.URL.Path, id: r.Header.Get("webhook-id"), kind: p.Incident.Kind,
			level: p.Incident.LevelName, at: time.Now(), accepted: !h.failing.Load()}
		h.mtx.Lock()
		h.calls = append(h.calls, c)
		h.mtx.Unlock()
		if !c.accepted {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) accepted(path string) []hookCall {
	h.mtx.Lock()
	defer h.mtx.Unlock()
	var out []hookCall
	for _, c := range h.calls {
		if c.path == path && c.accepted {
			out = append(out, c)
		}
	}
	return out
}

func (h *hookServer) tried(path string) int {
	h.mtx.Lock()
	defer h.mtx.Unlock()
	n := 0
	for _, c := range h.calls {
		if c.path == path {
			n++
		}
	}
	return n
}

type incidentJSON struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Level        int       `json:"level"`
	CreatedAt    time.Time `json:"createdAt"`
	NextDeadline time.Time `json:"nextDeadline"`
	Rollback     *struct {
		Outcome string `json:"outcome"`
	} `json:"rollback"`
}

func (p *vigilProc) incidents() []incidentJSON {
	p.t.Helper()
	resp, err := http.Get(p.url("/api/v1/incidents"))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	var env struct {
		Data []incidentJSON `json:"data"`
	}
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&env))
	return env.Data
}

func (p *vigilProc) postJSON(path, body string) {
	p.t.Helper()
	resp, err := http.Post(p.url(path), "application/json", strings.NewReader(body))
	require.NoError(p.t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(p.t, http.StatusOK, resp.StatusCode, string(b))
}

// escalationConfig is a production vigil whose high_cpu rule (cpu_usage >
// 80 for 1s) escalates critical incidents through three levels, each a
// webhook of hooks (/l1, /l2, /l3), every responseTime; extra is appended.
func escalationConfig(dir, addr string, app *gaugeApp, hooks *hookServer, responseTime, extra string) string {
	return fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  app: {targets: ["%[3]s"], labels: {app: app}}
alerts:
  rules:
    - {name: high_cpu, condition: cpu_usage > 80, duration: 1s, severity: critical, labels: {app: app}}
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
`, filepath.Join(dir, "data"), addr, app.hostPort(), hooks.URL, responseTime) + extra
}

// TestCrashMidEscalation kills vigil with SIGKILL while an incident is
// escalating and every delivery is failing. After the restart every delivery
// is made, with the id it had before the crash, escalation continues at its
// deadline, and the rollback webhook is called exactly once.
func TestCrashMidEscalation(t *testing.T) {
	app := newGaugeApp(t, 95)
	hooks := newHookServer(t)
	hooks.failing.Store(true)
	dir := t.TempDir()
	addr := freePort(t)
	const responseTime = 8 * time.Second
	cfg := writeConfig(t, dir, escalationConfig(dir, addr, app, hooks, "8s", fmt.Sprintf(`rollback:
  webhook: {url: "%s/rollback", secret: s2}
  when: {severity: critical}
  window: 10m
  cooldown: 1h
`, hooks.URL)))

	v := startVigil(t, cfg, addr)
	v.postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.0.0","environment":"production"}`)
	v.postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.1.0","environment":"production"}`)

	// The incident opens; level 1 and the rollback are tried and fail.
	var inc incidentJSON
	require.Eventually(t, func() bool {
		list := v.incidents()
		if len(list) == 0 {
			return false
		}
		inc = list[0]
		return hooks.tried("/l1") > 0 && hooks.tried("/rollback") > 0
	}, 30*time.Second, 100*time.Millisecond, "no incident, or no delivery was tried")
	require.Equal(t, "triggered", inc.State)
	require.Empty(t, hooks.accepted("/l1"))

	v.stop(syscall.SIGKILL)
	hooks.failing.Store(false)
	v = startVigil(t, cfg, addr)

	// Every delivery is made once the receivers answer, with its old id.
	require.Eventually(t, func() bool {
		return len(hooks.accepted("/l1")) > 0 && len(hooks.accepted("/rollback")) > 0
	}, 30*time.Second, 100*time.Millisecond, "pending deliveries were lost in the crash")
	l1 := hooks.accepted("/l1")[0]
	require.Equal(t, "firing", l1.kind)
	hooks.mtx.Lock()
	var firstL1 hookCall
	for _, c := range hooks.calls {
		if c.path == "/l1" {
			firstL1 = c
			break
		}
	}
	hooks.mtx.Unlock()
	require.Equal(t, firstL1.id, l1.id, "the retried delivery must keep its webhook-id")

	// Escalation continues at the stored deadline.
	require.Eventually(t, func() bool { return len(hooks.accepted("/l2")) > 0 }, 30*time.Second, 100*time.Millisecond,
		"escalation did not continue after the restart")
	l2 := hooks.accepted("/l2")[0]
	require.Equal(t, "escalation", l2.kind)
	require.GreaterOrEqual(t, l2.at.Sub(inc.CreatedAt), responseTime-500*time.Millisecond,
		"level 2 was notified before the deadline")

	// The rollback webhook was called exactly once, whatever the crash did.
	time.Sleep(2 * time.Second)
	rb := hooks.accepted("/rollback")
	require.Len(t, rb, 1, "the rollback webhook must be called exactly once")
	got := v.incidents()
	require.NotEmpty(t, got)
	require.NotNil(t, got[0].Rollback)
	require.Equal(t, "delivered", got[0].Rollback.Outcome)
	require.Len(t, hooks.accepted("/l1"), 1, "level 1 must get the firing message once")
}
