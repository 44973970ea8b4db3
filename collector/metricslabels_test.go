package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// TestSeedMetricsBlockLabelsTheAppNotVigil is issue 9's case: the seed's
// metrics block (labels app: app, environment: production) beside
// collectors.app made `count by (job) ({app="app"})` count vigil's own
// series, so high_cpu and high_memory could fire on vigil's usage. The block
// labels what vigil scrapes of the app; vigil's own scrape keeps app="vigil"
// even when its endpoint serves a series labelled app="app".
func TestSeedMetricsBlockLabelsTheAppNotVigil(t *testing.T) {
	_, appAddr := app(t, "text/plain; version=0.0.4")
	self := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "process_cpu_seconds_total{app=\"app\",environment=\"production\"} 7\nvigil_up 1\n")
	}))
	t.Cleanup(self.Close)
	selfAddr := self.Listener.Addr().String()

	cfg := testConfig(&config.AppCollectorConfig{Targets: []string{appAddr}})
	cfg.Metrics.Labels = map[string]string{"app": "app", "environment": "production"}
	h := start(t, cfg, Options{SelfTarget: selfAddr, SelfMetricsPath: "/metrics"})

	// The app's series carry the block's labels.
	h.waitValue(t, labels.FromStrings("__name__", "up", "app", "app", "environment", "production",
		"service", "checkout", "job", JobApp, "instance", appAddr), 1)
	// vigil's own series stay vigil's.
	h.waitValue(t, labels.FromStrings("__name__", "vigil_up", "app", "vigil", "environment", "test",
		"service", "checkout", "job", JobSelf, "instance", selfAddr), 1)

	require.Eventually(t, func() bool {
		return len(h.last(t, labels.MustNewMatcher(labels.MatchEqual, "job", JobSelf),
			labels.MustNewMatcher(labels.MatchEqual, "__name__", "process_cpu_seconds_total"))) > 0
	}, 10*time.Second, 50*time.Millisecond)
	for s := range h.last(t, labels.MustNewMatcher(labels.MatchEqual, "app", "app")) {
		require.NotContains(t, s, `job="vigil"`, "vigil's own series counted as the app's: %s", s)
	}
}
