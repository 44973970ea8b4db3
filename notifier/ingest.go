package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// Alerts posted to the Alertmanager API v2 (POST /api/v2/alerts), as
// implemented here:
//
//   - Each valid alert is written to the store's "ingest" key-value space
//     under its fingerprint (labels, annotations, startsAt, endsAt), then
//     fed through the same path as the rules' alerts with Source SourceAPI:
//     a firing alert opens its incident, a resolved one (endsAt not after
//     now) resolves it. The posts are taken one at a time, so the record
//     and the incident never disagree about which came last.
//   - An alert without endsAt ends resolve_timeout after it was posted
//     (Alertmanager's resolve timeout). A sweeper in Run resolves every
//     alert whose endsAt passed without a new post, at its endsAt, by the
//     injected Clock. The records are durable: after a restart the sweeper
//     resolves what expired while vigil was down. The restart reconcile
//     leaves SourceAPI incidents alone (fromRules): their endsAt ends them.
//   - An alert that was resolved and is posted again firing with the same
//     startsAt opens no new incident (the same firing, as for an incident
//     resolved by hand); a new startsAt opens one.

// SourceAPI is Alert.Source of the alerts posted to the Alertmanager API.
const SourceAPI = "api"

// ingestNamespace is the key-value space of the posted alerts' records.
const ingestNamespace = "ingest"

// Bounds of one posted alert. Alertmanager has none by default; these keep
// one sender from filling the store or the messages.
const (
	MaxPostedLabels          = 64
	MaxPostedLabelNameBytes  = 256
	MaxPostedLabelValueBytes = 4096
	MaxPostedAnnotations     = 64
	MaxPostedAnnotationBytes = 16384
	MaxPostedURLBytes        = 4096
)

// ErrInvalidAlert wraps every validation error of a posted alert.
var ErrInvalidAlert = errors.New("invalid alert")

// PostedAlert is one alert of POST /api/v2/alerts, in Alertmanager's schema.
type PostedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// IngestedAlert is a posted alert as vigil keeps it.
type IngestedAlert struct {
	PostedAlert
	Fingerprint string    `json:"fingerprint"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// Timeout says that endsAt was not posted: it is resolve_timeout after
	// the last post.
	Timeout bool `json:"timeout,omitempty"`
	// SilencedBy and Receivers are filled by PostedAlerts, never stored.
	SilencedBy []string `json:"silencedBy,omitempty"`
	Receivers  []string `json:"receivers,omitempty"`
}

// ValidatePostedAlert checks a posted alert as Alertmanager does, after
// dropping its labels with empty values (an empty label is no label): at
// least one label and an alertname, valid UTF-8 label names and values,
// endsAt not before startsAt; and vigil's size bounds. Errors wrap
// ErrInvalidAlert.
func ValidatePostedAlert(a *PostedAlert) error {
	for k, v := range a.Labels {
		if v == "" {
			delete(a.Labels, k)
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidAlert, fmt.Sprintf(format, args...))
	}
	switch {
	case len(a.Labels) == 0:
		return bad("at least one label pair required")
	case a.Labels[labels.AlertName] == "":
		return bad("the label alertname is required")
	case len(a.Labels) > MaxPostedLabels:
		return bad("%d labels; at most %d", len(a.Labels), MaxPostedLabels)
	case len(a.Annotations) > MaxPostedAnnotations:
		return bad("%d annotations; at most %d", len(a.Annotations), MaxPostedAnnotations)
	case len(a.GeneratorURL) > MaxPostedURLBytes:
		return bad("generatorURL is %d bytes; at most %d", len(a.GeneratorURL), MaxPostedURLBytes)
	case !a.StartsAt.IsZero() && !a.EndsAt.IsZero() && a.EndsAt.Before(a.StartsAt):
		return bad("start time must be before end time: endsAt %s is before startsAt %s",
			a.EndsAt.UTC().Format(time.RFC3339), a.StartsAt.UTC().Format(time.RFC3339))
	}
	check := func(what string, m map[string]string, maxValue int) error {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			switch {
			case len(k) > MaxPostedLabelNameBytes:
				return bad("invalid %s: name %.40q… is %d bytes; at most %d", what, k, len(k), MaxPostedLabelNameBytes)
			case !model.UTF8Validation.IsValidLabelName(k):
				return bad("invalid %s: %q is not a valid label name", what, k)
			case !utf8.ValidString(v):
				return bad("invalid %s: the value of %q is not valid UTF-8", what, k)
			case len(v) > maxValue:
				return bad("invalid %s: the value of %q is %d bytes; at most %d", what, k, len(v), maxValue)
			}
		}
		return nil
	}
	if err := check("label set", a.Labels, MaxPostedLabelValueBytes); err != nil {
		return err
	}
	return check("annotations", a.Annotations, MaxPostedAnnotationBytes)
}

// ingestState is what the Manager keeps of the posted alerts.
type ingestState struct {
	// mtx takes posts and sweeps one at a time.
	mtx sync.Mutex
	// waiting are the posts not written yet (IngestAlerts), under
	// waitMtx.
	waitMtx sync.Mutex
	waiting []*ingestRequest
	// ends is each recorded alert's endsAt by fingerprint; nil until read
	// from the store.
	ends map[string]time.Time
	// armed is when the sweeper wakes next; zero when it waits for a post.
	armed time.Time

	once sync.Once
	wake chan struct{}
}

func (s *ingestState) wakeCh() chan struct{} {
	s.once.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

// loadIngest reads the records' endsAt from the store once. Call it with
// ingest.mtx held.
func (m *Manager) loadIngest() error {
	if m.ingest.ends != nil {
		return nil
	}
	all, err := m.store.KV(ingestNamespace).List("")
	if err != nil {
		return err
	}
	ends := make(map[string]time.Time, len(all))
	for fp, raw := range all {
		var rec IngestedAlert
		if err := json.Unmarshal(raw, &rec); err != nil {
			m.logger.Warn("unreadable record of a posted alert; it will not be resolved by its endsAt", "fingerprint", fp, "err", err)
			continue
		}
		ends[fp] = rec.EndsAt
	}
	m.ingest.ends = ends
	return nil
}

// IngestAlerts takes alerts posted to the Alertmanager API, each validated
// by ValidatePostedAlert: it records them and opens or resolves their
// incidents. A missing startsAt is now (or endsAt, when that is set), a
// missing endsAt now + ingest.resolve_timeout, as in Alertmanager. An error
// means the records could not be written; the alerts before the failing
// one were taken.
//
// Posts are written together (group commit): a post that arrives while
// another is being written waits, and the next writer takes every waiting
// post in one batch, so many senders cost a few transactions, not one each.
func (m *Manager) IngestAlerts(ctx context.Context, alerts []PostedAlert) error {
	req := &ingestRequest{alerts: alerts}
	m.ingest.waitMtx.Lock()
	m.ingest.waiting = append(m.ingest.waiting, req)
	m.ingest.waitMtx.Unlock()

	m.ingest.mtx.Lock()
	defer m.ingest.mtx.Unlock()
	if req.done {
		return req.err // written in an earlier writer's batch
	}
	m.ingest.waitMtx.Lock()
	batch := m.ingest.waiting
	m.ingest.waiting = nil
	m.ingest.waitMtx.Unlock()
	all := alerts
	if len(batch) > 1 {
		all = make([]PostedAlert, 0, len(batch)*len(alerts))
		for _, r := range batch {
			all = append(all, r.alerts...)
		}
	}
	// The batch is other senders' too: it must not end with this one's
	// request.
	err := m.ingestLocked(context.WithoutCancel(ctx), all)
	for _, r := range batch {
		r.done, r.err = true, err
	}
	return err
}

// ingestRequest is one post waiting to be written.
type ingestRequest struct {
	alerts []PostedAlert
	// done and err are set by the writer that took the request, under
	// ingest.mtx.
	done bool
	err  error
}

// ingestLocked records and notifies alerts; ingest.mtx is held.
func (m *Manager) ingestLocked(ctx context.Context, alerts []PostedAlert) error {
	cfg := m.config()
	if cfg == nil {
		return errors.New("notifier: no config applied")
	}
	timeout := cfg.resolveTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if err := m.loadIngest(); err != nil {
		return fmt.Errorf("notifier: read posted alerts: %w", err)
	}
	now := m.clock.Now()
	batch := make([]*rules.Alert, 0, len(alerts))
	put := make(map[string][]byte, len(alerts))
	// ends is each posted fingerprint's last endsAt in the batch, zero
	// when its last post resolved it (its record is deleted).
	ends := make(map[string]time.Time, len(alerts))
	earliest := time.Time{}
	for _, p := range alerts {
		rec := IngestedAlert{PostedAlert: p, UpdatedAt: now}
		if rec.StartsAt.IsZero() {
			rec.StartsAt = now
			if !rec.EndsAt.IsZero() {
				rec.StartsAt = rec.EndsAt
			}
		}
		if rec.EndsAt.IsZero() {
			rec.EndsAt, rec.Timeout = now.Add(timeout), true
		}
		ls := labels.FromMap(rec.Labels)
		rec.Fingerprint = fingerprint(ls)
		a := &rules.Alert{
			Labels:      ls,
			Annotations: labels.FromMap(rec.Annotations),
			ActiveAt:    rec.StartsAt,
			FiredAt:     rec.StartsAt,
			ValidUntil:  rec.EndsAt,
		}
		if rec.EndsAt.After(now) {
			a.State = rules.StateFiring
			raw, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("notifier: record posted alerts: %w", err)
			}
			put[rec.Fingerprint] = raw
			ends[rec.Fingerprint] = rec.EndsAt
			if earliest.IsZero() || rec.EndsAt.Before(earliest) {
				earliest = rec.EndsAt
			}
		} else {
			a.State, a.ResolvedAt = rules.StateInactive, rec.EndsAt
			delete(put, rec.Fingerprint)
			ends[rec.Fingerprint] = time.Time{}
		}
		batch = append(batch, a)
	}
	var del []string
	for fp, end := range ends {
		if end.IsZero() {
			del = append(del, fp)
		}
	}
	// The records first, all in one write when the store can: an incident
	// is never opened without the record that will resolve it.
	if err := writeKV(m.store.KV(ingestNamespace), put, del); err != nil {
		return fmt.Errorf("notifier: record posted alerts: %w", err)
	}
	for fp, end := range ends {
		if end.IsZero() {
			delete(m.ingest.ends, fp)
		} else {
			m.ingest.ends[fp] = end
		}
	}
	m.notifyAPI(ctx, cfg, batch)
	if !earliest.IsZero() && (m.ingest.armed.IsZero() || earliest.Before(m.ingest.armed)) {
		select {
		case m.ingest.wakeCh() <- struct{}{}:
		default:
		}
	}
	return nil
}

// kvWriter is a KV that writes many keys in one transaction (the bbolt
// store's).
type kvWriter interface {
	Write(put map[string][]byte, del []string) error
}

// writeKV puts and deletes keys, in one transaction when kv can.
func writeKV(kv KV, put map[string][]byte, del []string) error {
	if w, ok := kv.(kvWriter); ok {
		return w.Write(put, del)
	}
	for k, v := range put {
		if err := kv.Put(k, v); err != nil {
			return err
		}
	}
	for _, k := range del {
		if err := kv.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// notifyAPI feeds alerts through the rules' notify path as SourceAPI.
func (m *Manager) notifyAPI(ctx context.Context, cfg *runtimeConfig, alerts []*rules.Alert) {
	for len(alerts) > 0 {
		batch := alerts[:min(len(alerts), notifyBatch)]
		alerts = alerts[len(batch):]
		m.notify(ctx, cfg, SourceAPI, "", batch)
	}
}

// runIngest resolves the posted alerts whose endsAt passed without a new
// post, at their endsAt, until ctx is done.
func (m *Manager) runIngest(ctx context.Context) {
	fire := make(chan struct{}, 1)
	wake := m.ingest.wakeCh()
	for {
		next := m.sweepIngest(ctx)
		var t Timer
		if !next.IsZero() {
			t = m.clock.AfterFunc(max(next.Sub(m.clock.Now()), 0), func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		}
		select {
		case <-fire:
		case <-wake:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// ingestRetry is how soon a sweep that could not read or write the store
// is tried again.
const ingestRetry = 10 * time.Second

// sweepIngest resolves the expired posted alerts and returns the earliest
// endsAt left (zero for none).
func (m *Manager) sweepIngest(ctx context.Context) time.Time {
	m.ingest.mtx.Lock()
	defer m.ingest.mtx.Unlock()
	now := m.clock.Now()
	if err := m.loadIngest(); err != nil {
		m.logger.Error("cannot read posted alerts to resolve them", "err", err)
		m.ingest.armed = now.Add(ingestRetry)
		return m.ingest.armed
	}
	cfg := m.config()
	kv := m.store.KV(ingestNamespace)
	var (
		batch []*rules.Alert
		gone  []string
		retry bool
	)
	for fp, end := range m.ingest.ends {
		if end.After(now) {
			continue
		}
		raw, ok, err := kv.Get(fp)
		if err != nil {
			m.logger.Error("cannot read a posted alert to resolve it", "fingerprint", fp, "err", err)
			retry = true
			continue
		}
		var rec IngestedAlert
		if ok {
			if err := json.Unmarshal(raw, &rec); err != nil {
				ok = false
			}
		}
		if !ok {
			delete(m.ingest.ends, fp)
			continue
		}
		if rec.EndsAt.After(now) {
			m.ingest.ends[fp] = rec.EndsAt
			continue
		}
		batch = append(batch, &rules.Alert{
			State:       rules.StateInactive,
			Labels:      labels.FromMap(rec.Labels),
			Annotations: labels.FromMap(rec.Annotations),
			ActiveAt:    rec.StartsAt,
			FiredAt:     rec.StartsAt,
			ResolvedAt:  rec.EndsAt,
			ValidUntil:  rec.EndsAt,
		})
		gone = append(gone, fp)
	}
	if len(batch) > 0 && cfg != nil {
		m.notifyAPI(ctx, cfg, batch)
		if err := writeKV(kv, nil, gone); err != nil {
			// Resolved already: the next sweep resolves them again,
			// which changes nothing.
			m.logger.Error("cannot delete the records of resolved posted alerts", "alerts", len(gone), "err", err)
			retry = true
		} else {
			for _, fp := range gone {
				delete(m.ingest.ends, fp)
			}
		}
		m.logger.Debug("posted alerts resolved at their endsAt", "alerts", len(batch))
	} else if len(batch) > 0 {
		retry = true
	}
	next := time.Time{}
	for _, end := range m.ingest.ends {
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	if retry && (next.IsZero() || now.Add(ingestRetry).Before(next)) {
		next = now.Add(ingestRetry)
	}
	m.ingest.armed = next
	return next
}

// PostedAlerts returns the posted alerts that have not ended, each with the
// silence that mutes it, if any, and the receivers of the first level.
func (m *Manager) PostedAlerts() ([]IngestedAlert, error) {
	all, err := m.store.KV(ingestNamespace).List("")
	if err != nil {
		return nil, fmt.Errorf("notifier: read posted alerts: %w", err)
	}
	now := m.clock.Now()
	var receivers []string
	if cfg := m.config(); cfg != nil && len(cfg.levels) > 0 {
		receivers = cfg.levels[0].Notify
	}
	out := make([]IngestedAlert, 0, len(all))
	err = m.store.View(func(tx Tx) error {
		eff := newEffects()
		for fp, raw := range all {
			var rec IngestedAlert
			if err := json.Unmarshal(raw, &rec); err != nil || !rec.EndsAt.After(now) {
				continue
			}
			rec.Fingerprint = fp
			id, err := m.silencedBy(tx, rec.Labels, now, eff)
			if err != nil {
				return err
			}
			if id != "" {
				rec.SilencedBy = []string{id}
			}
			rec.Receivers = slices.Clone(receivers)
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: read silences: %w", err)
	}
	slices.SortFunc(out, func(a, b IngestedAlert) int {
		if c := a.StartsAt.Compare(b.StartsAt); c != 0 {
			return c
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	return out, nil
}
