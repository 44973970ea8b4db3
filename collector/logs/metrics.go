package logs

import "github.com/prometheus/client_golang/prometheus"

// metrics are the log pipeline's own series.
type metrics struct {
	lines        *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	files        *prometheus.GaugeVec
	outputErrors *prometheus.CounterVec
	shipped      prometheus.Counter
	lokiSent     *prometheus.CounterVec
	lokiDropped  *prometheus.CounterVec
	lokiRetries  prometheus.Counter
	lokiFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "log_lines_total",
			Help: "Lines read from the log's files, by parsed level.",
		}, []string{"log", "level"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_log_bytes_total",
			Help: "Bytes of complete lines read from the log's files.",
		}, []string{"log"}),
		files: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_log_files_tailed",
			Help: "Files of the log being tailed, including rotated files still being drained.",
		}, []string{"log"}),
		outputErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_log_output_errors_total",
			Help: "Failed writes of lines to the log's rotated output file.",
		}, []string{"log"}),
		shipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_log_loki_handed_lines_total",
			Help: "Lines handed to the Loki client (batched, then pushed with retries).",
		}),
		lokiSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_log_loki_sent_lines_total",
			Help: "Lines Loki accepted (answered 2xx to the push holding them).",
		}, []string{"log"}),
		lokiDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_log_loki_dropped_lines_total",
			Help: "Lines given up: Loki refused their push (4xx other than 429) or it failed every retry.",
		}, []string{"log"}),
		lokiRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_log_loki_push_retries_total",
			Help: "Pushes to Loki tried again after a network error, 429 or 5xx.",
		}),
		lokiFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_log_loki_push_failures_total",
			Help: "Push attempts to Loki that failed, retried or not.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.lines, m.bytes, m.files, m.outputErrors, m.shipped,
			m.lokiSent, m.lokiDropped, m.lokiRetries, m.lokiFailures)
	}
	return m
}

// forget deletes a removed log's series.
func (m *metrics) forget(log string) {
	for _, l := range levels {
		m.lines.DeleteLabelValues(log, l)
	}
	m.bytes.DeleteLabelValues(log)
	m.files.DeleteLabelValues(log)
	m.outputErrors.DeleteLabelValues(log)
	m.lokiSent.DeleteLabelValues(log)
	m.lokiDropped.DeleteLabelValues(log)
}
