package rollback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// Payload is the JSON body of the rollback webhook.
type Payload struct {
	Service         string `json:"service"`
	Environment     string `json:"environment"`
	BadVersion      string `json:"bad_version"`
	PreviousVersion string `json:"previous_version"`
	// DeployedAt is when the bad version was deployed.
	DeployedAt time.Time `json:"deployed_at"`
	// Alert, IncidentID and IncidentURL are empty for a manual rollback.
	Alert       *PayloadAlert `json:"alert,omitempty"`
	IncidentID  string        `json:"incident_id,omitempty"`
	IncidentURL string        `json:"incident_url,omitempty"`
	Reason      string        `json:"reason"`
	RequestedBy string        `json:"requested_by,omitempty"`
	RequestedAt time.Time     `json:"requested_at"`
	// Analysis holds the figures of the deploy analysis that failed, when
	// Reason is ReasonAnalysis.
	Analysis json.RawMessage `json:"analysis,omitempty"`
}

// Deploy analysis (analysis/) opens an incident for a deploy that failed
// its analysis, with Source SourceAnalysis and the deploy's ID under
// LabelDeployID; Decide rolls that deploy back with Reason ReasonAnalysis.
const (
	SourceAnalysis = "analysis"
	LabelDeployID  = "deploy_id"
	ReasonAnalysis = "analysis"
)

// NoteAnalysisFailure keeps the figures of a failed analysis of a deploy,
// for the rollback payload Decide builds for the incident deploy analysis
// opens next. Calling it again replaces them.
func (m *Manager) NoteAnalysisFailure(deployID string, figures json.RawMessage) error {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	if err := m.kv.Put(keyAnalysis+url.PathEscape(deployID), figures); err != nil {
		return fmt.Errorf("rollback: storing analysis figures: %w", err)
	}
	return nil
}

// decideAnalysis is Decide for an incident deploy analysis opened: the
// deploy it names is rolled back when it is still the last one, whatever
// rollback.when and rollback.window say (the analysis judged that deploy),
// but not within the cooldown. m.mtx is held.
func (m *Manager) decideAnalysis(s settings, log *slog.Logger, inc *notifier.Incident, env, incKey string) (*notifier.Message, *notifier.RollbackRecord, error) {
	id := inc.Alert.Labels[LabelDeployID]
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return m.skip(log, DecisionNoDeploy)
	}
	d, ok, err := m.deployByID(n)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return m.skip(log, DecisionNoDeploy)
	}
	last, ok, err := m.lastDeploy(d.Service, env)
	if err != nil {
		return nil, nil, err
	}
	if !ok || last.ID != d.ID {
		return m.skip(log, DecisionSuperseded)
	}
	now := m.now()
	if c, err := m.readCooldown(s.service, env); err != nil {
		return nil, nil, err
	} else if c.holds(s, now, incidentDelivery(inc)) {
		return m.skip(log, DecisionCooldown)
	}
	figures, _, err := m.kv.Get(keyAnalysis + url.PathEscape(id))
	if err != nil {
		return nil, nil, fmt.Errorf("rollback: reading analysis figures: %w", err)
	}
	p := incidentPayload(s, inc, d, env, alertStart(inc), now)
	p.Reason, p.Analysis = ReasonAnalysis, figures
	return m.fireForIncident(s, log, p, inc, incKey)
}

// incidentPayload is the rollback request of an incident that started at
// started, after the deploy d.
func incidentPayload(s settings, inc *notifier.Incident, d Deploy, env string, started, now time.Time) Payload {
	return Payload{
		Service:         d.Service,
		Environment:     env,
		BadVersion:      d.Version,
		PreviousVersion: d.PreviousVersion,
		DeployedAt:      d.At,
		Alert: &PayloadAlert{
			Name:        inc.Alert.Name,
			Labels:      inc.Alert.Labels,
			Annotations: inc.Alert.Annotations,
			Value:       finite(inc.Alert.Value),
			ActiveAt:    started,
		},
		IncidentID:  inc.ID,
		IncidentURL: incidentURL(s.externalURL, inc.ID),
		RequestedAt: now,
	}
}

// fireForIncident fires an incident's rollback, once per incident
// (delivery rb_<incident>), and puts the incident in its message.
func (m *Manager) fireForIncident(s settings, log *slog.Logger, p Payload, inc *notifier.Incident, incKey string) (*notifier.Message, *notifier.RollbackRecord, error) {
	msg, rec, err := m.fire(s, log, p, incidentDelivery(inc), incKey)
	var lost *lostCooldown
	switch {
	case errors.As(err, &lost):
		return m.skip(log, DecisionCooldown)
	case errors.Is(err, errDecided):
		b, _, err := m.kv.Get(incKey)
		if err != nil {
			return nil, nil, fmt.Errorf("rollback: reading incident state: %w", err)
		}
		return m.repeat(log, s, inc, p.Environment, b)
	case err != nil:
		return nil, nil, err
	}
	if msg != nil {
		msg.Incident = *inc
	}
	return msg, rec, nil
}

// incidentDelivery is the delivery id of an incident's rollback: one per
// incident, whichever gateway decides it.
func incidentDelivery(inc *notifier.Incident) string { return "rb_" + inc.ID }

// errDecided is fire's answer when another gateway stored the incident's
// decision first.
var errDecided = errors.New("rollback: incident decided already")

// lostCooldown is fire's answer when another rollback took the cooldown
// first.
type lostCooldown struct{ c cooldown }

func (e *lostCooldown) Error() string { return "rollback: another rollback took the cooldown" }

// PayloadAlert is the alert that asked for the rollback.
type PayloadAlert struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Value is null when the alert's value is not a finite number.
	Value    *float64  `json:"value"`
	ActiveAt time.Time `json:"active_at"`
}

// incidentState is what the KV keeps per incident that had a rollback.
type incidentState struct {
	Record notifier.RollbackRecord `json:"record"`
	// Message is nil for a dry run; its Incident is left empty.
	Message *notifier.Message `json:"message,omitempty"`
}

// Decide says whether inc calls for a rollback of the last deploy of the
// configured service in env (the configured environment when empty). When it
// does, it records the rollback (for the incident and for the cooldown) and
// returns the message for Receiver to deliver and the record to keep on the
// incident; with rollback.dry_run it records and returns the record with no
// message. It returns nils when no rollback is due, and an error only when
// its state cannot be read or written; the state is written before the
// message is returned, so a failure means no rollback rather than two.
//
// An incident gets at most one rollback. Once inc.Rollback is set, Decide
// returns nils. While it is not (the caller crashed before storing the
// decision, as notifier.Rollbacker allows), Decide repeats the stored
// decision: the same message, delivery id and record.
func (m *Manager) Decide(_ context.Context, inc *notifier.Incident, env string) (*notifier.Message, *notifier.RollbackRecord, error) {
	if inc == nil {
		return nil, nil, errors.New("rollback: nil incident")
	}
	m.mtx.Lock()
	defer m.mtx.Unlock()
	s := m.cfg
	if s.webhook == nil {
		return nil, nil, nil
	}
	if env == "" {
		env = s.environment
	}
	log := m.logger.With("incident", inc.ID, "alertname", inc.Alert.Name, "environment", env)
	if env != config.EnvProduction {
		return m.skip(log, DecisionEnvironment)
	}
	if inc.Rollback != nil {
		return m.skip(log, DecisionAlreadyFired)
	}
	incKey := keyIncident + url.PathEscape(inc.ID)
	if b, done, err := m.kv.Get(incKey); err != nil {
		return nil, nil, fmt.Errorf("rollback: reading incident state: %w", err)
	} else if done {
		// Decided before, but the caller has no record of it: it crashed
		// before storing the decision.
		return m.repeat(log, s, inc, env, b)
	}
	if inc.Alert.Source == SourceAnalysis {
		return m.decideAnalysis(s, log, inc, env, incKey)
	}
	if !matches(s.when, inc.Alert.Labels) {
		return m.skip(log, DecisionNotMatching)
	}
	d, ok, err := m.lastDeploy(s.service, env)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return m.skip(log, DecisionNoDeploy)
	}
	started := alertStart(inc)
	if started.Before(d.At) || started.After(d.At.Add(s.window)) {
		log.Debug("alert did not start within the window after the last deploy",
			"started", started, "deployed", d.At, "window", s.window)
		return m.skip(log, DecisionOutsideWindow)
	}
	now := m.now()
	if c, err := m.readCooldown(s.service, env); err != nil {
		return nil, nil, err
	} else if c.holds(s, now, incidentDelivery(inc)) {
		return m.skip(log, DecisionCooldown)
	}

	p := incidentPayload(s, inc, d, env, started, now)
	p.Reason = fmt.Sprintf("alert %s started %s after the deploy of %s",
		inc.Alert.Name, started.Sub(d.At).Round(time.Second), d.Version)
	return m.fireForIncident(s, log, p, inc, incKey)
}

// repeat answers the decision stored for an incident (b) again, with the
// same delivery id, so the controller sees one rollback: the caller
// crashed before storing it, or another gateway sharing the store decided
// first.
func (m *Manager) repeat(log *slog.Logger, s settings, inc *notifier.Incident, env string, b []byte) (*notifier.Message, *notifier.RollbackRecord, error) {
	var st incidentState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, fmt.Errorf("rollback: decoding incident state: %w", err)
	}
	// The cooldown may not have been written before the crash (by a
	// version that wrote it after the incident's state).
	if err := m.storeCooldown(s.service, env, st.Record.At, st.Record.DeliveryID); err != nil {
		return nil, nil, err
	}
	m.decisions.WithLabelValues(DecisionAlreadyFired).Inc()
	log.Info("rollback already decided for this incident; repeating the decision", "delivery_id", st.Record.DeliveryID)
	rec := st.Record
	if st.Message == nil {
		return nil, &rec, nil
	}
	msg := *st.Message
	msg.Incident = *inc
	return &msg, &rec, nil
}

// Manual rolls back the last deploy of the configured service and
// environment now, for POST /api/v1/rollback. It skips the window and the
// rollback.when match but not the environment (production only) nor the
// cooldown: an operator who must roll back again within it waits, or the deploy
// controller is called directly. It returns ErrNotConfigured, ErrEnvironment,
// ErrNoDeploy or ErrCooldown (wrapped) when it will not roll back. Each call
// gets its own delivery id, so a second manual rollback after the cooldown is
// not taken for a retry of the first.
func (m *Manager) Manual(_ context.Context, reason, by string) (*notifier.Message, *notifier.RollbackRecord, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	s := m.cfg
	if s.webhook == nil {
		return nil, nil, ErrNotConfigured
	}
	log := m.logger.With("manual", true, "by", by, "environment", s.environment)
	if s.environment != config.EnvProduction {
		m.decisions.WithLabelValues(DecisionEnvironment).Inc()
		return nil, nil, fmt.Errorf("rollback in %q: %w", s.environment, ErrEnvironment)
	}
	d, ok, err := m.lastDeploy(s.service, s.environment)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		m.decisions.WithLabelValues(DecisionNoDeploy).Inc()
		return nil, nil, fmt.Errorf("rollback of %q in %q: %w", s.service, s.environment, ErrNoDeploy)
	}
	now := m.now()
	// Random too: two requests in the same nanosecond, on two gateways or
	// under a stopped clock, are two rollbacks, and the first holds the
	// second off.
	var r [4]byte
	_, _ = rand.Read(r[:])
	id := "rb_manual_" + strconv.FormatInt(now.UnixNano(), 10) + "_" + hex.EncodeToString(r[:])
	c, err := m.readCooldown(s.service, s.environment)
	if err != nil {
		return nil, nil, err
	}
	if c.holds(s, now, id) {
		m.decisions.WithLabelValues(DecisionCooldown).Inc()
		return nil, nil, c.errCooldown(s)
	}
	if strings.TrimSpace(reason) == "" {
		reason = "manual rollback"
	}
	p := Payload{
		Service:         d.Service,
		Environment:     s.environment,
		BadVersion:      d.Version,
		PreviousVersion: d.PreviousVersion,
		DeployedAt:      d.At,
		Reason:          reason,
		RequestedBy:     by,
		RequestedAt:     now,
	}
	msg, rec, err := m.fire(s, log, p, id, "")
	var lost *lostCooldown
	if errors.As(err, &lost) {
		m.decisions.WithLabelValues(DecisionCooldown).Inc()
		return nil, nil, lost.c.errCooldown(s)
	}
	return msg, rec, err
}

// fire records a due rollback and builds its message; m.mtx is held.
// incKey is empty for a manual rollback.
func (m *Manager) fire(s settings, log *slog.Logger, p Payload, id, incKey string) (*notifier.Message, *notifier.RollbackRecord, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, nil, fmt.Errorf("rollback: encoding payload: %w", err)
	}
	rec := &notifier.RollbackRecord{
		DeliveryID:      id,
		BadVersion:      p.BadVersion,
		PreviousVersion: p.PreviousVersion,
		DryRun:          s.dryRun,
		At:              p.RequestedAt,
		Outcome:         notifier.OutcomePending,
	}
	if s.dryRun {
		rec.Outcome = OutcomeDryRun
	}
	var msg *notifier.Message
	if !s.dryRun {
		msg = &notifier.Message{
			DeliveryID:  id,
			Kind:        notifier.KindRollback,
			Level:       -1,
			LevelName:   "rollback",
			Service:     p.Service,
			Environment: p.Environment,
			ExternalURL: s.externalURL,
			CreatedAt:   p.RequestedAt,
			Payload:     body,
		}
	}
	// The cooldown is claimed first, naming this rollback's delivery, and
	// then the incident: of gateways deciding at once, for one incident or
	// for several, one rolls back and the others hold off or repeat its
	// decision. A crash between the two leaves a cooldown held by the
	// incident's own rollback, which does not hold it off (holds).
	if c, claimed, err := m.claimCooldown(s, p.Environment, p.RequestedAt, id); err != nil {
		return nil, nil, err
	} else if !claimed {
		return nil, nil, &lostCooldown{c: c}
	}
	if incKey != "" {
		b, err := json.Marshal(incidentState{Record: *rec, Message: msg})
		if err != nil {
			return nil, nil, fmt.Errorf("rollback: encoding record: %w", err)
		}
		put, err := notifier.Swap(m.kv, incKey, nil, b)
		if err != nil {
			return nil, nil, fmt.Errorf("rollback: storing incident state: %w", err)
		}
		if !put {
			return nil, nil, errDecided
		}
	}
	if s.dryRun {
		m.decisions.WithLabelValues(DecisionDryRun).Inc()
		log.Info("rollback due; dry run, not calling the webhook", "delivery_id", id,
			"bad_version", p.BadVersion, "previous_version", p.PreviousVersion, "reason", p.Reason)
		return nil, rec, nil
	}
	m.decisions.WithLabelValues(DecisionFired).Inc()
	log.Info("rollback due", "delivery_id", id,
		"bad_version", p.BadVersion, "previous_version", p.PreviousVersion, "reason", p.Reason)
	return msg, rec, nil
}

func (m *Manager) skip(log *slog.Logger, decision string) (*notifier.Message, *notifier.RollbackRecord, error) {
	m.decisions.WithLabelValues(decision).Inc()
	log.Debug("no rollback", "decision", decision)
	return nil, nil, nil
}

// cooldown is the last rollback of a service in an environment as the KV
// keeps it: "<RFC 3339 time> <delivery id>" (older versions wrote the time
// alone).
type cooldown struct {
	raw []byte // nil when none is recorded
	at  time.Time
	id  string
}

// holds reports whether the cooldown holds a rollback with delivery id off
// at now: it does not hold off the rollback that took it.
func (c cooldown) holds(s settings, now time.Time, id string) bool {
	return c.raw != nil && c.id != id && now.Before(c.at.Add(s.cooldown))
}

func (c cooldown) errCooldown(s settings) error {
	return fmt.Errorf("last rollback at %s, cooldown %s: %w", c.at.Format(time.RFC3339), s.cooldown, ErrCooldown)
}

func encodeCooldown(at time.Time, id string) []byte {
	return []byte(at.UTC().Format(time.RFC3339Nano) + " " + id)
}

// readCooldown returns the last rollback of service in env.
func (m *Manager) readCooldown(service, env string) (cooldown, error) {
	b, ok, err := m.kv.Get(pairKey(keyCooldown, service, env))
	if err != nil {
		return cooldown{}, fmt.Errorf("rollback: reading cooldown: %w", err)
	}
	if !ok {
		return cooldown{}, nil
	}
	return parseCooldown(b)
}

// parseCooldown decodes a stored cooldown; nil is none.
func parseCooldown(b []byte) (cooldown, error) {
	if b == nil {
		return cooldown{}, nil
	}
	at, id, _ := strings.Cut(string(b), " ")
	c := cooldown{raw: b, id: id}
	var err error
	if c.at, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return cooldown{}, fmt.Errorf("rollback: decoding cooldown: %w", err)
	}
	return c, nil
}

// claimCooldown records the rollback id at `at` for the cooldown unless
// another holds it off, in one compare-and-swap with the value it read:
// of gateways claiming at once, one does and the others see its claim.
// It returns the cooldown that holds id off when it does not claim.
func (m *Manager) claimCooldown(s settings, env string, at time.Time, id string) (cooldown, bool, error) {
	var c cooldown
	claimed, err := notifier.Modify(m.kv, pairKey(keyCooldown, s.service, env), func(cur []byte) ([]byte, bool, error) {
		var err error
		if c, err = parseCooldown(cur); err != nil {
			return nil, false, err
		}
		return encodeCooldown(at, id), !c.holds(s, at, id), nil
	})
	if err != nil {
		return cooldown{}, false, fmt.Errorf("rollback: storing cooldown: %w", err)
	}
	return c, claimed, nil
}

// storeCooldown records the rollback id at `at` for the cooldown, unless a
// later one is recorded.
func (m *Manager) storeCooldown(service, env string, at time.Time, id string) error {
	_, err := notifier.Modify(m.kv, pairKey(keyCooldown, service, env), func(cur []byte) ([]byte, bool, error) {
		c, err := parseCooldown(cur)
		if err != nil {
			return nil, false, err
		}
		return encodeCooldown(at, id), c.raw == nil || c.at.Before(at), nil
	})
	if err != nil {
		return fmt.Errorf("rollback: storing cooldown: %w", err)
	}
	return nil
}

// matches reports whether labels has every key of when with the same value.
func matches(when, labels map[string]string) bool {
	for k, v := range when {
		got, ok := labels[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// alertStart is when the alert started: its ActiveAt, else when it fired,
// else when the incident opened.
func alertStart(inc *notifier.Incident) time.Time {
	switch {
	case !inc.Alert.ActiveAt.IsZero():
		return inc.Alert.ActiveAt
	case !inc.Alert.FiredAt.IsZero():
		return inc.Alert.FiredAt
	}
	return inc.CreatedAt
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// incidentURL links the incident in the API; a path alone without a base.
func incidentURL(base, id string) string {
	return strings.TrimRight(base, "/") + "/api/v1/incidents/" + url.PathEscape(id)
}
