package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowApp serves cpu_usage like gaugeApp, each scrape answered after delay.
type slowApp struct {
	*httptest.Server
	cpu   atomic.Int64
	delay atomic.Int64
}

func newSlowApp(t *testing.T, cpu int64) *slowApp {
	a := &slowApp{}
	a.cpu.Store(cpu)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(a.delay.Load()))
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE cpu_usage gauge\ncpu_usage %d\n", a.cpu.Load())
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *slowApp) hostPort() string { return strings.TrimPrefix(a.URL, "http://") }

// openIncident waits for the incident of high_cpu and its Level 1 message.
func openIncident(t *testing.T, v *vigilProc, hooks *hookServer) incidentJSON {
	t.Helper()
	var inc incidentJSON
	require.Eventually(t, func() bool {
		list := v.incidents()
		if len(list) == 0 || len(hooks.accepted("/l1")) == 0 {
			return false
		}
		inc = list[0]
		return true
	}, 30*time.Second, 100*time.Millisecond, "no incident, or Level 1 was not told")
	require.Equal(t, "triggered", inc.State)
	return inc
}

func kinds(calls []hookCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.kind)
	}
	return out
}

// windowedConfig is escalationConfig with a rule that reads only the last
// 2s of samples: a downtime of 3s then leaves it, after the start, with no
// sample from before the stop, as a downtime longer than the query lookback
// (5m) leaves any rule.
func windowedConfig(t *testing.T, dir, addr string, app *slowApp, hooks *hookServer) string {
	body := escalationConfig(dir, addr, &gaugeApp{Server: app.Server}, hooks, "1h", "")
	body = strings.Replace(body, "condition: cpu_usage > 80", `condition: "max_over_time(cpu_usage[2s]) > 80"`, 1)
	return writeConfig(t, dir, body)
}

// downtime is how long the tests keep vigil stopped: longer than the rule's
// window.
const downtime = 3 * time.Second

// TestRestartResolvesAlertClearedWhileDown: an alert fires, vigil stops
// (SIGTERM), the metric drops, vigil starts again after the samples from
// before the stop are out of the rule's reach. The rules never see the
// alert again, so nothing would ever send its resolution; the reconcile
// after the first fresh evaluation resolves the incident and tells Level 1.
func TestRestartResolvesAlertClearedWhileDown(t *testing.T) {
	app := newSlowApp(t, 95)
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := windowedConfig(t, dir, addr, app, hooks)

	v := startVigil(t, cfg, addr)
	inc := openIncident(t, v, hooks)
	v.stop(syscall.SIGTERM)

	app.cpu.Store(50)
	time.Sleep(downtime)
	started := time.Now()
	v = startVigil(t, cfg, addr)
	require.Eventually(t, func() bool {
		list := v.incidents()
		return len(list) == 1 && list[0].State == "resolved"
	}, 30*time.Second, 100*time.Millisecond, "the incident of the alert that cleared while vigil was down stayed open")
	require.Less(t, time.Since(started), 15*time.Second)
	require.Eventually(t, func() bool { return len(hooks.accepted("/l1")) == 2 }, 10*time.Second, 100*time.Millisecond)
	l1 := hooks.accepted("/l1")
	require.Equal(t, []string{"firing", "resolved"}, kinds(l1))
	require.Empty(t, hooks.accepted("/l2"), "Level 2 was never told, so it hears nothing")
	require.Nil(t, v.alert("high_cpu"))
	got := v.incidents()
	require.Equal(t, inc.ID, got[0].ID)
}

// TestRestartKeepsIncidentOfAlertStillFiring: the rule reads only the last
// 2s of samples (windowedConfig) and every scrape is slow. So the first
// evaluations after the start see no data and no alert; a reconcile that
// judged them would resolve an incident whose alert still fires. It waits
// for an evaluation of samples scraped after the start instead, and the
// incident stays the one it was.
func TestRestartKeepsIncidentOfAlertStillFiring(t *testing.T) {
	app := newSlowApp(t, 95)
	app.delay.Store(int64(600 * time.Millisecond))
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := windowedConfig(t, dir, addr, app, hooks)

	v := startVigil(t, cfg, addr)
	inc := openIncident(t, v, hooks)
	v.stop(syscall.SIGTERM)
	time.Sleep(downtime)

	v = startVigil(t, cfg, addr)
	require.Eventually(t, func() bool {
		a := v.alert("high_cpu")
		return a != nil && a.State == "firing"
	}, 30*time.Second, 100*time.Millisecond, "high_cpu did not fire again")
	time.Sleep(3 * time.Second)
	got := v.incidents()
	require.Len(t, got, 1, "the same firing opened a second incident")
	require.Equal(t, inc.ID, got[0].ID)
	require.Equal(t, "triggered", got[0].State)
	require.Equal(t, []string{"firing"}, kinds(hooks.accepted("/l1")), "Level 1 heard of a resolution that did not happen")
	require.Contains(t, v.out.String(), "incidents reconciled with the rules", "the reconcile did not run")
}
