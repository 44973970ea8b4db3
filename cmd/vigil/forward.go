package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	promnotifier "github.com/prometheus/prometheus/notifier"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/web"
)

// forwarder is alerts.forward: the rules' firing and resolved alerts go to
// every gateway through Prometheus's own notifier (its queue per gateway,
// its drops and errors counted as prometheus_notifications_*), and to the
// local notifier only when there is no forward block or notify_locally is
// set.
//
// Prometheus's notifier does not retry a failed POST: the batch is dropped
// and counted. The rules resend every firing alert each resend delay (1m)
// with endsAt four resend delays ahead, and a resolved one for 15 minutes,
// so a gateway that was down gets the alerts still firing and those resolved
// lately once it is back, as an Alertmanager does from Prometheus.
type forwarder struct {
	logger  *slog.Logger
	local   promrules.NotifyFunc
	manager *promnotifier.Manager
	send    promrules.NotifyFunc
	// registry holds the notifier's metrics only, so that Status reads them
	// without gathering all of vigil's; /metrics serves it beside vigil's.
	registry *prometheus.Registry
	// tsets carries the static gateways to the notifier's Run, after each
	// ApplyConfig; it holds the latest only.
	tsets chan map[string][]*targetgroup.Group
	// The notifier's Run starts with the first ApplyConfig, so that the
	// gateways are known before the rules send anything; stopped closes
	// when it returns.
	startOnce sync.Once
	stopped   chan struct{}

	mtx           sync.RWMutex
	forwarding    bool
	notifyLocally bool
	urls          []string
}

// forwardSyncTimeout bounds ApplyConfig's wait for the notifier to take
// the new gateways.
const forwardSyncTimeout = 5 * time.Second

// newForwarder makes the forwarder of a vigil whose first config is cfg:
// queue_capacity is read at start only (Prometheus sizes its queues when it
// makes them).
func newForwarder(cfg *config.Config, local promrules.NotifyFunc, externalURL *url.URL, logger *slog.Logger) *forwarder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	capacity := config.DefaultForwardQueueCapacity
	if f := cfg.Alerts.Forward; f != nil {
		capacity = f.ForwardQueueCapacity()
	}
	f := &forwarder{
		logger:   logger,
		local:    local,
		registry: prometheus.NewRegistry(),
		tsets:    make(chan map[string][]*targetgroup.Group, 1),
		stopped:  make(chan struct{}),
	}
	f.manager = promnotifier.NewManager(&promnotifier.Options{
		QueueCapacity:   capacity,
		DrainOnShutdown: true,
		Registerer:      f.registry,
	}, model.UTF8Validation, logger)
	// Prometheus's own conversion: startsAt is when the alert fired, endsAt
	// its resolution or, while firing, the ValidUntil the rules set (now +
	// 4 × max(resend delay, evaluation interval)); generatorURL links to
	// the expression on vigil's page.
	f.send = promrules.SendAlerts(f.manager, externalURL.String())
	return f
}

// Notify is the rules manager's NotifyFunc.
func (f *forwarder) Notify(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	f.mtx.RLock()
	forwarding, notifyLocally := f.forwarding, f.notifyLocally
	f.mtx.RUnlock()
	if forwarding {
		f.send(ctx, expr, alerts...)
	}
	if !forwarding || notifyLocally {
		f.local(ctx, expr, alerts...)
	}
}

// ApplyConfig applies alerts.forward and global.external_labels. Gateways
// that stay keep their queues.
func (f *forwarder) ApplyConfig(cfg *config.Config) error {
	pc, tgs, err := cfg.ForwardTargets()
	if err != nil {
		return err
	}
	if err := f.manager.ApplyConfig(pc); err != nil {
		return fmt.Errorf("alerts.forward: %w", err)
	}
	// The latest targets only: Run may not have read the previous ones yet.
	select {
	case <-f.tsets:
	default:
	}
	f.tsets <- tgs
	f.startOnce.Do(func() {
		go func() {
			f.manager.Run(f.tsets)
			close(f.stopped)
		}()
	})
	// Alerts sent before the notifier has read the targets would find no
	// gateway: wait until it has (it takes microseconds).
	want := 0
	for _, g := range tgs {
		for _, tg := range g {
			want += len(tg.Targets)
		}
	}
	deadline := time.Now().Add(forwardSyncTimeout)
	for len(f.manager.Alertmanagers()) != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	fw := cfg.Alerts.Forward
	f.mtx.Lock()
	defer f.mtx.Unlock()
	wasForwarding := f.forwarding
	f.forwarding = fw != nil
	f.notifyLocally = fw != nil && fw.NotifyLocally
	f.urls = nil
	if fw != nil {
		f.urls = slices.Clone(fw.URLs)
		if !wasForwarding {
			f.logger.Info("forwarding alerts", "gateways", len(fw.URLs), "notify_locally", fw.NotifyLocally)
		}
	} else if wasForwarding {
		f.logger.Info("forwarding alerts stopped: the local receivers are notified")
	}
	return nil
}

// Run waits until ctx ends, then stops the notifier, which sends what is
// queued (a gateway that does not answer costs at most the timeout per
// batch), and returns.
func (f *forwarder) Run(ctx context.Context) error {
	<-ctx.Done()
	f.manager.Stop()
	f.startOnce.Do(func() { close(f.stopped) })
	<-f.stopped
	return nil
}

// Gatherer serves the notifier's metrics.
func (f *forwarder) Gatherer() prometheus.Gatherer { return f.registry }

// Status is the forward state for /ready and the page; nil without a
// forward block.
func (f *forwarder) Status() *web.ForwardStatus {
	f.mtx.RLock()
	forwarding, notifyLocally, urls := f.forwarding, f.notifyLocally, f.urls
	f.mtx.RUnlock()
	if !forwarding {
		return nil
	}
	// The notifier labels its series with each gateway's POST URL.
	counts := map[string]map[string]float64{}
	if mfs, err := f.registry.Gather(); err == nil {
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				am := labelValue(m, "alertmanager")
				if am == "" {
					continue
				}
				if counts[am] == nil {
					counts[am] = map[string]float64{}
				}
				v := m.GetCounter().GetValue()
				if g := m.GetGauge(); g != nil {
					v = g.GetValue()
				}
				counts[am][mf.GetName()] = v
			}
		}
	}
	st := &web.ForwardStatus{NotifyLocally: notifyLocally}
	for _, raw := range urls {
		g := web.ForwardGateway{URL: raw}
		if c := counts[postURL(raw)]; c != nil {
			g.Sent = c["prometheus_notifications_sent_total"]
			g.Errors = c["prometheus_notifications_errors_total"]
			g.Dropped = c["prometheus_notifications_dropped_total"]
			g.Queued = c["prometheus_notifications_queue_length"]
		}
		st.Gateways = append(st.Gateways, g)
	}
	return st
}

// postURL is where Prometheus's notifier posts for a forward URL (its
// postPath).
func postURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	p := path.Join("/", strings.TrimSuffix(u.Path, "/"), "/api/v2/alerts")
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}).String()
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
