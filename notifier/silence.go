package notifier

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// Silences, as implemented here (Alertmanager's, adapted to incidents):
//
//   - A silence mutes messages, not incidents: an alert it matches still
//     opens, escalates and resolves its incident on schedule. Each message
//     that would be queued for the incident while a silence is active
//     (firing, escalation, repeat, acknowledged, resolved) is recorded on the
//     incident as a notification with OutcomeSilenced, and no delivery is
//     written. The rollback webhook is never silenced: it is a decision
//     about a bad deploy, not a notification.
//   - Silences live in the store, in their own bucket, and enqueue reads them
//     inside the transaction that queues the message. So a message is
//     silenced exactly when a silence was committed before it, a restart
//     loses none, and a store shared by two gateways silences on both. Parsed
//     matchers are cached by their text: a silence never changes them.
//   - The check is made when a message is queued, so once a silence ends the
//     next deadline notifies as usual.
//   - An expired silence is kept silenceKeep after its end, for the list,
//     then deleted by the hourly retention loop.

// Silence limits.
const (
	// maxSilence is the longest a silence may last, and how far ahead it
	// may start.
	maxSilence = 30 * 24 * time.Hour
	// maxSilences bounds the silences in force or pending: every message
	// queued reads them.
	maxSilences = 1000
	// silenceKeep is how long an expired silence stays in the list.
	silenceKeep = 7 * 24 * time.Hour
)

// ErrInvalidSilence wraps every validation error of AddSilence.
var ErrInvalidSilence = errors.New("invalid silence")

// Silence mutes notifications for the alerts its matchers select, from
// StartsAt to EndsAt.
type Silence struct {
	ID string `json:"id"`
	// Matchers is a PromQL series selector over alert labels:
	// {alertname="HighCPU", app=~"api|web"}. A metric name before the braces
	// matches the alertname label.
	Matchers  string    `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiredBy is who ended it early, if anyone.
	ExpiredBy string `json:"expiredBy,omitempty"`
}

// Active reports whether s mutes at t: StartsAt <= t < EndsAt.
func (s Silence) Active(t time.Time) bool {
	return !t.Before(s.StartsAt) && t.Before(s.EndsAt)
}

// invalidSilence is a validation error for the caller.
func invalidSilence(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSilence, fmt.Sprintf(format, args...))
}

// parseSilenceMatchers parses a silence's selector and refuses one that
// would silence every alert.
func parseSilenceMatchers(text string) ([]*labels.Matcher, error) {
	if strings.TrimSpace(text) == "" {
		return nil, invalidSilence(`matchers are required: a selector such as {alertname="HighCPU"}`)
	}
	ms, err := promqlparse.ParseMetricSelector(text)
	if err != nil {
		return nil, invalidSilence("matchers %q: %v", text, err)
	}
	for _, mt := range ms {
		if !mt.Matches("") {
			return ms, nil
		}
	}
	return nil, invalidSilence("matchers %q match every alert: at least one matcher must require a non-empty value, as alertname=\"HighCPU\" does", text)
}

// silenceMatchers caches parsed selectors by their text: parsing is far
// dearer than matching, and a stored selector never changes.
type silenceMatchers struct {
	mtx sync.Mutex
	m   map[string][]*labels.Matcher
}

func (c *silenceMatchers) get(text string) ([]*labels.Matcher, error) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	if ms, ok := c.m[text]; ok {
		return ms, nil
	}
	ms, err := parseSilenceMatchers(text)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string][]*labels.Matcher{}
	}
	c.m[text] = ms
	return ms, nil
}

func (c *silenceMatchers) forget(text string) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	delete(c.m, text)
}

// activeSilence is a silence in force during one transaction.
type activeSilence struct {
	id       string
	matchers []*labels.Matcher
}

// matches reports whether every matcher accepts the alert's labels; a
// missing label is the empty string, as in PromQL.
func (s *activeSilence) matches(ls map[string]string) bool {
	for _, mt := range s.matchers {
		name := mt.Name
		if name == labels.MetricName {
			// A bare name ("HighCPU{...}") reads as the alert's name.
			name = labels.AlertName
		}
		if !mt.Matches(ls[name]) {
			return false
		}
	}
	return true
}

// silencedBy returns the ID of an active silence that matches the alert
// labels, or "". The silences in force are read once per transaction and
// kept on its effects.
func (m *Manager) silencedBy(tx Tx, ls map[string]string, now time.Time, eff *effects) (string, error) {
	if eff.silences == nil {
		all, err := tx.Silences()
		if err != nil {
			return "", err
		}
		eff.silences = []activeSilence{}
		for _, s := range all {
			if !s.Active(now) {
				continue
			}
			ms, err := m.matchers.get(s.Matchers)
			if err != nil {
				// Validated when added, so only a damaged store gets here:
				// notify rather than mute on a selector nobody can read.
				m.logger.Warn("silence ignored: unreadable matchers", "silence", s.ID, "err", err)
				continue
			}
			eff.silences = append(eff.silences, activeSilence{id: s.ID, matchers: ms})
		}
	}
	for i := range eff.silences {
		if eff.silences[i].matches(ls) {
			return eff.silences[i].id, nil
		}
	}
	return "", nil
}

// maxSilenceText bounds a silence's matchers and comment, which every
// notification decision and the page read.
const maxSilenceText = 1024

// AddSilence validates and stores s. Matchers must parse as a PromQL series
// selector and need a non-empty value of at least one label (no silence of
// everything). A zero or past StartsAt means now. EndsAt must be after
// StartsAt and now, at most 30 days after StartsAt. CreatedBy is required.
// It assigns ID and CreatedAt and clears ExpiredBy. Validation errors wrap
// ErrInvalidSilence and are written for the caller.
func (m *Manager) AddSilence(s Silence) (Silence, error) {
	now := m.clock.Now()
	s.Matchers = strings.TrimSpace(s.Matchers)
	s.Comment = strings.TrimSpace(s.Comment)
	switch {
	case len(s.Matchers) > maxSilenceText:
		return Silence{}, invalidSilence("matchers are %d bytes; at most %d", len(s.Matchers), maxSilenceText)
	case len(s.Comment) > maxSilenceText:
		return Silence{}, invalidSilence("the comment is %d bytes; at most %d", len(s.Comment), maxSilenceText)
	}
	if _, err := parseSilenceMatchers(s.Matchers); err != nil {
		return Silence{}, err
	}
	s.CreatedBy = strings.TrimSpace(s.CreatedBy)
	if s.CreatedBy == "" {
		return Silence{}, invalidSilence("createdBy is required: say who silences")
	}
	if s.StartsAt.Before(now) {
		// A start in the past (or none) is now, as in Alertmanager: the
		// silence cannot have muted anything before it existed.
		s.StartsAt = now
	}
	switch {
	case s.EndsAt.IsZero():
		return Silence{}, invalidSilence("endsAt is required")
	case !s.EndsAt.After(now):
		return Silence{}, invalidSilence("endsAt %s is not in the future", s.EndsAt.UTC().Format(time.RFC3339))
	case !s.EndsAt.After(s.StartsAt):
		return Silence{}, invalidSilence("endsAt %s is not after startsAt %s",
			s.EndsAt.UTC().Format(time.RFC3339), s.StartsAt.UTC().Format(time.RFC3339))
	case s.StartsAt.Sub(now) > maxSilence:
		return Silence{}, invalidSilence("a silence starts at most %s ahead", config.Duration(maxSilence))
	case s.EndsAt.Sub(s.StartsAt) > maxSilence:
		return Silence{}, invalidSilence("a silence lasts at most %s; this one would last %s",
			config.Duration(maxSilence), config.Duration(s.EndsAt.Sub(s.StartsAt).Round(time.Second)))
	}
	s.ID = m.ids.next(now)
	s.CreatedAt = now
	s.ExpiredBy = ""
	err := m.store.Update(func(tx Tx) error {
		all, err := tx.Silences()
		if err != nil {
			return err
		}
		n := 0
		for _, o := range all {
			if now.Before(o.EndsAt) {
				n++
			}
		}
		if n >= maxSilences {
			return invalidSilence("%d silences are in force or pending, the most there may be; expire some first", n)
		}
		return tx.PutSilence(&s)
	})
	if errors.Is(err, ErrInvalidSilence) {
		return Silence{}, err
	}
	if err != nil {
		return Silence{}, fmt.Errorf("notifier: add silence: %w", err)
	}
	m.logger.Info("silence added", "silence", s.ID, "matchers", s.Matchers,
		"starts", s.StartsAt, "ends", s.EndsAt, "by", s.CreatedBy)
	return s, nil
}

// Silence returns one silence by ID, expired or not, or an error wrapping
// ErrNotFound.
func (m *Manager) Silence(id string) (Silence, error) {
	var s Silence
	err := m.store.View(func(tx Tx) error {
		var err error
		s, err = tx.Silence(id)
		return err
	})
	if err != nil {
		return Silence{}, fmt.Errorf("notifier: %w", err)
	}
	return s, nil
}

// Silences returns the silences, newest first: the active and pending ones,
// and the expired ones too when expired is true.
func (m *Manager) Silences(expired bool) ([]Silence, error) {
	now := m.clock.Now()
	var all []Silence
	err := m.store.View(func(tx Tx) error {
		var err error
		all, err = tx.Silences()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: list silences: %w", err)
	}
	out := []Silence{}
	for _, s := range all {
		if expired || s.EndsAt.After(now) {
			out = append(out, s)
		}
	}
	return out, nil
}

// ExpireSilence ends a silence now (EndsAt = now, ExpiredBy = by; a pending
// one also starts now). It returns an error wrapping ErrNotFound for an
// unknown id; an already expired silence is returned unchanged.
func (m *Manager) ExpireSilence(id, by string) (Silence, error) {
	now := m.clock.Now()
	var (
		s       Silence
		changed bool
	)
	err := m.store.Update(func(tx Tx) error {
		var err error
		if s, err = tx.Silence(id); err != nil {
			return err
		}
		if changed = s.EndsAt.After(now); !changed {
			return nil
		}
		s.StartsAt = minTime(s.StartsAt, now)
		s.EndsAt, s.ExpiredBy = now, by
		return tx.PutSilence(&s)
	})
	if err != nil {
		return Silence{}, fmt.Errorf("notifier: expire silence: %w", err)
	}
	if changed {
		m.logger.Info("silence expired", "silence", s.ID, "matchers", s.Matchers, "ends", s.EndsAt, "by", by)
	}
	return s, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// pruneSilences deletes the silences that ended more than silenceKeep
// before now and returns how many it deleted.
func (m *Manager) pruneSilences(now time.Time) (int, error) {
	cutoff := now.Add(-silenceKeep)
	var gone []Silence
	err := m.store.Update(func(tx Tx) error {
		gone = gone[:0]
		all, err := tx.Silences()
		if err != nil {
			return err
		}
		for _, s := range all {
			if !s.EndsAt.Before(cutoff) {
				continue
			}
			if err := tx.DeleteSilence(s.ID); err != nil {
				return err
			}
			gone = append(gone, s)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("notifier: prune silences: %w", err)
	}
	for _, s := range gone {
		m.matchers.forget(s.Matchers)
	}
	return len(gone), nil
}

// activeSilences counts the silences in force now, for the
// vigil_silences_active gauge; NaN when the store cannot be read.
func (m *Manager) activeSilences() float64 {
	now := m.clock.Now()
	n := 0
	err := m.store.View(func(tx Tx) error {
		all, err := tx.Silences()
		if err != nil {
			return err
		}
		for _, s := range all {
			if s.Active(now) {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return math.NaN()
	}
	return float64(n)
}
