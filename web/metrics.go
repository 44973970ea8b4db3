package web

import (
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the web layer's own metrics.
type metrics struct {
	requestDuration *prometheus.HistogramVec
	ready           prometheus.Gauge
	// certNotAfter is the served certificate's expiry, one series.
	certNotAfter *prometheus.GaugeVec
	// certNotBefore is when the served certificate was issued: its age is
	// what encryption.in_transit.certificate_rotation limits.
	certNotBefore *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by route, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"handler", "method", "code"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ready",
			Help: "Whether vigil is ready to serve queries (1) or not (0).",
		}),
		certNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_tls_certificate_not_after_timestamp_seconds",
			Help: "When the certificate vigil serves expires, in Unix seconds; absent without TLS.",
		}, []string{"subject_cn"}),
		certNotBefore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_tls_certificate_not_before_timestamp_seconds",
			Help: "When the certificate vigil serves became valid, in Unix seconds; absent without TLS.",
		}, []string{"subject_cn"}),
	}
	if reg != nil {
		reg.MustRegister(m.requestDuration, m.ready, m.certNotAfter, m.certNotBefore)
	}
	return m
}

// serveMetrics serves Options.Gatherer and the collectors' metrics;
// ?collectors=false leaves the collectors out (vigil's self-scrape: their own
// jobs store them). metrics.labels are not added: the seed's metrics block
// labels what vigil scrapes of the app, and vigil's own series must never
// look like the app's (issue 9).
func (h *Handler) serveMetrics() gin.HandlerFunc {
	opts := promhttp.HandlerOpts{ErrorLog: slogPrinter{h}, ErrorHandling: promhttp.ContinueOnError}
	own := promhttp.HandlerFor(h.opts.Gatherer, opts)
	all := own
	if h.opts.Collectors != nil {
		all = promhttp.HandlerFor(prometheus.Gatherers{h.opts.Gatherer, h.opts.Collectors.Gatherer()}, opts)
	}
	return func(c *gin.Context) {
		if c.Query("collectors") == "false" {
			own.ServeHTTP(c.Writer, c.Request)
			return
		}
		all.ServeHTTP(c.Writer, c.Request)
	}
}

// serveCollector answers vigil's own scrape of one collector.
func (h *Handler) serveCollector(c *gin.Context) {
	if h.opts.Collectors == nil {
		writeNotFound(c.Writer)
		return
	}
	h.opts.Collectors.ServeCollector(c.Writer, c.Request, c.Param("name"))
}

// slogPrinter hands promhttp's errors to the handler's logger.
type slogPrinter struct{ h *Handler }

// Println implements promhttp.Logger.
func (p slogPrinter) Println(v ...any) {
	p.h.logger.Error("Serving metrics", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
