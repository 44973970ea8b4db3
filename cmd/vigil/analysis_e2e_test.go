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
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// versionApp is one version of the app: each scrape counts 100 more
// requests, errorsPer100 of them 5xx, all under 50ms.
type versionApp struct {
	*httptest.Server
	requests atomic.Int64
}

func newVersionApp(t *testing.T, version string, errorsPer100 int64, rssBytes int64) *versionApp {
	a := &versionApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := a.requests.Add(100) / 100
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE app_build_info gauge\napp_build_info{version=%q} 1\n", version)
		fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total{code=\"200\"} %d\n", n*(100-errorsPer100))
		fmt.Fprintf(w, "http_requests_total{code=\"500\"} %d\n", n*errorsPer100)
		fmt.Fprintf(w, "# TYPE http_request_duration_seconds histogram\n")
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"0.05\"} %d\n", n*100)
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", n*100)
		fmt.Fprintf(w, "http_request_duration_seconds_sum %g\n", float64(n)*2)
		fmt.Fprintf(w, "http_request_duration_seconds_count %d\n", n*100)
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", rssBytes)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *versionApp) hostPort() string { return strings.TrimPrefix(a.URL, "http://") }

// TestDeployAnalysisRollsBackBadCanary runs two versions of the app side by
// side, the new one answering 10% of its requests with 5xx against the old
// one's 1%. The canary deploy fails its analysis at the first step on
// error_rate, the rollback webhook is called once with reason "analysis",
// and the page shows both versions' figures.
func TestDeployAnalysisRollsBackBadCanary(t *testing.T) {
	stable := newVersionApp(t, "1.0.0", 1, 100<<20)
	canary := newVersionApp(t, "2.0.0", 10, 120<<20)
	var (
		mtx    sync.Mutex
		bodies []string
	)
	deployer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mtx.Lock()
		bodies = append(bodies, r.Header.Get("webhook-id")+" "+string(b))
		mtx.Unlock()
	}))
	t.Cleanup(deployer.Close)
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  app:
    targets: ["%[3]s", "%[4]s"]
    labels: {app: app}
    memory_limit: 1GiB
escalation:
  response_times: {critical: 1h}
  levels:
    - {name: support, notify: [l1]}
receivers:
  - {name: l1, webhook: {url: "%[5]s/l1", secret: s1}}
rollback:
  webhook: {url: "%[6]s/rollback", secret: s2}
  when: {severity: critical, app: app}
analysis:
  interval: 3s
  steps: 4
  min_requests: 50
  thresholds:
    error_rate: {max: 5, max_ratio: 2}
    latency: {max_ratio: 2}
    memory_usage: {max: 80}
`, filepath.Join(dir, "data"), addr, stable.hostPort(), canary.hostPort(), hooks.URL, deployer.URL))
	v := startVigil(t, cfg, addr)

	// Both versions are scraped before the deploy is recorded.
	require.Eventually(t, func() bool { return stable.requests.Load() >= 300 && canary.requests.Load() >= 300 },
		20*time.Second, 50*time.Millisecond)
	v.postJSON("/api/v1/deploys", fmt.Sprintf(`{"version": "1.0.0", "time": %q}`, time.Now().Add(-time.Hour).Format(time.RFC3339)))
	resp, err := http.Post(v.url("/api/v1/deploys"), "application/json", strings.NewReader(`{"version": "2.0.0", "strategy": "canary"}`))
	require.NoError(t, err)
	var deploy struct {
		Data struct {
			ID       string `json:"id"`
			Previous string `json:"previous_version"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&deploy))
	resp.Body.Close()
	require.Equal(t, "1.0.0", deploy.Data.Previous)

	type analysisJSON struct {
		Verdict         string `json:"verdict"`
		Version         string `json:"version"`
		BaselineVersion string `json:"baseline_version"`
		FailedStep      int    `json:"failed_step"`
		IncidentID      string `json:"incident_id"`
		Failure         struct {
			Signal   string  `json:"signal"`
			Canary   float64 `json:"canary"`
			Baseline float64 `json:"baseline"`
		} `json:"failure"`
	}
	var a analysisJSON
	require.Eventually(t, func() bool {
		resp, err := http.Get(v.url("/api/v1/deploys/" + deploy.Data.ID + "/analysis"))
		if err != nil || resp.StatusCode != http.StatusOK {
			if resp != nil {
				resp.Body.Close()
			}
			return false
		}
		defer resp.Body.Close()
		var env struct{ Data analysisJSON }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
		a = env.Data
		return a.Verdict != "" && a.IncidentID != ""
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, "fail", a.Verdict)
	require.Equal(t, 1, a.FailedStep)
	require.Equal(t, "2.0.0", a.Version)
	require.Equal(t, "1.0.0", a.BaselineVersion)
	require.Equal(t, "error_rate", a.Failure.Signal)
	require.InDelta(t, 10, a.Failure.Canary, 0.01)
	require.InDelta(t, 1, a.Failure.Baseline, 0.01)

	// The rollback webhook: once, with reason analysis and the figures.
	require.Eventually(t, func() bool {
		mtx.Lock()
		defer mtx.Unlock()
		return len(bodies) > 0
	}, 20*time.Second, 50*time.Millisecond)
	time.Sleep(3 * time.Second) // more steps and ticks: still one call
	mtx.Lock()
	calls := append([]string(nil), bodies...)
	mtx.Unlock()
	require.Len(t, calls, 1, "the rollback webhook must be called once")
	require.Contains(t, calls[0], `"reason":"analysis"`)
	require.Contains(t, calls[0], `"bad_version":"2.0.0"`)
	require.Contains(t, calls[0], `"previous_version":"1.0.0"`)
	require.Contains(t, calls[0], `"signal":"error_rate"`)

	// The incident is open and has the rollback.
	var found bool
	for _, inc := range v.incidents() {
		if inc.ID == a.IncidentID {
			found = true
			require.NotNil(t, inc.Rollback)
		}
	}
	require.True(t, found, "the analysis incident %s is listed", a.IncidentID)

	// The page shows the step with both versions' figures side by side.
	resp, err = http.Get(v.url("/"))
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	html := string(page)
	require.Contains(t, html, `id="analysis-`+deploy.Data.ID+`"`)
	require.Contains(t, html, `<code>2.0.0</code> against <code>1.0.0</code>`)
	require.Contains(t, html, `verdict-fail`)
	require.Contains(t, html, `<span class="canary">10%</span> / <span class="baseline">1%</span>`)
	require.Contains(t, html, `<span class="canary">11.7%</span> / <span class="baseline">9.77%</span>`, "memory_usage of each version (of 1GiB)")
}
