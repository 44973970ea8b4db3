package notifier

import (
	"context"
	"time"
)

// Priorities an incident can have; escalation.response_times gives each its
// response deadline.
const (
	PriorityCritical = "critical"
	PriorityHigh     = "high"
	PriorityMedium   = "medium"
	PriorityLow      = "low"
)

// State is where an incident is in its life.
type State string

// Incident states: triggered → acknowledged → resolved.
const (
	StateTriggered    State = "triggered"
	StateAcknowledged State = "acknowledged"
	StateResolved     State = "resolved"
)

// Kind says why a message is sent.
type Kind string

// Message kinds.
const (
	KindFiring       Kind = "firing"       // the incident opened: level 1
	KindEscalation   Kind = "escalation"   // a deadline passed: the next level
	KindRepeat       Kind = "repeat"       // the last level again, each deadline
	KindAcknowledged Kind = "acknowledged" // someone took it: every notified level
	KindResolved     Kind = "resolved"     // it ended: every notified level
	KindRollback     Kind = "rollback"     // the deploy controller's rollback webhook
)

// Alert is the alert an incident is about, as it was last seen.
type Alert struct {
	Name         string            `json:"name"`
	Fingerprint  string            `json:"fingerprint"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Value        float64           `json:"value"`
	ActiveAt     time.Time         `json:"activeAt"`
	FiredAt      time.Time         `json:"firedAt"`
	ResolvedAt   time.Time         `json:"resolvedAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	// Source is where the alert came from: SourceRules for vigil's own
	// rules (also when empty, as in incidents of older versions).
	Source string `json:"source,omitempty"`
	// EndsAt is when an alert from another source resolves unless it is
	// sent again (Alertmanager's endsAt); zero for vigil's own rules.
	EndsAt time.Time `json:"endsAt,omitzero"`
}

// Member states.
const (
	MemberFiring   = "firing"
	MemberResolved = "resolved"
)

// Member is one alert of an incident's group (escalation.group_by), with
// its own state: the replicas of a service that fire together share one
// incident, and it resolves when every member has.
type Member struct {
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	// State is MemberFiring or MemberResolved.
	State      string    `json:"state"`
	Value      float64   `json:"value"`
	ActiveAt   time.Time `json:"activeAt"`
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	Source     string    `json:"source,omitempty"`
	EndsAt     time.Time `json:"endsAt,omitzero"`
}

// Incident is one firing of one group of alerts (escalation.group_by), from
// the first firing evaluation of its first alert to the resolution of its
// last.
type Incident struct {
	ID string `json:"id"`
	// Fingerprint is the group's key: the hash of its group_by labels. In
	// incidents of older versions, and with group_by "...", it is the
	// alert's own fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Alert is the group's first alert, as it was last seen: what messages
	// name the incident by.
	Alert Alert `json:"alert"`
	// Members are the alerts of the group, first to last joined. Incidents
	// of older versions have none: their Alert is their only member (see
	// MemberList). Storm incidents have none either (see Storm).
	Members  []Member `json:"members,omitempty"`
	State    State    `json:"state"`
	Priority string   `json:"priority"`
	// Level is the index (0-based) of the highest level notified; -1 before
	// any.
	Level int `json:"level"`
	// NextDeadline is when the next level is notified if nobody
	// acknowledges; zero when nothing is scheduled.
	NextDeadline time.Time `json:"nextDeadline,omitzero"`
	// Repeats counts re-notifications of the last level.
	Repeats        int       `json:"repeats"`
	CreatedAt      time.Time `json:"createdAt"`
	AcknowledgedAt time.Time `json:"acknowledgedAt,omitzero"`
	AcknowledgedBy string    `json:"acknowledgedBy,omitempty"`
	ResolvedAt     time.Time `json:"resolvedAt,omitzero"`
	ResolvedBy     string    `json:"resolvedBy,omitempty"`
	Comments       []Comment `json:"comments,omitempty"`
	// Notifications are every message queued for this incident, with their
	// outcome.
	Notifications []Notification `json:"notifications"`
	// Rollback is the rollback webhook call made for this incident, if any.
	Rollback *RollbackRecord `json:"rollback,omitempty"`
	// Storm is set on the incident that folds an alert storm: how many
	// alerts it holds and the first of them.
	Storm *Storm `json:"storm,omitempty"`
	// RTODeadline is when a down incident runs out of
	// disaster_recovery.rto (rto.go); zero for other incidents.
	RTODeadline time.Time `json:"rtoDeadline,omitzero"`
}

// Comment is a note left with an acknowledgement or a resolution.
type Comment struct {
	At   time.Time `json:"at"`
	By   string    `json:"by"`
	Text string    `json:"text"`
}

// Notification is one message to one receiver for an incident.
type Notification struct {
	DeliveryID string    `json:"deliveryId"`
	Receiver   string    `json:"receiver"`
	Level      int       `json:"level"`
	Kind       Kind      `json:"kind"`
	QueuedAt   time.Time `json:"queuedAt"`
	// Outcome is pending, delivered, failed or silenced.
	Outcome  string    `json:"outcome"`
	Attempts int       `json:"attempts"`
	DoneAt   time.Time `json:"doneAt,omitzero"`
	Error    string    `json:"error,omitempty"`
	// SilenceID names the silence that muted a silenced notification.
	SilenceID string `json:"silenceId,omitempty"`
}

// Delivery outcomes.
const (
	OutcomePending   = "pending"
	OutcomeDelivered = "delivered"
	OutcomeFailed    = "failed"
	// OutcomeSilenced is a notification not sent because a silence muted
	// it: no delivery was queued.
	OutcomeSilenced = "silenced"
)

// RollbackRecord is the rollback webhook call of an incident.
type RollbackRecord struct {
	DeliveryID      string    `json:"deliveryId"`
	BadVersion      string    `json:"badVersion"`
	PreviousVersion string    `json:"previousVersion,omitempty"`
	DryRun          bool      `json:"dryRun"`
	At              time.Time `json:"at"`
	Outcome         string    `json:"outcome"`
	StatusCode      int       `json:"statusCode,omitempty"`
	Attempts        int       `json:"attempts"`
}

// Message is what a receiver delivers: one kind of news about one incident
// for one level.
type Message struct {
	// DeliveryID is stable across retries and restarts, so receivers can
	// drop duplicates (the webhook's webhook-id).
	DeliveryID  string    `json:"deliveryId"`
	Kind        Kind      `json:"kind"`
	Incident    Incident  `json:"incident"`
	Level       int       `json:"level"`
	LevelName   string    `json:"levelName"`
	Service     string    `json:"service"`
	Environment string    `json:"environment"`
	ExternalURL string    `json:"externalURL"`
	CreatedAt   time.Time `json:"createdAt"`
	// Payload is kind-specific content (the rollback request), empty for
	// the others.
	Payload []byte `json:"payload,omitempty"`
}

// Receiver delivers messages to one place. It returns whether a failure is
// worth retrying, as Alertmanager's notifiers do.
type Receiver interface {
	Notify(ctx context.Context, m *Message) (retry bool, err error)
}

// RetryAfter is an error a receiver returns when the far end said when to
// come back (an HTTP 429 Retry-After); the delivery queue waits that long.
type RetryAfter struct {
	After time.Duration
	Err   error
}

// Error implements error.
func (e *RetryAfter) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *RetryAfter) Unwrap() error { return e.Err }

// KV is a small durable key-value space in the store, one per namespace,
// for receivers and the rollback logic to keep their own state (Slack
// message timestamps, deploys, cooldowns).
type KV interface {
	Get(key string) ([]byte, bool, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// List returns every key with the prefix and its value.
	List(prefix string) (map[string][]byte, error)
}
