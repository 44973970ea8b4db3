// Package probe is the seed's post-deployment check (`curl -f
// http://localhost/health`) as a collector: each scrape probes the app's
// health endpoint and reports probe_success, probe_duration_seconds and
// probe_http_status_code.
package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
)

var (
	successDesc  = prometheus.NewDesc("probe_success", "Whether the health probe succeeded.", nil, nil)
	durationDesc = prometheus.NewDesc("probe_duration_seconds", "How long the health probe took.", nil, nil)
	statusDesc   = prometheus.NewDesc("probe_http_status_code", "HTTP status code of the health probe; 0 when there was no answer.", nil, nil)
)

// Prober probes one HTTP health endpoint.
type Prober struct {
	url    string
	expect []int
	client *http.Client
	// strict makes a failed probe a failed collection, so the scrape's up
	// follows the probe (used when the app has no metrics endpoint).
	strict bool
}

// New returns a Prober for cfg. With strict, a failed probe fails the
// collection instead of reporting probe_success 0.
func New(cfg *config.HealthConfig, strict bool) *Prober {
	expect := cfg.ExpectStatus
	if len(expect) == 0 {
		expect = []int{http.StatusOK}
	}
	timeout := time.Duration(cfg.Timeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Prober{
		url:    cfg.URL,
		expect: expect,
		strict: strict,
		// Redirects are followed and the final status counts. No proxy: the
		// app is next to vigil. No keep-alive: each probe is a fresh
		// connection, as the seed's curl is.
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}
}

// Probe runs one probe and returns the status code (0 without an answer),
// how long it took and why it failed, if it did.
func (p *Prober) Probe(ctx context.Context) (code int, took time.Duration, err error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("health probe %s: %w", p.url, err)
	}
	req.Header.Set("User-Agent", "vigil-health-probe")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, time.Since(start), fmt.Errorf("health probe %s: %w", p.url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	took = time.Since(start)
	if !slices.Contains(p.expect, resp.StatusCode) {
		return resp.StatusCode, took, fmt.Errorf("health probe %s: status %d, want %v", p.url, resp.StatusCode, p.expect)
	}
	return resp.StatusCode, took, nil
}

// Update probes and sends the probe's metrics.
func (p *Prober) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	code, took, err := p.Probe(ctx)
	if err != nil && p.strict {
		return err
	}
	success := 1.0
	if err != nil {
		success = 0
	}
	ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, success)
	ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, took.Seconds())
	ch <- prometheus.MustNewConstMetric(statusDesc, prometheus.GaugeValue, float64(code))
	return nil
}
