package config

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Deploy strategies a deploy may carry; analysis judges each.
const (
	StrategyCanary    = "canary"
	StrategyBlueGreen = "blue-green"
	StrategyRolling   = "rolling"
)

// Strategies are the accepted deploy strategies.
var Strategies = []string{StrategyCanary, StrategyBlueGreen, StrategyRolling}

// Signals deploy analysis compares, in the order it reports them.
const (
	SignalErrorRate   = "error_rate"
	SignalLatency     = "latency"
	SignalCPUUsage    = "cpu_usage"
	SignalMemoryUsage = "memory_usage"
)

// AnalysisSignals are the signals deploy analysis knows.
var AnalysisSignals = []string{SignalErrorRate, SignalLatency, SignalCPUUsage, SignalMemoryUsage}

// Defaults of the analysis block.
const (
	DefaultAnalysisInterval    = time.Minute
	DefaultAnalysisSteps       = 10
	DefaultAnalysisMinRequests = 100
	DefaultAnalysisQuantile    = 0.99
	DefaultVersionLabel        = "version"
	DefaultRequestsMetric      = "http_requests_total"
	DefaultLatencyMetric       = "http_request_duration_seconds"
)

// AnalysisConfig is the top-level analysis block: how deploys that carry a
// strategy are judged against the version they replace (analysis/). Zero
// values take the defaults above; a nil block turns analysis off.
type AnalysisConfig struct {
	// Interval is the length of one step.
	Interval Duration `yaml:"interval"`
	// Steps is how many steps a deploy is watched for.
	Steps int `yaml:"steps"`
	// MinRequests is how many requests each version must serve in a step
	// for the step to be judged.
	MinRequests int `yaml:"min_requests"`
	// Strategy is given to deploys that name none (those seen in
	// *_build_info); empty leaves them unjudged.
	Strategy string `yaml:"strategy"`
	// VersionLabel tells the versions apart on the app's *_build_info.
	VersionLabel string `yaml:"version_label"`
	// RequestsMetric is the app's request counter (with a code or status
	// label for 5xx).
	RequestsMetric string `yaml:"requests_metric"`
	// Latency is the request-duration histogram and the quantile compared.
	Latency LatencyConfig `yaml:"latency"`
	// Thresholds are per signal; a signal without one is reported, never
	// judged.
	Thresholds map[string]ThresholdConfig `yaml:"thresholds"`
}

// LatencyConfig names the app's request-duration histogram.
type LatencyConfig struct {
	Metric   string  `yaml:"metric"`
	Quantile float64 `yaml:"quantile"`
}

// ThresholdConfig bounds one signal of the new version: Max absolutely, and
// MaxRatio relative to the baseline (the new version fails above
// baseline × max_ratio when the baseline is above 0). Zero is no bound.
type ThresholdConfig struct {
	Max      float64 `yaml:"max"`
	MaxRatio float64 `yaml:"max_ratio"`
}

// WithDefaults returns a copy with every zero value set to its default.
func (a AnalysisConfig) WithDefaults() AnalysisConfig {
	if a.Interval <= 0 {
		a.Interval = Duration(DefaultAnalysisInterval)
	}
	if a.Steps <= 0 {
		a.Steps = DefaultAnalysisSteps
	}
	if a.MinRequests <= 0 {
		a.MinRequests = DefaultAnalysisMinRequests
	}
	if a.VersionLabel == "" {
		a.VersionLabel = DefaultVersionLabel
	}
	if a.RequestsMetric == "" {
		a.RequestsMetric = DefaultRequestsMetric
	}
	if a.Latency.Metric == "" {
		a.Latency.Metric = DefaultLatencyMetric
	}
	if a.Latency.Quantile == 0 {
		a.Latency.Quantile = DefaultAnalysisQuantile
	}
	return a
}

func (c *Config) validateAnalysis(r *reporter) {
	a := c.Analysis
	if a == nil {
		return
	}
	if a.Interval < 0 {
		r.valueErr(0, "analysis.interval", "must not be negative")
	}
	if a.Steps < 0 {
		r.valueErr(0, "analysis.steps", "must not be negative")
	}
	if a.MinRequests < 0 {
		r.valueErr(0, "analysis.min_requests", "must not be negative")
	}
	if a.Strategy != "" {
		oneOf(r, "analysis.strategy", a.Strategy, Strategies)
	}
	if a.VersionLabel != "" && !model.LabelName(a.VersionLabel).IsValidLegacy() {
		r.valueErr(0, "analysis.version_label", "%q is not a label name", a.VersionLabel)
	}
	for _, m := range []struct{ path, name string }{
		{"analysis.requests_metric", a.RequestsMetric}, {"analysis.latency.metric", a.Latency.Metric},
	} {
		if m.name != "" && !model.IsValidLegacyMetricName(m.name) {
			r.valueErr(0, m.path, "%q is not a metric name", m.name)
		}
	}
	if q := a.Latency.Quantile; q < 0 || q >= 1 {
		r.valueErr(0, "analysis.latency.quantile", "%g is not a quantile (above 0, below 1)", q)
	}
	for _, name := range sortedKeys(a.Thresholds) {
		p := joinPath("analysis.thresholds", name)
		if !slices.Contains(AnalysisSignals, name) {
			r.keyErr(0, p, "%q is not a signal (signals: %s)", name, strings.Join(AnalysisSignals, ", "))
			continue
		}
		t := a.Thresholds[name]
		if t.Max < 0 {
			r.valueErr(0, joinPath(p, "max"), "must not be negative")
		}
		if t.MaxRatio != 0 && t.MaxRatio < 1 {
			r.valueErr(0, joinPath(p, "max_ratio"), "%g is below 1: the new version would fail for matching its baseline", t.MaxRatio)
		}
	}
}
