package collector

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Collector gathers the metrics of one source (the host, the database, the
// app's health endpoint). It is node_exporter's shape: one method, called once
// per scrape, that sends what it read and returns an error when the source
// could not be read.
type Collector interface {
	// Update sends the source's current metrics to ch. A non-nil error marks
	// the collection failed: the source's `up` becomes 0 and the error is
	// logged. Metrics sent before the error are discarded.
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

// CollectorsPath is where vigil serves each collector's metrics for its own
// scrape: CollectorsPath + name.
const CollectorsPath = "/metrics/collectors/"

// Set serves each collector's metrics over HTTP, so that vigil's scrape
// manager stores them with the collector's labels, `up`, staleness and
// scrape timing exactly as for any other target, and so that an external
// Prometheus can scrape them too.
//
// A collection that fails answers 503: the scrape fails, the target's `up`
// is 0 and the source's series go stale. That is how `up == 0` under
// `app: database` comes to mean the database is down.
type Set struct {
	logger *slog.Logger

	mtx        sync.RWMutex
	collectors map[string]Collector
	labels     map[string]prometheus.Labels

	duration *prometheus.GaugeVec
	success  *prometheus.GaugeVec
}

// NewSet returns an empty Set whose vigil_collector_* metrics go on reg.
func NewSet(logger *slog.Logger, reg prometheus.Registerer) *Set {
	s := &Set{
		logger:     logger,
		collectors: map[string]Collector{},
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_collector_duration_seconds",
			Help: "How long the collector's last collection took.",
		}, []string{"collector"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_collector_success",
			Help: "Whether the collector's last collection succeeded.",
		}, []string{"collector"}),
	}
	if reg != nil {
		reg.MustRegister(s.duration, s.success)
	}
	return s
}

// Replace swaps in the collectors of a new config and the labels their
// metrics carry on /metrics; collectors no longer listed stop being served.
// It returns the previous ones, so a failed reload can put them back.
func (s *Set) Replace(collectors map[string]Collector, labels map[string]prometheus.Labels) (map[string]Collector, map[string]prometheus.Labels) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	prevC, prevL := s.collectors, s.labels
	for name := range s.collectors {
		if _, ok := collectors[name]; !ok {
			s.duration.DeleteLabelValues(name)
			s.success.DeleteLabelValues(name)
		}
	}
	s.collectors = collectors
	s.labels = labels
	return prevC, prevL
}

// Names returns the served collectors' names, sorted.
func (s *Set) Names() []string {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	return slices.Sorted(maps.Keys(s.collectors))
}

func (s *Set) get(name string) (Collector, prometheus.Labels, bool) {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	c, ok := s.collectors[name]
	return c, s.labels[name], ok
}

// ServeCollector answers a scrape of one collector.
func (s *Set) ServeCollector(w http.ResponseWriter, r *http.Request, name string) {
	c, _, ok := s.get(name)
	if !ok {
		http.Error(w, fmt.Sprintf("no collector %q", name), http.StatusNotFound)
		return
	}
	ctx := r.Context()
	// Prometheus says how long it will wait; leave it a little margin.
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(secs*0.9*float64(time.Second)))
			defer cancel()
		}
	}
	reg := prometheus.NewRegistry()
	run := &collection{name: name, c: c, ctx: ctx}
	reg.MustRegister(run)
	families, gerr := reg.Gather()
	s.duration.WithLabelValues(name).Set(run.took.Seconds())
	if run.err != nil || gerr != nil {
		err := run.err
		if err == nil {
			err = gerr
		}
		s.success.WithLabelValues(name).Set(0)
		s.logger.Warn("collection failed", "collector", name, "took", run.took, "err", err)
		http.Error(w, fmt.Sprintf("collector %s: %s", name, err), http.StatusServiceUnavailable)
		return
	}
	s.success.WithLabelValues(name).Set(1)
	h := promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return families, nil }),
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	h.ServeHTTP(w, r)
}

// Gatherer returns a Gatherer of every collector's metrics, with each
// collector's labels, for vigil's /metrics: vigil answers as an exporter too.
// A failing collector is left out and logged.
func (s *Set) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		reg := prometheus.NewRegistry()
		for _, name := range s.Names() {
			c, labels, ok := s.get(name)
			if !ok {
				continue
			}
			wrapped := prometheus.WrapRegistererWith(labels, reg)
			if err := wrapped.Register(&collection{name: name, c: c, ctx: context.Background(), quiet: true, logger: s.logger}); err != nil {
				return nil, err
			}
		}
		return reg.Gather()
	})
}

// collection is one run of a Collector as a prometheus.Collector.
type collection struct {
	name   string
	c      Collector
	ctx    context.Context
	quiet  bool // log a failed run here: the caller does not look at err
	logger *slog.Logger

	took time.Duration
	err  error
}

// Describe sends nothing: collectors are unchecked, their series vary.
func (*collection) Describe(chan<- *prometheus.Desc) {}

// Collect runs the collector and forwards its metrics unless it failed.
func (r *collection) Collect(out chan<- prometheus.Metric) {
	start := time.Now()
	var got []prometheus.Metric
	ch := make(chan prometheus.Metric)
	done := make(chan error, 1)
	go func() {
		done <- r.c.Update(r.ctx, ch)
		close(ch)
	}()
	for m := range ch {
		got = append(got, m)
	}
	r.err = <-done
	r.took = time.Since(start)
	if r.err != nil {
		if r.quiet && r.logger != nil {
			r.logger.Warn("collection failed", "collector", r.name, "err", r.err)
		}
		return
	}
	for _, m := range got {
		out <- m
	}
}
