package notifier

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the notifier's own. vigil_incidents counts open incidents
// (triggered and acknowledged); resolved ones are the counter
// vigil_incidents_resolved_total, since they only grow, and those deleted by
// retention are vigil_incidents_pruned_total.
type metrics struct {
	incidents      *prometheus.GaugeVec
	resolved       *prometheus.CounterVec
	notifications  *prometheus.CounterVec
	escalations    *prometheus.CounterVec
	timeToAck      *prometheus.HistogramVec
	timeToResolve  *prometheus.HistogramVec
	pending        prometheus.Gauge
	rollbacks      *prometheus.CounterVec
	deliveryErrors prometheus.Counter
	pruned         prometheus.Counter
	silencesActive prometheus.GaugeFunc
}

// responseBuckets span one minute to two days, the range of the seed's
// response times.
var responseBuckets = []float64{60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600, 48 * 3600}

// newMetrics builds the metrics and registers them on reg (when not nil);
// activeSilences counts the silences in force at each scrape.
func newMetrics(reg prometheus.Registerer, activeSilences func() float64) *metrics {
	m := &metrics{
		incidents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_incidents",
			Help: "Open incidents, by state (triggered, acknowledged) and priority.",
		}, []string{"state", "priority"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_incidents_resolved_total",
			Help: "Incidents resolved, by priority.",
		}, []string{"priority"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_total",
			Help: "Notifications finished, by receiver and outcome (delivered, failed, silenced).",
		}, []string{"receiver", "outcome"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_escalations_total",
			Help: "Escalations to a level (its name) after a missed deadline, repeats of the last level included.",
		}, []string{"level"}),
		timeToAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_time_to_acknowledge_seconds",
			Help:    "Time from an incident opening to its first acknowledgement.",
			Buckets: responseBuckets,
		}, []string{"priority"}),
		timeToResolve: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_time_to_resolve_seconds",
			Help:    "Time from an incident opening to its resolution.",
			Buckets: responseBuckets,
		}, []string{"priority"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_deliveries_pending",
			Help: "Deliveries in the durable queue, waiting or being attempted.",
		}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rollbacks_total",
			Help: "Rollback webhook calls, by outcome (delivered, failed, dry_run, error).",
		}, []string{"outcome"}),
		deliveryErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_delivery_attempt_failures_total",
			Help: "Delivery attempts that failed, retried or not.",
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_incidents_pruned_total",
			Help: "Resolved incidents deleted from the store once older than storage.incident_retention.",
		}),
		// A function of the clock: a pending silence starts, and an active
		// one ends, without any event to count.
		silencesActive: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_silences_active",
			Help: "Silences muting notifications now.",
		}, activeSilences),
	}
	if reg != nil {
		reg.MustRegister(m.incidents, m.resolved, m.notifications, m.escalations, m.timeToAck, m.timeToResolve,
			m.pending, m.rollbacks, m.deliveryErrors, m.pruned, m.silencesActive)
	}
	return m
}
