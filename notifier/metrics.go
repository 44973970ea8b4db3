package notifier

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
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
	ingestPending  prometheus.Gauge
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
		ingestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ingest_pending",
			Help: "Alerts posted to the Alertmanager API, recorded but not yet fed to their incidents; those of another gateway's share wait for it a few seconds.",
		}),
	}
	m.initKnown()
	if reg != nil {
		reg.MustRegister(m.incidents, m.resolved, m.notifications, m.escalations, m.timeToAck, m.timeToResolve,
			m.pending, m.rollbacks, m.deliveryErrors, m.pruned, m.silencesActive, m.ingestPending)
	}
	return m
}

// Label values known without a config. Rollback outcomes are named here as
// escalation.go and delivery.go count them.
var (
	knownPriorities      = []string{PriorityCritical, PriorityHigh, PriorityMedium, PriorityLow}
	knownOpenStates      = []State{StateTriggered, StateAcknowledged}
	notificationOutcomes = []string{OutcomeDelivered, OutcomeFailed, OutcomeSilenced}
	rollbackOutcomes     = []string{OutcomeDelivered, OutcomeFailed, "dry_run", "error", "skipped"}
)

// initKnown creates the series of every label combination known without a
// config, at 0. A counter or histogram series that appears only at its first
// event starts at 1, and increase() over a range cannot see that first step:
// one rollback would read 0 rollbacks in a dashboard.
func (m *metrics) initKnown() {
	for _, p := range knownPriorities {
		for _, s := range knownOpenStates {
			m.incidents.WithLabelValues(string(s), p)
		}
		m.resolved.WithLabelValues(p)
		m.timeToAck.WithLabelValues(p)
		m.timeToResolve.WithLabelValues(p)
	}
	for _, o := range rollbackOutcomes {
		m.rollbacks.WithLabelValues(o)
	}
}

// initConfig creates, at 0, the series of the levels and receivers a config
// names, for the same reason as initKnown; it runs on every applied config.
// Series of levels and receivers a reload removed stay: their counts are
// still true.
func (m *metrics) initConfig(levels []config.LevelConfig, receivers []string) {
	for _, l := range levels {
		m.escalations.WithLabelValues(l.Name)
	}
	for _, r := range receivers {
		for _, o := range notificationOutcomes {
			m.notifications.WithLabelValues(r, o)
		}
	}
}
