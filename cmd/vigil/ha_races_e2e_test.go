package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// post sends body to path and returns the status code.
func (p *vigilProc) post(path, body string) int {
	p.t.Helper()
	resp, err := http.Post(p.url(path), "application/json", strings.NewReader(body))
	require.NoError(p.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metric returns the value of an unlabelled sample on /metrics, as text.
func (p *vigilProc) metric(name string) string {
	p.t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	require.NoError(p.t, sc.Err())
	return ""
}

// TestHASharedWrites: requests that change shared state, sent to both
// gateways of a pair at once, are taken once each: operators pressing
// rollback on both call the deploy controller once (the others get 409,
// the cooldown), and failed backups posted to both are all counted, in
// the metric of either gateway.
func TestHASharedWrites(t *testing.T) {
	dsn := freshDatabase(t, haDSN(t))
	app := newGaugeApp(t, 10) // no alert: the rollbacks are by hand
	hooks := newHAHooks(t)
	procs := startHAPair(t, dsn, app, hooks)
	procs[0].postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.1.0","environment":"production"}`)

	const each = 4
	var (
		wg    sync.WaitGroup
		mtx   sync.Mutex
		codes = map[int]int{}
	)
	for range each {
		for _, p := range procs {
			wg.Go(func() {
				code := p.post("/api/v1/rollback", `{"reason":"error spike"}`)
				mtx.Lock()
				codes[code]++
				mtx.Unlock()
			})
		}
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusOK: 1, http.StatusConflict: 2*each - 1}, codes)
	calls := 0
	for _, d := range hooks.snapshot() {
		if d.path == "/rollback" {
			calls += d.requests
		}
	}
	require.Equal(t, 1, calls, "deploy controller calls")

	const failures = 10
	for range failures {
		for _, p := range procs {
			wg.Go(func() {
				require.Equal(t, http.StatusOK, p.post("/api/v1/backups", `{"ok":false,"error":"disk full"}`))
			})
		}
	}
	wg.Wait()
	for i, p := range procs {
		require.Equal(t, fmt.Sprint(2*failures), p.metric("vigil_backup_failures_total"), "gateway %d", i)
	}
}
