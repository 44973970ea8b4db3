package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// outageDuration is how long the outage tests stop the backend: 30s, or
// $VIGIL_E2E_OUTAGE (the 5m).
func outageDuration(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("VIGIL_E2E_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err)
		return d
	}
	return 30 * time.Second
}

// podApp is one pod's app: a gauge, app_queue_depth, rising every 300ms, and
// the process and request metrics the Application dashboard reads (vigil
// derives cpu_usage from process_cpu_seconds_total).
type podApp struct {
	*httptest.Server
	depth atomic.Int64
}

func newPodApp(t *testing.T) *podApp {
	a := &podApp{}
	start := time.Now()
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secs := time.Since(start).Seconds()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE app_queue_depth gauge\napp_queue_depth %d\n", a.depth.Load())
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", secs/10)
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 64<<20)
		fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %d\nhttp_requests_total{code=\"500\"} %d\n",
			int(secs*20), int(secs))
	}))
	t.Cleanup(a.Close)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				a.depth.Add(1)
			}
		}
	}()
	return a
}

func (a *podApp) hostPort() string { return strings.TrimPrefix(a.URL, "http://") }

// sidecar is one vigil of the fleet, with its pod's app.
type sidecar struct {
	pod string
	v   *vigilProc
	app *podApp
}

// fleetConfig is a sidecar's config: scrape its app every second, write to
// promAddr with external label pod.
func fleetConfig(dataDir, addr, app, promAddr, pod string) string {
	return e2eConfig(dataDir, addr, app, "5m") + fmt.Sprintf(`global:
  external_labels: {pod: %s}
remote_write:
  - name: backend
    url: http://%s/api/v1/write
    queue_config: {batch_send_deadline: 1s, max_backoff: 1s}
`, pod, promAddr)
}

// vmRSS is VmRSS of each sidecar, in bytes.
func vmRSS(t *testing.T, fleet []sidecar) []int64 {
	out := make([]int64, len(fleet))
	for i, s := range fleet {
		out[i] = rssBytes(t, s.v.cmd.Process.Pid)
	}
	return out
}

// watchRSS reads the sidecars' VmRSS every second until until and returns
// each one's largest reading.
func watchRSS(t *testing.T, fleet []sidecar, until time.Time) []int64 {
	peak := make([]int64, len(fleet))
	for {
		for i, r := range vmRSS(t, fleet) {
			peak[i] = max(peak[i], r)
		}
		if !time.Now().Before(until) {
			return peak
		}
		time.Sleep(min(time.Second, time.Until(until)))
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// queryRange runs a range query on the Prometheus API at addr and returns its
// series by labels, with add added to each.
func queryRange(t *testing.T, addr, query string, r promv1.Range, add model.LabelSet) map[string][]model.SamplePair {
	t.Helper()
	client, err := api.NewClient(api.Config{Address: addr})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, _, _, err := promv1.NewAPI(client).QueryRange(ctx, query, r)
	require.NoError(t, err)
	m, ok := v.(model.Matrix)
	require.True(t, ok, "%s is not a matrix: %v", query, v)
	out := map[string][]model.SamplePair{}
	for _, s := range m {
		for n, v := range add {
			s.Metric[n] = v
		}
		out[s.Metric.String()] = s.Values
	}
	return out
}

// sampleDiff describes the first difference between two query results by
// series, or returns "" when they hold the same series with the same
// timestamps and values, NaN equal to NaN (vigil's own summaries and ratios
// have NaN samples, which == and require.Equal tell apart).
func sampleDiff(want, got map[string][]model.SamplePair) string {
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("%s: only in the receiver", k)
		}
	}
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		w, g := want[k], got[k]
		if g == nil {
			return fmt.Sprintf("%s: not in the receiver", k)
		}
		for i := range max(len(w), len(g)) {
			switch {
			case i >= len(g):
				return fmt.Sprintf("%s: %d samples in the sidecar, %d in the receiver; first missing %v", k, len(w), len(g), w[i])
			case i >= len(w):
				return fmt.Sprintf("%s: %d samples in the sidecar, %d in the receiver; first extra %v", k, len(w), len(g), g[i])
			case w[i].Timestamp != g[i].Timestamp ||
				!(w[i].Value == g[i].Value || math.IsNaN(float64(w[i].Value)) && math.IsNaN(float64(g[i].Value))):
				return fmt.Sprintf("%s: sample %d is %v in the sidecar, %v in the receiver", k, i, w[i], g[i])
			}
		}
	}
	return ""
}

// TestRemoteWriteFleet is issue 12's fleet: three sidecar vigils, each
// scraping its own pod's app with external label pod, write to one real
// Prometheus. The receiver is stopped for an outage (30s, or
// $VIGIL_E2E_OUTAGE) while they scrape. Afterwards:
//
//   - every series of each sidecar (its app's and its own) has the same raw
//     samples, timestamps and values, in the receiver as in the sidecar,
//     over the whole run, the outage included; and /api/v1/query_range of
//     the app's gauge returns the same points on both;
//   - so every sample of the outage arrived, and there were samples in it
//     (at least half of one a second per app series: a loaded machine
//     misses scrape ticks, and tests do not fail on timing);
//   - each sidecar's VmRSS during the outage stayed within 20% of before;
//   - every dashboard query runs on the receiver with no error, and the pod
//     variable lists the three pods (dashboards' TestDashboardsOnBackend).
func TestRemoteWriteFleet(t *testing.T) {
	outage := outageDuration(t)
	bin := prometheusBinary(t)
	promAddr := freePort(t)
	promDir := t.TempDir()
	prom := startPrometheus(t, bin, promDir, promAddr)
	promURL := "http://" + promAddr

	start := time.Now()
	var fleet []sidecar
	for i := range 3 {
		pod := fmt.Sprintf("checkout-%d", i)
		app := newPodApp(t)
		dir := t.TempDir()
		addr := freePort(t)
		v := startVigil(t, writeConfig(t, dir, fleetConfig(filepath.Join(dir, "data"), addr, app.hostPort(), promAddr, pod)), addr)
		fleet = append(fleet, sidecar{pod: pod, v: v, app: app})
	}
	for _, s := range fleet {
		require.Eventually(t, func() bool {
			return len(rangeSamples(t, promURL, fmt.Sprintf(`app_queue_depth{pod=%q}[1m]`, s.pod), time.Now(), nil)) > 0
		}, 60*time.Second, 500*time.Millisecond, "nothing of %s reached the receiver before the outage", s.pod)
	}

	// RSS before: past vigil's start-up (it releases its start-up pages
	// 30s after start), the peak of 15 readings, one a second.
	time.Sleep(time.Until(start.Add(35 * time.Second)))
	before := watchRSS(t, fleet, time.Now().Add(15*time.Second))

	prom.stop()
	down := time.Now()
	during := watchRSS(t, fleet, down.Add(outage))
	for _, s := range fleet {
		q := s.v.readyQueues()
		require.Len(t, q, 1)
		require.NotEmpty(t, q[0].LastError, "%s: /ready shows the failing sends", s.pod)
		t.Logf("%s after %s of outage: pending %v samples, last error %q", s.pod, outage, q[0].PendingSamples, q[0].LastError)
	}
	startPrometheus(t, bin, promDir, promAddr)
	up := time.Now()

	// Every sample of every series, from each sidecar's start, reaches
	// the receiver: compared series by series.
	at := time.Now().Add(-2 * time.Second)
	window := fmt.Sprintf("[%ds]", int(at.Sub(start).Seconds())+10)
	for _, s := range fleet {
		pod := model.LabelSet{"pod": model.LabelValue(s.pod)}
		want := rangeSamples(t, s.v.url(""), `{__name__=~".+"}`+window, at, pod)
		require.Greater(t, len(want), 50, "%s: the app's and vigil's own series", s.pod)
		var (
			got  map[string][]model.SamplePair
			diff string
		)
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
			got = rangeSamples(t, promURL, fmt.Sprintf(`{pod=%q}`, s.pod)+window, at, nil)
			if diff = sampleDiff(want, got); diff == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the receiver's samples still differ from the sidecar's after 90s: %s", s.pod, diff)
			}
		}
		var samples int
		for _, v := range got {
			samples += len(v)
		}
		t.Logf("%s: %d series, %d samples the same in the sidecar and the receiver", s.pod, len(got), samples)

		// The outage's samples: the comparison above proves they
		// arrived; this proves there were some, one a second for each
		// series the app serves. Half of them: on a loaded machine the
		// scrape loop skips ticks it is late for.
		for _, name := range []string{"app_queue_depth", "cpu_usage", "process_cpu_seconds_total", "http_requests_total"} {
			n := 0
			for k, v := range got {
				if !strings.HasPrefix(k, name+"{") {
					continue
				}
				n++
				var inOutage int
				for _, smp := range v {
					if ts := smp.Timestamp.Time(); ts.After(down) && ts.Before(down.Add(outage)) {
						inOutage++
					}
				}
				require.GreaterOrEqualf(t, inOutage, int(outage.Seconds())/2, "%s: samples in the outage", k)
				t.Logf("%s: %d samples in the outage", k, inOutage)
			}
			require.Positivef(t, n, "%s: no %s series", s.pod, name)
		}

		// What a dashboard asks: a range query over the same range, the
		// same points on both.
		r := promv1.Range{Start: start, End: at, Step: time.Second}
		wantR := queryRange(t, s.v.url(""), "app_queue_depth", r, pod)
		gotR := queryRange(t, promURL, fmt.Sprintf(`app_queue_depth{pod=%q}`, s.pod), r, nil)
		require.Len(t, wantR, 1)
		require.Empty(t, sampleDiff(wantR, gotR), "%s: query_range", s.pod)
		for k, v := range gotR {
			require.Greater(t, len(v), int((outage + 30*time.Second).Seconds()), k)
			require.Less(t, v[0].Value, v[len(v)-1].Value, "%s: rises over the run", k)
		}
	}
	t.Logf("receiver back at %s; all samples compared %s later", up.Format(time.TimeOnly), time.Since(up).Round(time.Second))

	// RSS: each sidecar's peak during the outage within 20% of its peak
	// in the 15s before. Peaks against peaks, one reading a second: the
	// garbage collector's swings show in both.
	for i, s := range fleet {
		t.Logf("%s VmRSS: peak before %s, peak during the %s outage %s (%+.1f%%), now %s", s.pod,
			mib(before[i]), outage, mib(during[i]), 100*(float64(during[i])/float64(before[i])-1), mib(vmRSS(t, fleet)[i]))
	}
	for i, s := range fleet {
		require.LessOrEqualf(t, float64(during[i]), 1.2*float64(before[i]), "%s: VmRSS during the outage", s.pod)
	}

	// The dashboards on the receiver.
	pods := make([]string, len(fleet))
	for i, s := range fleet {
		pods[i] = s.pod
	}
	slices.Sort(pods)
	runDashboardsOnBackend(t, promURL, pods, start)
}

// runDashboardsOnBackend runs the dashboards package's
// TestDashboardsOnBackend against url, and fails if it fails or skips.
func runDashboardsOnBackend(t *testing.T, url string, pods []string, start time.Time) {
	t.Helper()
	cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "^TestDashboardsOnBackend$", ".")
	cmd.Dir = filepath.Join("..", "..", "dashboards")
	cmd.Env = append(os.Environ(),
		"VIGIL_DASHBOARDS_BACKEND="+url,
		"VIGIL_DASHBOARDS_PODS="+strings.Join(pods, ","),
		"VIGIL_DASHBOARDS_START="+start.UTC().Format(time.RFC3339),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("dashboards on the receiver:\n%s", out)
	require.NoError(t, err)
	require.Contains(t, string(out), "--- PASS: TestDashboardsOnBackend")
}
