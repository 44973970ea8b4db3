package web

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the web layer's own metrics.
type metrics struct {
	requestDuration *prometheus.HistogramVec
	ready           prometheus.Gauge
	// certNotAfter is the served certificate's expiry, one series.
	certNotAfter *prometheus.GaugeVec
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
	}
	if reg != nil {
		reg.MustRegister(m.requestDuration, m.ready, m.certNotAfter)
	}
	return m
}

// serveMetrics serves Options.Gatherer and the collectors' metrics with the
// configured metrics labels; ?collectors=false leaves the collectors out
// (vigil's self-scrape: their own jobs store them).
func (h *Handler) serveMetrics() gin.HandlerFunc {
	opts := promhttp.HandlerOpts{ErrorLog: slogPrinter{h}, ErrorHandling: promhttp.ContinueOnError}
	own := promhttp.HandlerFor(labelingGatherer{gatherer: h.opts.Gatherer, labels: h.metricsLabels}, opts)
	all := own
	if h.opts.Collectors != nil {
		all = promhttp.HandlerFor(labelingGatherer{
			gatherer: prometheus.Gatherers{h.opts.Gatherer, h.opts.Collectors.Gatherer()},
			labels:   h.metricsLabels,
		}, opts)
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

// labelingGatherer adds labels to every metric it gathers, at gather time so a
// reload changes them. A label a metric already has keeps its value.
type labelingGatherer struct {
	gatherer prometheus.Gatherer
	labels   func() map[string]string
}

// Gather implements prometheus.Gatherer.
func (g labelingGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.gatherer.Gather()
	extra := g.labels()
	if len(extra) == 0 {
		return mfs, err
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	slices.Sort(names)

	out := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		// Build new messages: a Gatherer may hand out metrics it keeps.
		nmf := &dto.MetricFamily{
			Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit,
			Metric: make([]*dto.Metric, 0, len(mf.Metric)),
		}
		for _, m := range mf.Metric {
			nmf.Metric = append(nmf.Metric, withLabels(m, names, extra))
		}
		out = append(out, nmf)
	}
	return out, err
}

// withLabels returns a copy of m with the labels it lacks, sorted by name as
// the exposition expects.
func withLabels(m *dto.Metric, names []string, extra map[string]string) *dto.Metric {
	lps := slices.Clone(m.Label)
	for _, n := range names {
		if slices.ContainsFunc(m.Label, func(lp *dto.LabelPair) bool { return lp.GetName() == n }) {
			continue
		}
		name, value := n, extra[n]
		lps = append(lps, &dto.LabelPair{Name: &name, Value: &value})
	}
	slices.SortFunc(lps, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return &dto.Metric{
		Label:       lps,
		Gauge:       m.Gauge,
		Counter:     m.Counter,
		Summary:     m.Summary,
		Untyped:     m.Untyped,
		Histogram:   m.Histogram,
		TimestampMs: m.TimestampMs,
	}
}
