// Package slack posts incidents to a Slack channel as one Block Kit message
// per incident, updates that message as the incident moves on, and handles
// the Acknowledge and Resolve buttons.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// Action ids of the buttons; the interaction handler maps them back.
const (
	ActionAck     = "vigil_ack"
	ActionResolve = "vigil_resolve"
)

// DefaultTimeout bounds one Slack API call.
const DefaultTimeout = 10 * time.Second

// postedMessage is where a message for an incident went, kept in the KV so
// later news updates it, across restarts too.
type postedMessage struct {
	// Channel is the channel id Slack answered with; chat.update needs it
	// rather than the configured name.
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Receiver posts and updates incident messages in one Slack channel.
type Receiver struct {
	name    string
	channel string
	kv      notifier.KV
	logger  *slog.Logger
	timeout time.Duration

	// API is the Slack Web API client; tests may replace it.
	API *slack.Client

	// locks serialise the find-post-store of one incident, so two messages
	// for it do not post twice.
	locks [32]sync.Mutex
}

type options struct {
	httpClient *http.Client
	timeout    time.Duration
}

// Option changes a Receiver.
type Option func(*options)

// WithHTTPClient sets the HTTP client the Slack client uses.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithTimeout bounds each Slack API call (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// New returns the Slack receiver called name for cfg. kv keeps the posted
// messages; it should be the receiver's own namespace of the store.
func New(name string, cfg *config.SlackConfig, kv notifier.KV, logger *slog.Logger, opts ...Option) (*Receiver, error) {
	if cfg == nil {
		return nil, fmt.Errorf("slack %q: no config", name)
	}
	if cfg.Token.Value() == "" {
		return nil, fmt.Errorf("slack %q: no token", name)
	}
	if cfg.Channel == "" {
		return nil, fmt.Errorf("slack %q: no channel", name)
	}
	if kv == nil {
		return nil, fmt.Errorf("slack %q: no store for message timestamps", name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{httpClient: &http.Client{}, timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	copts := []slack.Option{slack.OptionHTTPClient(o.httpClient)}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		copts = append(copts, slack.OptionAPIURL(u))
	}
	return &Receiver{
		name:    name,
		channel: cfg.Channel,
		kv:      kv,
		logger:  logger.With("component", "notifier", "receiver", name),
		timeout: o.timeout,
		API:     slack.New(cfg.Token.Value(), copts...),
	}, nil
}

// Name returns the receiver's name.
func (r *Receiver) Name() string { return r.name }

func (r *Receiver) key(incidentID string) string { return incidentID + "/" + r.channel }

func (r *Receiver) lock(incidentID string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(incidentID))
	return &r.locks[h.Sum32()%uint32(len(r.locks))]
}

// Notify implements notifier.Receiver. The first message for an incident in
// this channel is posted; every later one (escalation, repeat, ack,
// resolve) updates it, so the channel has one message per incident showing
// its current state.
func (r *Receiver) Notify(ctx context.Context, m *notifier.Message) (bool, error) {
	if m.Kind == notifier.KindRollback {
		return false, fmt.Errorf("slack %q: rollback messages go to the rollback webhook", r.name)
	}
	mu := r.lock(m.Incident.ID)
	mu.Lock()
	defer mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	blocks := Blocks(m)
	msgOpts := []slack.MsgOption{
		slack.MsgOptionText(fallbackText(m), false),
		slack.MsgOptionBlocks(blocks...),
	}

	key := r.key(m.Incident.ID)
	raw, ok, err := r.kv.Get(key)
	if err != nil {
		return true, fmt.Errorf("slack %q: read message of incident %s: %w", r.name, m.Incident.ID, err)
	}
	if ok {
		var pm postedMessage
		if err := json.Unmarshal(raw, &pm); err != nil {
			r.logger.Warn("dropping unreadable stored message; posting a new one", "incident", m.Incident.ID, "err", err)
		} else {
			_, _, _, err := r.API.UpdateMessageContext(ctx, pm.Channel, pm.TS, msgOpts...)
			if err == nil {
				return false, nil
			}
			if !messageGone(err) {
				return r.classify("chat.update", err)
			}
			r.logger.Info("message to update is gone; posting a new one", "incident", m.Incident.ID, "err", err)
		}
	}

	channel, ts, err := r.API.PostMessageContext(ctx, r.channel, msgOpts...)
	if err != nil {
		return r.classify("chat.postMessage", err)
	}
	val, err := json.Marshal(postedMessage{Channel: channel, TS: ts})
	if err != nil {
		return false, fmt.Errorf("slack %q: encode message reference: %w", r.name, err)
	}
	if err := r.kv.Put(key, val); err != nil {
		// The message is out; a retry would post it twice. Later news
		// posts a new message instead of updating this one.
		r.logger.Error("posted, but could not store the message reference", "incident", m.Incident.ID, "err", err)
	}
	return false, nil
}

// messageGone reports whether chat.update failed because the message no
// longer exists (deleted by someone), in which case a new one is posted.
func messageGone(err error) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && (se.Err == "message_not_found" || se.Err == "cant_update_message")
}

// transientSlackErrors are Slack API error codes worth retrying; every other
// code (invalid_auth, channel_not_found, not_in_channel, invalid_blocks, …)
// needs a person to fix something.
var transientSlackErrors = map[string]bool{
	"ratelimited":         true,
	"rate_limited":        true,
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
}

// classify turns a Slack client error into (retry, err).
func (r *Receiver) classify(method string, err error) (bool, error) {
	werr := fmt.Errorf("slack %q: %s: %w", r.name, method, err)
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		return true, &notifier.RetryAfter{After: rl.RetryAfter, Err: werr}
	case errors.As(err, &sc):
		return sc.Retryable(), werr
	case errors.As(err, &se):
		return transientSlackErrors[se.Err], werr
	}
	// Anything else is the transport (connection refused, reset, timeout,
	// a truncated answer): worth another try.
	return true, werr
}
