package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
	"github.com/vigil-sh/vigil/notifier/slack"
	"github.com/vigil-sh/vigil/notifier/webhook"
)

// receivers builds the notifier's receivers from cfg.Receivers, plus the
// rollback webhook. The "log" receiver and `log:` receivers are the
// notifier's own.
func receivers(rb *rollback.Manager, store notifier.Store, logger *slog.Logger, reg prometheus.Registerer) func(*config.Config) (map[string]notifier.Receiver, error) {
	// Receivers are rebuilt on every reload; the webhook duration metric
	// they share is registered by the first and reused by the others.
	var webhookOpts []webhook.Option
	if reg != nil {
		webhookOpts = append(webhookOpts, webhook.WithRegisterer(reg))
	}
	return func(cfg *config.Config) (map[string]notifier.Receiver, error) {
		out := map[string]notifier.Receiver{notifier.RollbackReceiver: rb.Receiver()}
		for _, rc := range cfg.Receivers {
			var (
				r   notifier.Receiver
				err error
			)
			switch {
			case rc.Webhook != nil:
				r, err = webhook.New(rc.Name, rc.Webhook, webhookOpts...)
			case rc.Slack != nil:
				// Each Slack receiver keeps its messages' timestamps, so it can
				// update them, in its own store namespace.
				r, err = slack.New(rc.Name, rc.Slack, store.KV("slack/"+rc.Name), logger.With("receiver", rc.Name))
			default:
				continue // log receivers are the notifier's own
			}
			if err != nil {
				return nil, fmt.Errorf("receiver %q: %w", rc.Name, err)
			}
			out[rc.Name] = r
		}
		return out, nil
	}
}

// slackInteractions answers Slack's button presses with the current
// config's signing secret and user mapping; nil-safe before the first config.
type slackInteractions struct {
	incidents incidentActor
	// authorize says whether a vigil user may acknowledge or resolve an
	// incident, as the API would for that user's token
	// (web.Handler.AuthorizeIncidentAction); every action is refused while
	// it is nil.
	authorize func(user, id string, resolve bool) error
	logger    *slog.Logger
	handler   atomic.Pointer[http.Handler]
}

// incidentActor is what Slack's buttons do to incidents.
type incidentActor interface {
	Acknowledge(id, by, comment string) (notifier.Incident, error)
	Resolve(id, by, comment string) (notifier.Incident, error)
}

// ApplyConfig rebuilds the handler from the Slack receivers' signing secret
// and the users' slack_user.
func (s *slackInteractions) ApplyConfig(cfg *config.Config) error {
	secret := ""
	for _, rc := range cfg.Receivers {
		if rc.Slack != nil && rc.Slack.SigningSecret != "" {
			secret = rc.Slack.SigningSecret.Value()
			break
		}
	}
	users := map[string]string{}
	for _, u := range cfg.Users {
		if u.SlackUser != "" {
			users[u.SlackUser] = u.Name
		}
	}
	var h http.Handler = http.NotFoundHandler()
	if secret != "" {
		h = slack.NewInteractionHandler(secret, users, s.act, s.logger)
	}
	s.handler.Store(&h)
	return nil
}

// act takes a button's action as the vigil user mapped from the Slack user,
// once that user has the permission the API would ask of it.
func (s *slackInteractions) act(action, id, user string) error {
	if action != slack.Ack && action != slack.Resolve {
		return fmt.Errorf("unknown action %q", action)
	}
	if s.authorize == nil {
		return fmt.Errorf("%w: permissions are not known yet", slack.ErrNotAllowed)
	}
	if err := s.authorize(user, id, action == slack.Resolve); errors.Is(err, notifier.ErrNotFound) {
		// Deleted or pruned since its message was posted: gone, not refused.
		return fmt.Errorf("incident %q: %w", id, notifier.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("%w: %w", slack.ErrNotAllowed, err)
	}
	var err error
	switch action {
	case slack.Ack:
		_, err = s.incidents.Acknowledge(id, user, "from Slack")
	case slack.Resolve:
		_, err = s.incidents.Resolve(id, user, "from Slack")
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	return err
}

// ServeHTTP implements http.Handler.
func (s *slackInteractions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.handler.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}
