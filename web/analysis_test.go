package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/analysis"
	"github.com/vigil-sh/vigil/config"
)

type fakeAnalyses map[string]analysis.Analysis

func (f fakeAnalyses) Analysis(id string) (*analysis.Analysis, bool, error) {
	a, ok := f[id]
	return &a, ok, nil
}

func (f fakeAnalyses) Analyses(int) ([]analysis.Analysis, error) {
	out := []analysis.Analysis{}
	for _, a := range f {
		out = append(out, a)
	}
	return out, nil
}

func failedAnalysis() analysis.Analysis {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	b := analysis.Breach{Signal: config.SignalErrorRate, Canary: 3, Baseline: 1, Threshold: "max_ratio", Limit: 2,
		Detail: "error_rate 3 is 3.00× the baseline's 1 (max_ratio 2)"}
	return analysis.Analysis{
		DeployID: "7", Service: "checkout", Strategy: config.StrategyCanary, Version: "1.1.0", BaselineVersion: "1.0.0",
		DeployedAt: at, Interval: time.Minute, Steps: 5, MinRequests: 100,
		Results: []analysis.Step{
			{Step: 1, At: at.Add(time.Minute), Judged: true,
				Canary:   analysis.Figures{Version: "1.1.0", Requests: 1000, Signals: map[string]float64{config.SignalErrorRate: 1.1, config.SignalLatency: 0.05}},
				Baseline: analysis.Figures{Version: "1.0.0", Requests: 990, Signals: map[string]float64{config.SignalErrorRate: 1, config.SignalLatency: 0.05}}},
			{Step: 2, At: at.Add(2 * time.Minute), Judged: true, Breaches: []analysis.Breach{b},
				Canary:   analysis.Figures{Version: "1.1.0", Requests: 1000, Signals: map[string]float64{config.SignalErrorRate: 3}},
				Baseline: analysis.Figures{Version: "1.0.0", Requests: 990, Signals: map[string]float64{config.SignalErrorRate: 1}}},
		},
		Verdict: analysis.VerdictFail, Reason: "step 2 of 5: " + b.Detail, FailedStep: 2, Failure: &b,
	}
}

func TestDeployAnalysisRoute(t *testing.T) {
	env := newTestEnv(t, func(o *Options) {
		o.Deploys = &fakeDeploys{}
		o.Analyses = fakeAnalyses{"7": failedAnalysis()}
	})
	env.h.SetReady(true)

	status, body := do(t, http.MethodGet, env.srv.URL+"/api/v1/deploys/7/analysis", nil)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"verdict":"fail"`)
	require.Contains(t, body, `"failed_step":2`)
	status, body = do(t, http.MethodGet, env.srv.URL+"/api/v1/deploys/8/analysis", nil)
	require.Equal(t, http.StatusNotFound, status, body)

	status, body = do(t, http.MethodPost, env.srv.URL+"/api/v1/deploys", strings.NewReader(`{"version":"1.2.3","strategy":"big-bang"}`))
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, "strategy must be one of canary, blue-green, rolling")

	// The page: a row per step, both versions' figures side by side, the
	// breached cell marked.
	status, body = do(t, http.MethodGet, env.srv.URL+"/", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `id="analysis-7"`)
	require.Contains(t, body, `<td><span class="canary">1.1%</span> / <span class="baseline">1%</span></td>`)
	require.Contains(t, body, `<td class="error"><span class="canary">3%</span> / <span class="baseline">1%</span></td>`)
	require.Contains(t, body, `<span class="canary">50 ms</span> / <span class="baseline">50 ms</span>`)
	require.Contains(t, body, `<span class="canary">1000</span> / <span class="baseline">990</span>`)
}
