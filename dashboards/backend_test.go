package dashboards

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Environment of TestDashboardsOnBackend, set by cmd/vigil's
// TestRemoteWriteFleet, which runs it against its receiver.
const (
	// envBackend is the base URL of a Prometheus-API backend that holds a
	// fleet of vigils' series (remote write with external label pod).
	envBackend = "VIGIL_DASHBOARDS_BACKEND"
	// envPods lists, comma-separated, the pods the pod variable must list.
	envPods = "VIGIL_DASHBOARDS_PODS"
	// envStart is the start of the dashboards' time range (RFC 3339); the
	// end is now.
	envStart = "VIGIL_DASHBOARDS_START"
)

// TestDashboardsOnBackend runs every query of every dashboard (variables,
// annotations, every panel's targets) against a remote-write backend holding
// several vigils' series, as Grafana's Prometheus data source does with every
// variable at All, and fails on any query the backend refuses. The pod
// variable must list exactly the pods of $VIGIL_DASHBOARDS_PODS, and the
// results must show each of them. It skips without $VIGIL_DASHBOARDS_BACKEND.
func TestDashboardsOnBackend(t *testing.T) {
	base := os.Getenv(envBackend)
	if base == "" {
		t.Skipf("%s is not set: cmd/vigil's TestRemoteWriteFleet runs this test against its receiver", envBackend)
	}
	pods := strings.Split(os.Getenv(envPods), ",")
	require.NotEmpty(t, pods[0], envPods)
	slices.Sort(pods)
	start, err := time.Parse(time.RFC3339, os.Getenv(envStart))
	require.NoError(t, err, envStart)

	// The backend is Prometheus, not vigil: no token is needed, and the
	// test's is ignored.
	g := &grafana{v: &vigilProc{t: t, base: strings.TrimSuffix(base, "/"), out: &lockedBuffer{}},
		start: start, end: time.Now(), step: time.Second, scrapeInterval: time.Second}

	// The pod variable's query itself, as Grafana sends it.
	listed, err := g.labelValues("pod", "vigil_ready")
	require.NoError(t, err)
	require.Equal(t, pods, listed, "label_values(vigil_ready, pod)")
	t.Logf("label_values(vigil_ready, pod) = %v", listed)

	seen := map[string]bool{}
	var queries, withData int
	for file, d := range loadDashboards(t) {
		vars, err := g.variables(d)
		require.NoError(t, err, file)
		require.Equalf(t, "("+strings.Join(pods, "|")+")", vars["pod"], "%s: pod at All", file)
		if file == "overview.json" || file == "application.json" {
			// The sidecars scrape an app labelled app (with process
			// metrics); the variable lists it, and not vigil. They run
			// no database or host collector, so those dashboards' app
			// variables list nothing.
			require.Equalf(t, "app", vars["app"], "%s: app at All", file)
		}
		t.Logf("%s: variables %v", file, vars)
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 1 {
				continue
			}
			expr, err := g.interpolate(a.Expr, vars)
			require.NoError(t, err, "%s: annotation %s", file, a.Name)
			_, err = g.query(expr, false)
			require.NoErrorf(t, err, "%s: annotation %s: %s", file, a.Name, expr)
			queries++
		}
		for _, p := range allPanels(d.Panels) {
			if p.Type == "row" {
				continue
			}
			for _, r := range g.run(t, file, p, vars) {
				queries++
				if len(r.series) > 0 {
					withData++
				}
				for _, s := range r.series {
					if pod := s.Metric["pod"]; pod != "" {
						seen[pod] = true
					}
				}
			}
		}
	}
	t.Logf("%d queries ran without error on %s, %d with data; pods seen in results: %v", queries, base, withData, seen)
	for _, pod := range pods {
		require.Truef(t, seen[pod], "no panel shows a series of pod %s", pod)
	}
}
