// Package notifier turns alert state changes from the rules manager into
// notifications. This first version has the log receiver only: each alert is
// logged once when it starts firing and once when it resolves. Incidents,
// escalation, Slack, webhooks and rollbacks build on it (issue 4).
package notifier

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-sh/vigil/config"
)

// Options configure the Manager.
type Options struct{}

// Manager receives alerts from the rules manager and notifies.
type Manager struct {
	logger *slog.Logger

	mtx sync.Mutex
	// firing holds the fingerprints of alerts already announced as firing.
	firing map[uint64]struct{}
	env    string

	notifications *prometheus.CounterVec
}

// New returns a Manager; its metrics go on reg.
func New(_ *Options, logger *slog.Logger, reg prometheus.Registerer) *Manager {
	m := &Manager{
		logger: logger,
		firing: map[uint64]struct{}{},
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_total",
			Help: "Notifications sent, by receiver and outcome.",
		}, []string{"receiver", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.notifications)
	}
	return m
}

// ApplyConfig takes a new config.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	m.env = cfg.Environment
	return nil
}

// Run blocks until ctx is done; deliveries here are synchronous log lines.
func (m *Manager) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Notify is a rules.NotifyFunc. Prometheus resends firing alerts every
// evaluation past the resend delay and resolved ones for a while; each state
// change is logged once.
func (m *Manager) Notify(_ context.Context, expr string, alerts ...*rules.Alert) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	for _, a := range alerts {
		fp := a.Labels.Hash()
		_, announced := m.firing[fp]
		switch {
		case a.State == rules.StateFiring && !announced:
			m.firing[fp] = struct{}{}
			m.log("alert firing", expr, a)
		case a.State == rules.StateInactive && !a.ResolvedAt.IsZero() && announced:
			delete(m.firing, fp)
			m.log("alert resolved", expr, a)
		}
	}
}

func (m *Manager) log(msg, expr string, a *rules.Alert) {
	attrs := []any{
		"alertname", a.Labels.Get(labels.AlertName),
		"severity", a.Labels.Get("severity"),
		"value", a.Value,
		"active_at", a.ActiveAt,
		"labels", a.Labels.String(),
		"expr", expr,
		"environment", m.env,
	}
	if !a.ResolvedAt.IsZero() {
		attrs = append(attrs, "resolved_at", a.ResolvedAt)
	}
	if s := a.Annotations.Get("summary"); s != "" {
		attrs = append(attrs, "summary", s)
	}
	m.logger.Warn(msg, attrs...)
	m.notifications.WithLabelValues("log", "success").Inc()
}
