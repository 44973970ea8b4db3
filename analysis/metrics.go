package analysis

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
)

// Roles of the two sides in vigil_deploy_analysis_signal.
const (
	roleCanary   = "canary"
	roleBaseline = "baseline"
)

var states = []string{"running", VerdictPass, VerdictFail, VerdictInconclusive}

type metrics struct {
	signal   *prometheus.GaugeVec
	requests *prometheus.GaugeVec
	step     prometheus.Gauge
	state    *prometheus.GaugeVec
	verdicts *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		signal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_deploy_analysis_signal",
			Help: "Each signal of the latest deploy analysis at its last step, for the new version (role canary) and the one it is compared with (role baseline); NaN without a figure.",
		}, []string{"signal", "role"}),
		requests: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_deploy_analysis_requests",
			Help: "Requests each side served in the last step of the latest deploy analysis.",
		}, []string{"role"}),
		step: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_deploy_analysis_step",
			Help: "Steps taken by the latest deploy analysis.",
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_deploy_analysis_state",
			Help: "1 for the state of the latest deploy analysis (running, pass, fail, inconclusive), 0 for the others.",
		}, []string{"state"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_deploy_analyses_total",
			Help: "Deploy analyses decided, by verdict.",
		}, []string{"verdict"}),
	}
	for _, v := range []string{VerdictPass, VerdictFail, VerdictInconclusive} {
		m.verdicts.WithLabelValues(v)
	}
	// Every series exists from the start, so dashboards find them: no
	// analysis yet is no state, and no figure is NaN.
	for _, s := range states {
		m.state.WithLabelValues(s)
	}
	for _, name := range config.AnalysisSignals {
		for _, role := range []string{roleCanary, roleBaseline} {
			m.signal.WithLabelValues(name, role).Set(math.NaN())
		}
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.signal, m.requests, m.step, m.state, m.verdicts} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// show sets the gauges from the latest analysis.
func (m *metrics) show(a *Analysis) {
	state := a.Verdict
	if state == "" {
		state = "running"
	}
	for _, s := range states {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(s).Set(v)
	}
	m.step.Set(float64(len(a.Results)))
	if len(a.Results) == 0 {
		return
	}
	last := a.Results[len(a.Results)-1]
	m.requests.WithLabelValues(roleCanary).Set(last.Canary.Requests)
	m.requests.WithLabelValues(roleBaseline).Set(last.Baseline.Requests)
	for _, name := range config.AnalysisSignals {
		for role, f := range map[string]Figures{roleCanary: last.Canary, roleBaseline: last.Baseline} {
			if v, ok := f.Signals[name]; ok {
				m.signal.WithLabelValues(name, role).Set(v)
			} else {
				m.signal.WithLabelValues(name, role).Set(math.NaN())
			}
		}
	}
}
