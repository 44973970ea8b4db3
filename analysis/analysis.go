// Package analysis judges deploys that carry a strategy against the version
// they replace. While a canary or blue-green deploy's new version runs
// beside the old one (both scraped, told apart by the version label of the
// app's *_build_info), it compares the two every analysis.interval, for
// analysis.steps steps, on the seed's signals: error_rate and latency (from
// the app's request counter and request-duration histogram), cpu_usage and
// memory_usage. A rolling deploy is judged on health instead: probe or
// scrape failures during the rollout, or signals that rose against the app
// before the deploy.
//
// A step whose versions served fewer than analysis.min_requests requests is
// not judged. The first step that crosses a threshold fails the deploy at
// once; after the last step a deploy whose every step was judged passes,
// any other is inconclusive. A failure opens an incident (notifier.Raise),
// which asks the rollback logic to roll the deploy back with reason
// "analysis": signed, durable and once, as every rollback. Analyses live in
// the store's KV, so a restart resumes them where they were.
package analysis

import (
	"fmt"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// Verdicts of an analysis; empty while it runs.
const (
	VerdictPass         = "pass"
	VerdictFail         = "fail"
	VerdictInconclusive = "inconclusive"
)

// SignalHealth is the breach of a rolling deploy whose probes or scrapes
// failed during a step.
const SignalHealth = "health"

// AlertName is the alert of the incident a failed analysis opens.
const AlertName = "deploy_analysis_failed"

// Figures are one side's measurements over one step.
type Figures struct {
	// Version is the version measured; empty for a rolling deploy's whole
	// app.
	Version string `json:"version,omitempty"`
	// Requests served in the step.
	Requests float64 `json:"requests"`
	// Signals by name (config.AnalysisSignals); a signal without data is
	// absent.
	Signals map[string]float64 `json:"signals"`
	// Failures are failed health probes and scrapes (rolling deploys).
	Failures float64 `json:"failures,omitempty"`
}

// Breach is a signal of the new version beyond its threshold.
type Breach struct {
	Signal   string  `json:"signal"`
	Canary   float64 `json:"canary"`
	Baseline float64 `json:"baseline"`
	// Threshold is "max" (absolute) or "max_ratio" (relative to the
	// baseline), Limit its value.
	Threshold string  `json:"threshold"`
	Limit     float64 `json:"limit"`
	// Detail says it in words, with the figures.
	Detail string `json:"detail"`
}

// Step is one judged (or skipped) interval of an analysis.
type Step struct {
	// Step counts from 1.
	Step int `json:"step"`
	// At is the end of the step's interval; the figures cover the interval
	// before it.
	At       time.Time `json:"at"`
	Canary   Figures   `json:"canary"`
	Baseline Figures   `json:"baseline"`
	Judged   bool      `json:"judged"`
	Breaches []Breach  `json:"breaches,omitempty"`
	// Note says why a step was not judged.
	Note string `json:"note,omitempty"`
}

// Analysis is one deploy's analysis and its outcome.
type Analysis struct {
	DeployID        string    `json:"deploy_id"`
	Service         string    `json:"service"`
	Environment     string    `json:"environment"`
	Strategy        string    `json:"strategy"`
	Version         string    `json:"version"`
	BaselineVersion string    `json:"baseline_version,omitempty"`
	DeployedAt      time.Time `json:"deployed_at"`
	// The settings the analysis runs with, taken when it started: a reload
	// does not change a running analysis.
	Interval    time.Duration                     `json:"interval"`
	Steps       int                               `json:"steps"`
	MinRequests int                               `json:"min_requests"`
	Thresholds  map[string]config.ThresholdConfig `json:"thresholds,omitempty"`
	// Results are the steps taken so far, in order.
	Results []Step `json:"results"`
	// Verdict is pass, fail or inconclusive once decided; Reason says why.
	Verdict   string    `json:"verdict,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// FailedStep and Failure are the step and breach that failed it.
	FailedStep int     `json:"failed_step,omitempty"`
	Failure    *Breach `json:"failure,omitempty"`
	// IncidentID is the incident the failure opened.
	IncidentID string `json:"incident_id,omitempty"`
}

// Done reports whether the analysis has a verdict.
func (a *Analysis) Done() bool { return a.Verdict != "" }

// judge compares one step's figures against the thresholds. Rolling
// deploys fail on any failed probe or scrape as well.
func (a *Analysis) judge(s *Step) {
	if a.Strategy != config.StrategyRolling && (s.Canary.Requests < float64(a.MinRequests) || s.Baseline.Requests < float64(a.MinRequests)) {
		s.Note = fmt.Sprintf("too few requests: %s served %.0f, %s %.0f (min_requests %d)",
			s.Canary.Version, s.Canary.Requests, s.Baseline.Version, s.Baseline.Requests, a.MinRequests)
		return
	}
	if a.Strategy == config.StrategyRolling && s.Canary.Requests < float64(a.MinRequests) {
		s.Note = fmt.Sprintf("too few requests: %.0f during the step (min_requests %d)", s.Canary.Requests, a.MinRequests)
		return
	}
	s.Judged = true
	if a.Strategy == config.StrategyRolling && s.Canary.Failures > 0 {
		s.Breaches = append(s.Breaches, Breach{
			Signal: SignalHealth, Canary: s.Canary.Failures, Threshold: "max", Limit: 0,
			Detail: fmt.Sprintf("%.0f health probes or scrapes failed during the rollout", s.Canary.Failures),
		})
	}
	for _, name := range config.AnalysisSignals {
		t, ok := a.Thresholds[name]
		if !ok {
			continue
		}
		c, ok := s.Canary.Signals[name]
		if !ok {
			continue
		}
		b, haveBase := s.Baseline.Signals[name]
		if t.Max > 0 && c > t.Max {
			s.Breaches = append(s.Breaches, Breach{
				Signal: name, Canary: c, Baseline: b, Threshold: "max", Limit: t.Max,
				Detail: fmt.Sprintf("%s %s is above the maximum %s", name, num(c), num(t.Max)),
			})
		}
		if t.MaxRatio > 0 && haveBase && b > 0 && c > b*t.MaxRatio {
			s.Breaches = append(s.Breaches, Breach{
				Signal: name, Canary: c, Baseline: b, Threshold: "max_ratio", Limit: t.MaxRatio,
				Detail: fmt.Sprintf("%s %s is %.2f× the baseline's %s (max_ratio %s)", name, num(c), c/b, num(b), num(t.MaxRatio)),
			})
		}
	}
}

// advance records a step and decides the verdict when the step fails or is
// the last.
func (a *Analysis) advance(s Step, now time.Time) {
	a.judge(&s)
	a.Results = append(a.Results, s)
	switch {
	case len(s.Breaches) > 0:
		b := s.Breaches[0]
		a.decide(VerdictFail, fmt.Sprintf("step %d of %d: %s", s.Step, a.Steps, b.Detail), now)
		a.FailedStep, a.Failure = s.Step, &b
	case len(a.Results) >= a.Steps:
		judged := 0
		for _, r := range a.Results {
			if r.Judged {
				judged++
			}
		}
		if judged == len(a.Results) {
			a.decide(VerdictPass, fmt.Sprintf("all %d steps within the thresholds", judged), now)
		} else {
			a.decide(VerdictInconclusive, fmt.Sprintf("%d of %d steps had too few requests to judge (min_requests %d)",
				len(a.Results)-judged, len(a.Results), a.MinRequests), now)
		}
	}
}

func (a *Analysis) decide(verdict, reason string, now time.Time) {
	a.Verdict, a.Reason, a.DecidedAt = verdict, reason, now
}

// num prints a figure with up to four significant digits.
func num(v float64) string { return fmt.Sprintf("%.4g", v) }
