package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRuleOverLimitPagesAndReconciles (real binary): high_cpu opens an
// incident for core 0; then the app shows 10 cores over 80 with
// alerts.limit 3, and core 0 recovers. Over the limit Prometheus drops
// high_cpu's alerts and sends nothing, so vigil's own rule_limit_exceeded
// fires and Level 1 is paged for it, while core 0's incident stays open
// (nothing can tell that its alert ended). Back under the limit, the
// incident is reconciled: its alert is not active, so it is resolved and
// Level 1 hears it.
func TestRuleOverLimitPagesAndReconciles(t *testing.T) {
	var mtx sync.Mutex
	cpu := map[int]int{0: 95}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mtx.Lock()
		defer mtx.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE cpu_usage gauge")
		for core, v := range cpu {
			fmt.Fprintf(w, "cpu_usage{core=\"%d\"} %d\n", core, v)
		}
	}))
	defer app.Close()
	set := func(m map[int]int) {
		mtx.Lock()
		defer mtx.Unlock()
		cpu = m
	}
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	body := escalationConfig(dir, addr, &gaugeApp{Server: app}, hooks, "1h", "")
	body = strings.Replace(body, "alerts:\n", "alerts:\n  limit: 3\n  absent_after: 4s\n", 1)
	// One incident per core: the test is about core 0's alert ending while
	// the rule was over its limit, not about core 1 joining its group.
	body = strings.Replace(body, "escalation:\n", "escalation:\n  group_by: [alertname, core]\n", 1)
	cfg := writeConfig(t, dir, body)
	v := startVigil(t, cfg, addr)

	var first string
	require.Eventually(t, func() bool {
		first = v.incidentOf("high_cpu")
		return first != ""
	}, 30*time.Second, 100*time.Millisecond, "high_cpu opened no incident")

	storm := map[int]int{0: 50}
	for core := 1; core <= 10; core++ {
		storm[core] = 95
	}
	set(storm)
	require.Eventually(t, func() bool { return v.firing("rule_limit_exceeded") }, 30*time.Second, 100*time.Millisecond,
		"a rule over its limit paged nobody")
	a := v.alert("rule_limit_exceeded")
	require.Equal(t, "high_cpu", a.Labels["rule"])
	require.Equal(t, "critical", a.Labels["severity"])
	var limitInc string
	require.Eventually(t, func() bool {
		limitInc = v.incidentOf("rule_limit_exceeded")
		return limitInc != ""
	}, 10*time.Second, 100*time.Millisecond)
	time.Sleep(3 * time.Second) // health checks and evaluations over the limit
	state, _ := v.incidentState(first)
	require.Equal(t, "triggered", state, "judged while the rule was over its limit")

	// Back under the limit: core 0's alert ended meanwhile.
	set(map[int]int{0: 50, 1: 95})
	require.Eventually(t, func() bool {
		state, _ := v.incidentState(first)
		return state == "resolved"
	}, 30*time.Second, 200*time.Millisecond, "the incident of an alert that ended over the limit stayed open")
	require.Eventually(t, func() bool {
		state, _ := v.incidentState(limitInc)
		return state == "resolved"
	}, 30*time.Second, 200*time.Millisecond, "rule_limit_exceeded did not resolve")
	resolved := 0
	for _, c := range hooks.accepted("/l1") {
		if c.kind == "resolved" {
			resolved++
		}
	}
	require.GreaterOrEqual(t, resolved, 1, "Level 1 heard of no end: %v", kinds(hooks.accepted("/l1")))
}
