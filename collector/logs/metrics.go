package logs

import "github.com/prometheus/client_golang/prometheus"

// metrics are the log pipeline's own series.
type metrics struct {
	lines        *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	files        *prometheus.GaugeVec
	outputErrors *prometheus.CounterVec
	shipped      prometheus.Counter
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
	}
	if reg != nil {
		reg.MustRegister(m.lines, m.bytes, m.files, m.outputErrors, m.shipped)
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
}
