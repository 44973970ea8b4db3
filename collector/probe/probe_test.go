package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// adapter makes a Prober a prometheus.Collector for testutil.
type adapter struct{ p *Prober }

func (adapter) Describe(chan<- *prometheus.Desc) {}
func (a adapter) Collect(ch chan<- prometheus.Metric) {
	_ = a.p.Update(context.Background(), ch)
}

func TestProbe(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	cfg := &config.HealthConfig{URL: srv.URL + "/health", Timeout: config.Duration(2e9)}
	p := New(cfg, false)

	require.NoError(t, testutil.CollectAndCompare(adapter{p}, strings.NewReader(`
# HELP probe_http_status_code HTTP status code of the health probe; 0 when there was no answer.
# TYPE probe_http_status_code gauge
probe_http_status_code 200
# HELP probe_success Whether the health probe succeeded.
# TYPE probe_success gauge
probe_success 1
`), "probe_success", "probe_http_status_code"))

	status.Store(503)
	require.NoError(t, testutil.CollectAndCompare(adapter{p}, strings.NewReader(`
# HELP probe_http_status_code HTTP status code of the health probe; 0 when there was no answer.
# TYPE probe_http_status_code gauge
probe_http_status_code 503
# HELP probe_success Whether the health probe succeeded.
# TYPE probe_success gauge
probe_success 0
`), "probe_success", "probe_http_status_code"))

	// Strict: the failure is the collection's, so the scrape's up is 0.
	strict := New(cfg, true)
	ch := make(chan prometheus.Metric, 3)
	err := strict.Update(context.Background(), ch)
	require.ErrorContains(t, err, "status 503")
	require.Empty(t, ch)

	// Expected statuses other than 200.
	cfg.ExpectStatus = []int{503}
	require.NoError(t, New(cfg, true).Update(context.Background(), make(chan prometheus.Metric, 3)))

	// Nothing listening.
	srv.Close()
	code, _, err := New(cfg, false).Probe(context.Background())
	require.Error(t, err)
	require.Zero(t, code)
}
