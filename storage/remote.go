package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/vigil-sh/vigil/config"
)

// RemoteFlushDeadline is how long a stopping vigil (or a queue that a reload
// removes) keeps sending what it still holds. It is shorter than
// Prometheus's 1m so that shutdown fits in Kubernetes' default 30s grace.
const RemoteFlushDeadline = 15 * time.Second

// Remote sends every sample the TSDB writes to the config's remote_write
// endpoints, with global.external_labels added. It is Prometheus's own
// remote storage: each endpoint's queue tails the TSDB's write-ahead log, so
// samples written while an endpoint is down are sent from the WAL when it is
// back (as long as the WAL still holds them), not held in memory.
type Remote struct {
	*remote.Storage
	collectors *collectorSet
	errs       *errorRecorder
}

// ScrapeManagerFunc hands the scrape manager to remote storage, which reads
// target metadata from it for metadata_config.
type ScrapeManagerFunc func() *scrape.Manager

// Get implements remote.ReadyScrapeManager.
func (f ScrapeManagerFunc) Get() (*scrape.Manager, error) {
	if f == nil {
		return nil, errNoScrapeManager
	}
	m := f()
	if m == nil {
		return nil, errNoScrapeManager
	}
	return m, nil
}

var errNoScrapeManager = errors.New("scrape manager not started yet")

// NewRemote starts remote storage that tails the WAL of the TSDB in dataDir
// (the directory given to Open). It sends nothing until ApplyConfig gives it
// endpoints. Its metrics (Prometheus's prometheus_remote_storage_*) go to
// reg. Append through storage.NewFanout(db, remote) so that it sees each
// sample's timestamp; call Close after the last append, before the TSDB
// closes.
func NewRemote(dataDir string, scrapes ScrapeManagerFunc, logger *slog.Logger, reg prometheus.Registerer) *Remote {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	errs := &errorRecorder{last: map[string]queueError{}}
	cs := &collectorSet{Registerer: reg, set: map[prometheus.Collector]struct{}{}}
	rl := slog.New(&recordingHandler{next: logger.Handler(), rec: errs})
	s := remote.NewStorage(rl, cs, func() (int64, error) { return 0, nil }, dataDir, RemoteFlushDeadline, scrapes, false)
	return &Remote{Storage: s, collectors: cs, errs: errs}
}

// ApplyConfig starts, changes and stops queues for cfg's remote_write list
// and external labels. Queues whose endpoint config and the external labels
// are unchanged keep running (and keep their place in the WAL).
//
// Every entry's client is built first: Prometheus's ApplyConfig, failing
// on the second entry, has already taken the first's running queue out of
// its map, so that queue would run on untracked (Close no longer stops it)
// and the next reload would start it again and panic registering its
// metrics twice. A bad entry (a CA file that is no certificate) must leave
// the old queues as they are.
func (r *Remote) ApplyConfig(cfg *config.Config) error {
	pc := PromConfig(cfg)
	for i, rw := range pc.RemoteWriteConfigs {
		if _, err := remote.NewWriteClient("check", &remote.ClientConfig{
			URL:              rw.URL,
			WriteProtoMsg:    rw.ProtobufMessage,
			Timeout:          rw.RemoteTimeout,
			HTTPClientConfig: rw.HTTPClientConfig,
			SigV4Config:      rw.SigV4Config,
			AzureADConfig:    rw.AzureADConfig,
			GoogleIAMConfig:  rw.GoogleIAMConfig,
			Headers:          rw.Headers,
			RetryOnRateLimit: rw.QueueConfig.RetryOnRateLimit,
			RoundRobinDNS:    rw.RoundRobinDNS,
		}); err != nil {
			return fmt.Errorf("remote_write[%d] (%s): %w", i, cfg.RemoteWrite[i], err)
		}
	}
	return r.Storage.ApplyConfig(pc)
}

// PromConfig is the part of cfg that Prometheus's remote storage reads.
func PromConfig(cfg *config.Config) *promconfig.Config {
	pc := &promconfig.Config{GlobalConfig: promconfig.DefaultGlobalConfig}
	// An empty value means no label, as in Prometheus: `pod: ${POD_NAME}`
	// outside Kubernetes adds nothing.
	external := map[string]string{}
	for k, v := range cfg.Global.ExternalLabels {
		if v != "" {
			external[k] = v
		}
	}
	pc.GlobalConfig.ExternalLabels = labels.FromMap(external)
	for i := range cfg.RemoteWrite {
		rw := cfg.RemoteWrite[i].RemoteWriteConfig
		pc.RemoteWriteConfigs = append(pc.RemoteWriteConfigs, &rw)
	}
	return pc
}

// QueueStatus is the state of one remote_write queue, for /ready and the
// operator page.
type QueueStatus struct {
	// Name is the queue's name: remote_write's name, or a hash of its config.
	Name string `json:"name"`
	// URL is the endpoint's scheme and host.
	URL string `json:"url"`
	// Shards is how many shards send in parallel now.
	Shards float64 `json:"shards"`
	// PendingSamples are read from the WAL but not yet sent.
	PendingSamples float64 `json:"pending_samples"`
	// SamplesSent, SamplesFailed and SamplesRetried count samples since the
	// queue started; like Prometheus's samples_total, sent counts every
	// attempt, retries included.
	SamplesSent    float64 `json:"samples_sent"`
	SamplesFailed  float64 `json:"samples_failed"`
	SamplesRetried float64 `json:"samples_retried"`
	// LastSend is the timestamp of the newest sample the endpoint accepted;
	// zero before the first.
	LastSend time.Time `json:"last_send,omitzero"`
	// LastError is the last send error, and when it was logged; repeats
	// within a minute are logged (and so recorded) once.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// Status returns each running queue's state, sorted by name. It reads the
// queues' own metrics.
func (r *Remote) Status() []QueueStatus {
	byName := map[string]*QueueStatus{}
	for _, mf := range r.collectors.gather() {
		for _, m := range mf.GetMetric() {
			var name, endpoint string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "remote_name":
					name = lp.GetValue()
				case "url":
					endpoint = lp.GetValue()
				}
			}
			if name == "" {
				continue
			}
			q := byName[name]
			if q == nil {
				q = &QueueStatus{Name: name, URL: endpoint}
				byName[name] = q
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			switch mf.GetName() {
			case "prometheus_remote_storage_shards":
				q.Shards = v
			case "prometheus_remote_storage_samples_pending":
				q.PendingSamples = v
			case "prometheus_remote_storage_samples_total":
				q.SamplesSent = v
			case "prometheus_remote_storage_samples_failed_total":
				q.SamplesFailed = v
			case "prometheus_remote_storage_samples_retried_total":
				q.SamplesRetried = v
			case "prometheus_remote_storage_queue_highest_sent_timestamp_seconds":
				if v > 0 {
					q.LastSend = time.UnixMilli(int64(v * 1000)).UTC()
				}
			}
		}
	}
	out := make([]QueueStatus, 0, len(byName))
	for name, q := range byName {
		// /ready is open to all: only the endpoint's scheme and host are
		// shown, as a path or query may carry a token.
		full := q.URL
		q.URL = endpointHost(full)
		if e, ok := r.errs.get(name); ok {
			q.LastError, q.LastErrorTime = e.msg, e.at
			if full != "" {
				q.LastError = strings.ReplaceAll(q.LastError, full, q.URL)
			}
		}
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b QueueStatus) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// endpointHost returns scheme://host of a URL.
func endpointHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// collectorSet registers on the real registry and remembers what remote
// storage registered, so Status reads only those metrics.
type collectorSet struct {
	prometheus.Registerer
	mtx sync.Mutex
	set map[prometheus.Collector]struct{}
}

func (c *collectorSet) Register(col prometheus.Collector) error {
	if err := c.Registerer.Register(col); err != nil {
		return err
	}
	c.mtx.Lock()
	c.set[col] = struct{}{}
	c.mtx.Unlock()
	return nil
}

func (c *collectorSet) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		if err := c.Register(col); err != nil {
			panic(err)
		}
	}
}

func (c *collectorSet) Unregister(col prometheus.Collector) bool {
	c.mtx.Lock()
	delete(c.set, col)
	c.mtx.Unlock()
	return c.Registerer.Unregister(col)
}

func (c *collectorSet) gather() []*dto.MetricFamily {
	reg := prometheus.NewRegistry()
	c.mtx.Lock()
	for col := range c.set {
		_ = reg.Register(col)
	}
	c.mtx.Unlock()
	mfs, _ := reg.Gather()
	return mfs
}

// queueError is the last error one queue logged.
type queueError struct {
	msg string
	at  time.Time
}

// errorRecorder keeps each queue's last logged error: remote storage has no
// metric for the error text.
type errorRecorder struct {
	mtx  sync.Mutex
	last map[string]queueError
}

func (e *errorRecorder) record(name, msg string, at time.Time) {
	e.mtx.Lock()
	e.last[name] = queueError{msg: msg, at: at}
	e.mtx.Unlock()
}

func (e *errorRecorder) get(name string) (queueError, bool) {
	e.mtx.Lock()
	defer e.mtx.Unlock()
	q, ok := e.last[name]
	return q, ok
}

// recordingHandler passes remote storage's log on and records the "err" of
// every warning or error that names its queue (remote_name).
type recordingHandler struct {
	next  slog.Handler
	rec   *errorRecorder
	queue string
}

func (h *recordingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	// Prometheus logs each queue's URL in full (password included), and the
	// transport's errors name it with its path and query: only scheme and
	// host go on, to the log and to /ready.
	clean := slog.NewRecord(r.Time, r.Level, redactURLs(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		clean.AddAttrs(redactAttr(a))
		return true
	})
	r = clean
	if r.Level >= slog.LevelWarn {
		queue, msg := h.queue, ""
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "remote_name":
				queue = a.Value.String()
			case "err":
				msg = a.Value.String()
			}
			return true
		})
		if queue != "" && msg != "" {
			at := r.Time
			if at.IsZero() {
				at = time.Now()
			}
			h.rec.record(queue, r.Message+": "+msg, at.UTC())
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "remote_name" {
			c.queue = a.Value.String()
		}
	}
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redactAttr(a)
	}
	c.next = h.next.WithAttrs(clean)
	return &c
}

// urlRE finds URLs in log text.
var urlRE = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// redactURLs replaces every URL in s by its scheme and host.
func redactURLs(s string) string {
	return urlRE.ReplaceAllStringFunc(s, func(u string) string {
		if h := endpointHost(u); h != "" {
			return h
		}
		return "<url>"
	})
}

// redactAttr redacts the URLs in a log attribute's text, in groups too.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = redactAttr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindString, slog.KindAny:
		if s := v.String(); strings.Contains(s, "://") {
			return slog.String(a.Key, redactURLs(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *recordingHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
