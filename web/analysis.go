package web

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/analysis"
	"github.com/vigil-sh/vigil/config"
)

// Analyses is what the web layer needs of deploy analysis.
type Analyses interface {
	Analysis(deployID string) (*analysis.Analysis, bool, error)
	// Analyses returns up to limit analyses, newest deploy first.
	Analyses(limit int) ([]analysis.Analysis, error)
}

// pageAnalyses is how many analyses the page shows.
const pageAnalyses = 3

// deployAnalysis answers GET /api/v1/deploys/:id/analysis: the deploy's
// analysis, step by step, with its verdict.
func (h *Handler) deployAnalysis(c *gin.Context) {
	if h.opts.Analyses == nil {
		apiError(c, http.StatusNotFound, "not_found", "deploy analysis is not configured")
		return
	}
	// Deploys belong to the watched app: one the caller may not see is
	// not there, as elsewhere.
	a, ok, err := h.opts.Analyses.Analysis(c.Param("id"))
	if ok && !mayOn(c, permMonitor, h.watchedApp()) {
		ok = false
	}
	switch {
	case err != nil:
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
	case !ok:
		apiError(c, http.StatusNotFound, "not_found", fmt.Sprintf("no analysis of deploy %q (a deploy is analysed when it carries a strategy and the config has an analysis block)", c.Param("id")))
	default:
		apiSuccess(c, a)
	}
}

// analysisView is one analysis as the page shows it.
type analysisView struct {
	analysis.Analysis
	// State is the verdict, or "running".
	State string
	// Signals are the columns, in order.
	Signals []string
	Rows    []analysisRow
}

// analysisRow is one step: each column's new and baseline figures.
type analysisRow struct {
	Step    int
	At      time.Time
	Cells   []analysisCell
	Judged  bool
	Failed  bool
	Outcome string
}

// analysisCell holds the two versions' figures of one column.
type analysisCell struct {
	Canary, Baseline string
	Breach           bool
}

// pageAnalysisViews reads the newest analyses for the page.
func (h *Handler) pageAnalysisViews(c *gin.Context, d *pageData) {
	if h.opts.Analyses == nil || !mayOn(c, permMonitor, h.watchedApp()) {
		return
	}
	list, err := h.opts.Analyses.Analyses(pageAnalyses)
	if err != nil {
		d.Failures = append(d.Failures, "deploy analyses: "+err.Error())
		return
	}
	for _, a := range list {
		v := analysisView{Analysis: a, State: a.Verdict, Signals: append([]string{"requests"}, config.AnalysisSignals...)}
		if v.State == "" {
			v.State = "running"
		}
		for _, st := range a.Results {
			row := analysisRow{Step: st.Step, At: st.At, Judged: st.Judged, Failed: len(st.Breaches) > 0}
			breached := map[string]bool{}
			var words []string
			for _, b := range st.Breaches {
				breached[b.Signal] = true
				words = append(words, b.Detail)
			}
			switch {
			case row.Failed:
				row.Outcome = strings.Join(words, "; ")
			case !st.Judged:
				row.Outcome = st.Note
			default:
				row.Outcome = "within thresholds"
			}
			row.Cells = append(row.Cells, analysisCell{Canary: fmt.Sprintf("%.0f", st.Canary.Requests), Baseline: fmt.Sprintf("%.0f", st.Baseline.Requests)})
			for _, s := range config.AnalysisSignals {
				row.Cells = append(row.Cells, analysisCell{
					Canary: figure(st.Canary.Signals, s), Baseline: figure(st.Baseline.Signals, s), Breach: breached[s],
				})
			}
			v.Rows = append(v.Rows, row)
		}
		d.Analyses = append(d.Analyses, v)
	}
}

// figure prints a signal in its unit, "—" when there was no data.
func figure(m map[string]float64, signal string) string {
	v, ok := m[signal]
	switch {
	case !ok:
		return "—"
	case signal == config.SignalLatency:
		return formatValue(v, unitSeconds)
	default:
		return formatValue(v, unitPercent)
	}
}
