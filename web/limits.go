package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// maxQueryDepth bounds how deeply a PromQL expression nests. Formatting an
// expression (format_query) takes time that grows with the cube of its depth:
// 100 levels take milliseconds, 1,000 take seconds and 4,000 minutes.
const maxQueryDepth = 100

// maxQueuedPerSlot bounds the queries that wait for a turn, per query that
// may run: beyond it a query is refused at once rather than parked.
const maxQueuedPerSlot = 16

// exprRoutes are the Prometheus API paths whose query parameter is a PromQL
// expression; selectorRoutes take series selectors in match[]. Both are
// bounded by the query block and take turns through the query gate.
var (
	exprRoutes = map[string]bool{
		apiPrefix + "/query":           true,
		apiPrefix + "/query_range":     true,
		apiPrefix + "/query_exemplars": true,
		apiPrefix + "/format_query":    true,
		apiPrefix + "/parse_query":     true,
	}
	selectorRoutes = map[string]bool{
		apiPrefix + "/series": true,
		apiPrefix + "/labels": true,
	}
)

// queryLimits are the query block's bounds the web layer applies itself.
type queryLimits struct {
	maxLength, maxForm int64
	maxConcurrency     int
	timeout            time.Duration
	// maxSubquerySteps bounds the steps of the subqueries one query holds
	// at once (the API engine's max_samples: each step of a subquery over
	// one series or more holds a sample).
	maxSubquerySteps int64
	// subqueryStep is the step of a subquery written without one: the
	// scrape interval, as the engines in cmd/vigil are told.
	subqueryStep time.Duration
}

func (h *Handler) queryLimits() queryLimits {
	q := config.QueryConfig{
		Timeout:        config.Duration(config.DefaultQueryTimeout),
		MaxConcurrency: config.DefaultQueryMaxConcurrency,
		MaxLength:      config.DefaultQueryMaxLength,
		MaxFormSize:    config.DefaultQueryMaxFormSize,
		MaxSamples:     config.DefaultQueryMaxSamples,
	}
	var subqueryStep time.Duration
	if cfg := h.cfg.Load(); cfg != nil {
		if cfg.Query.MaxConcurrency > 0 {
			q = cfg.Query
		}
		subqueryStep = cfg.Interval()
	}
	// The engine keeps the max_samples and subquery step it was built
	// with until a restart; the bound is the engine's, not a reloaded one.
	maxSamples := int64(q.MaxSamples)
	if h.opts.QueryMaxSamples > 0 {
		maxSamples = int64(h.opts.QueryMaxSamples)
	}
	if h.opts.QueryNoStepSubqueryInterval > 0 {
		subqueryStep = h.opts.QueryNoStepSubqueryInterval
	}
	return queryLimits{
		maxLength:        int64(q.MaxLength),
		maxForm:          int64(q.MaxFormSize),
		maxConcurrency:   q.MaxConcurrency,
		timeout:          time.Duration(q.Timeout),
		maxSubquerySteps: maxSamples,
		subqueryStep:     subqueryStep,
	}
}

// queryGate lets at most n queries run at once; the others wait their turn
// for at most the query timeout. Its size follows the configuration: a
// query returns its turn to the gate it took it from.
type queryGate struct {
	mtx     sync.Mutex
	slots   chan struct{}
	waiting atomic.Int64

	refused *prometheus.CounterVec
	running prometheus.Gauge
}

func newQueryGate(reg prometheus.Registerer) *queryGate {
	g := &queryGate{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_http_queries_refused_total",
			Help: "Queries of the Prometheus HTTP API refused by the query block's bounds, by reason.",
		}, []string{"reason"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_http_queries_running",
			Help: "Queries of the Prometheus HTTP API running now (at most query.max_concurrency).",
		}),
	}
	for _, r := range []string{"form_size", "length", "depth", "subquery_steps", "busy"} {
		g.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(g.refused, g.running)
	}
	return g
}

// errBusy is why a query found no turn.
var errBusy = errors.New("too many queries")

// acquire waits for a turn, for at most wait, and returns the function that
// gives it back.
func (g *queryGate) acquire(ctx context.Context, n int, wait time.Duration) (func(), error) {
	g.mtx.Lock()
	if cap(g.slots) != n {
		g.slots = make(chan struct{}, n)
	}
	slots := g.slots
	g.mtx.Unlock()
	release := func() {
		<-slots
		g.running.Dec()
	}
	select {
	case slots <- struct{}{}:
		g.running.Inc()
		return release, nil
	default:
	}
	if g.waiting.Add(1) > int64(n*maxQueuedPerSlot) {
		g.waiting.Add(-1)
		return nil, fmt.Errorf("%w: %d run at once (query.max_concurrency) and %d more wait", errBusy, n, n*maxQueuedPerSlot)
	}
	defer g.waiting.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		g.running.Inc()
		return release, nil
	case <-timer.C:
		return nil, fmt.Errorf("%w: %d run at once (query.max_concurrency) and this one waited %s (query.timeout)", errBusy, n, wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// limitQueries bounds the Prometheus API's expression and selector routes
// before Prometheus's handler sees them: the form's size (query string and
// body), each expression's and selector's length, each expression's depth,
// and how many run at once. Refusals answer in Prometheus's error envelope,
// naming the configuration key that set the bound.
func (h *Handler) limitQueries(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		isExpr := exprRoutes[path]
		if !isExpr && !selectorRoutes[path] && !(strings.HasPrefix(path, apiPrefix+"/label/") && strings.HasSuffix(path, "/values")) {
			next.ServeHTTP(w, r)
			return
		}
		lim := h.queryLimits()
		if err := parseBoundedForm(w, r, lim.maxForm); err != nil {
			h.queryGate.refused.WithLabelValues("form_size").Inc()
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) || errors.Is(err, errFormTooLarge) {
				writePromError(w, http.StatusRequestEntityTooLarge, "bad_data",
					fmt.Sprintf("the request's form is larger than %s (query.max_form_size)", config.Size(lim.maxForm)))
				return
			}
			writePromError(w, http.StatusBadRequest, "bad_data", "cannot read the form: "+err.Error())
			return
		}
		for _, param := range []string{"query", "match[]"} {
			for _, v := range r.Form[param] {
				if int64(len(v)) > lim.maxLength {
					h.queryGate.refused.WithLabelValues("length").Inc()
					writePromError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("%s is %d bytes long; at most %s are accepted (query.max_length)",
						param, len(v), config.Size(lim.maxLength)))
					return
				}
			}
		}
		release, err := h.queryGate.acquire(r.Context(), lim.maxConcurrency, lim.timeout)
		if err != nil {
			h.queryGate.refused.WithLabelValues("busy").Inc()
			writePromError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		defer release()
		if isExpr {
			// Parse errors are Prometheus's to answer, in its words.
			if expr, err := promqlparse.ParseExpr(r.Form.Get("query")); err == nil {
				if d := exprDepth(expr); d > maxQueryDepth {
					h.queryGate.refused.WithLabelValues("depth").Inc()
					writePromError(w, http.StatusBadRequest, "bad_data",
						fmt.Sprintf("query nests %d levels deep; at most %d are accepted", d, maxQueryDepth))
					return
				}
				if path == apiPrefix+"/query" || path == apiPrefix+"/query_range" {
					steps, ok := querySubquerySteps(r, path, expr, lim.subqueryStep)
					if ok && lim.maxSubquerySteps > 0 && steps > lim.maxSubquerySteps {
						h.queryGate.refused.WithLabelValues("subquery_steps").Inc()
						writePromError(w, http.StatusUnprocessableEntity, "execution",
							fmt.Sprintf("subqueries would be evaluated at %d steps at once; at most %d are accepted (query.max_samples)", steps, lim.maxSubquerySteps))
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// errFormTooLarge is why a query string over the form bound is refused.
var errFormTooLarge = errors.New("form too large")

// parseBoundedForm parses r's form, the query string and the body together
// at most limit bytes, with multipart bodies held in memory (never in
// temporary files, which the bound keeps small).
func parseBoundedForm(w http.ResponseWriter, r *http.Request, limit int64) error {
	rest := limit - int64(len(r.URL.RawQuery))
	if rest < 0 {
		return errFormTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, rest)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && mt == "multipart/form-data" {
		err := r.ParseMultipartForm(limit)
		if r.MultipartForm != nil {
			_ = r.MultipartForm.RemoveAll()
		}
		return err
	}
	return r.ParseForm()
}

// exprDepth is how deeply expr nests: 1 for a lone number or selector.
func exprDepth(expr parser.Expr) int {
	depth := 0
	parser.Inspect(expr, func(_ parser.Node, path []parser.Node) error {
		depth = max(depth, len(path)+1)
		return nil
	})
	return depth
}

// writePromError answers in the Prometheus API's error envelope.
func writePromError(w http.ResponseWriter, code int, errType, msg string) {
	body, _ := json.Marshal(map[string]string{"status": "error", "errorType": errType, "error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// engineBoundsChanged reports whether the query block's bounds that the
// engine takes at start differ between a and b.
func engineBoundsChanged(a, b config.QueryConfig) bool {
	return a.MaxSamples != b.MaxSamples || a.Timeout != b.Timeout || a.LookbackDelta != b.LookbackDelta
}
