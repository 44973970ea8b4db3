package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// DefaultTimeout bounds one delivery attempt when the config sets none.
const DefaultTimeout = 10 * time.Second

// Payload is the JSON body: Alertmanager's version 4 webhook message, so
// existing Alertmanager receivers read it, plus vigil's incident.
type Payload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
	Incident          IncidentInfo      `json:"incident"`
}

// Alert is one alert of a Payload, in Alertmanager's shape.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// IncidentInfo is what vigil adds to Alertmanager's payload.
type IncidentInfo struct {
	ID             string         `json:"id"`
	State          notifier.State `json:"state"`
	Level          int            `json:"level"`
	LevelName      string         `json:"levelName"`
	Priority       string         `json:"priority"`
	Deadline       time.Time      `json:"deadline,omitzero"`
	Kind           notifier.Kind  `json:"kind"`
	URL            string         `json:"url,omitempty"`
	AcknowledgedBy string         `json:"acknowledgedBy,omitempty"`
	// Members counts the alerts of the incident's group (escalation.group_by),
	// MembersFiring those not resolved; Alerts lists the first
	// notifier.MemberSample of them and TruncatedAlerts the rest.
	Members       int    `json:"members"`
	MembersFiring int    `json:"membersFiring"`
	ResolvedBy    string `json:"resolvedBy,omitempty"`
}

// Alertmanager's alert statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Receiver posts signed Alertmanager webhook payloads to one URL.
type Receiver struct {
	name    string
	url     string
	secret  string
	timeout time.Duration

	// Client sends the requests; tests may replace it. It does not follow
	// redirects: a redirected POST would lose its body and signature.
	Client *http.Client
	// now is the send time put in webhook-timestamp.
	now func() time.Time

	duration *prometheus.HistogramVec
}

// Option changes a Receiver.
type Option func(*Receiver)

// WithClient sets the HTTP client.
func WithClient(c *http.Client) Option { return func(r *Receiver) { r.Client = c } }

// WithClock sets the clock that stamps webhook-timestamp and reads
// Retry-After dates.
func WithClock(now func() time.Time) Option { return func(r *Receiver) { r.now = now } }

// WithRegisterer exports the request durations by status code on reg, with
// the receiver's name as a label.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(r *Receiver) {
		if reg == nil {
			return
		}
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "vigil_webhook_request_duration_seconds",
			Help:        "Duration of webhook receiver requests, by status code (0 when no response).",
			ConstLabels: prometheus.Labels{"receiver": r.name},
			Buckets:     prometheus.ExponentialBuckets(0.005, 4, 7),
		}, []string{"code"})
		if err := reg.Register(h); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				h = are.ExistingCollector.(*prometheus.HistogramVec)
			} else {
				return
			}
		}
		r.duration = h
	}
}

// New returns the webhook receiver called name for cfg.
func New(name string, cfg *config.WebhookConfig, opts ...Option) (*Receiver, error) {
	if cfg == nil {
		return nil, fmt.Errorf("webhook %q: no config", name)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse quotes the URL, which may carry a token; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("webhook %q: bad url: %w", name, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webhook %q: url must be absolute http or https", name)
	}
	secret := cfg.Secret.Value()
	if _, err := secretKey(secret); err != nil {
		return nil, fmt.Errorf("webhook %q: %w", name, err)
	}
	r := &Receiver{
		name:    name,
		url:     cfg.URL,
		secret:  secret,
		timeout: time.Duration(cfg.Timeout),
		Client: &http.Client{
			CheckRedirect: NoRedirects,
		},
		now: time.Now,
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Name returns the receiver's name.
func (r *Receiver) Name() string { return r.name }

// Notify implements notifier.Receiver. Every attempt for one message carries
// the same webhook-id (the delivery id) and a fresh webhook-timestamp, since
// receivers reject stale timestamps.
func (r *Receiver) Notify(ctx context.Context, m *notifier.Message) (bool, error) {
	body, err := json.Marshal(newPayload(r.name, m))
	if err != nil {
		return false, fmt.Errorf("webhook %q: encode payload: %w", r.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := time.Now()
	code, retry, err := Post(ctx, r.Client, Request{
		Receiver: r.name, URL: r.url, Secret: r.secret, ID: m.DeliveryID, Now: r.now(), Body: body,
	})
	r.observe(code, start)
	return retry, err
}

func (r *Receiver) observe(code int, start time.Time) {
	if r.duration != nil {
		r.duration.WithLabelValues(strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	}
}

// newPayload builds the body for m. The group is the incident: an incident
// of one alert sends it with its labels as the common ones; an incident of
// several (escalation.group_by) sends its first members.
func newPayload(receiver string, m *notifier.Message) Payload {
	inc := &m.Incident
	status := StatusFiring
	if m.Kind == notifier.KindResolved {
		status = StatusResolved
	}
	labels := make(map[string]string, len(inc.Alert.Labels)+1)
	for k, v := range inc.Alert.Labels {
		labels[k] = v
	}
	if _, ok := labels["alertname"]; !ok && inc.Alert.Name != "" {
		labels["alertname"] = inc.Alert.Name
	}
	annotations := make(map[string]string, len(inc.Alert.Annotations))
	for k, v := range inc.Alert.Annotations {
		annotations[k] = v
	}
	startsAt := inc.Alert.ActiveAt
	if startsAt.IsZero() {
		startsAt = inc.Alert.FiredAt
	}
	var endsAt time.Time
	if status == StatusResolved {
		endsAt = inc.Alert.ResolvedAt
		if endsAt.IsZero() {
			endsAt = inc.ResolvedAt
		}
		if endsAt.IsZero() {
			endsAt = m.CreatedAt
		}
	}
	var incURL string
	if m.ExternalURL != "" && inc.ID != "" {
		incURL = strings.TrimRight(m.ExternalURL, "/") + "/api/v1/incidents/" + url.PathEscape(inc.ID)
	}
	alerts := []Alert{{
		Status:       status,
		Labels:       labels,
		Annotations:  annotations,
		StartsAt:     startsAt,
		EndsAt:       endsAt,
		GeneratorURL: inc.Alert.GeneratorURL,
		Fingerprint:  inc.Alert.Fingerprint,
	}}
	members := notifier.MemberList(inc)
	var truncated uint64
	if len(members) > 1 {
		// A group: one alert per member, as Alertmanager sends a group,
		// the labels they share as the common ones.
		alerts = alerts[:0]
		for _, mb := range members[:min(len(members), notifier.MemberSample)] {
			a := Alert{
				Status:       StatusFiring,
				Labels:       mb.Labels,
				Annotations:  annotations,
				StartsAt:     mb.ActiveAt,
				GeneratorURL: inc.Alert.GeneratorURL,
				Fingerprint:  mb.Fingerprint,
			}
			if mb.State == notifier.MemberResolved {
				a.Status, a.EndsAt = StatusResolved, mb.ResolvedAt
			}
			alerts = append(alerts, a)
		}
		truncated = uint64(len(members) - len(alerts))
		labels = notifier.CommonLabels(inc)
	}
	count, firing := max(len(members), 1), notifier.FiringMembers(inc)
	if inc.Storm != nil {
		count, firing = inc.Storm.Alerts, inc.Storm.Firing
	}
	return Payload{
		Version:           "4",
		TruncatedAlerts:   truncated,
		GroupKey:          fmt.Sprintf("{}:{incident=%q}", inc.ID),
		Status:            status,
		Receiver:          receiver,
		GroupLabels:       map[string]string{"alertname": labels["alertname"]},
		CommonLabels:      labels,
		CommonAnnotations: annotations,
		ExternalURL:       m.ExternalURL,
		Alerts:            alerts,
		Incident: IncidentInfo{
			ID:             inc.ID,
			State:          inc.State,
			Level:          m.Level,
			LevelName:      m.LevelName,
			Priority:       inc.Priority,
			Deadline:       inc.NextDeadline,
			Kind:           m.Kind,
			URL:            incURL,
			AcknowledgedBy: inc.AcknowledgedBy,
			ResolvedBy:     inc.ResolvedBy,
			Members:        count,
			MembersFiring:  firing,
		},
	}
}
