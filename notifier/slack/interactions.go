package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"
)

// maxInteractionBody bounds an interaction request; real ones are a few KiB.
const maxInteractionBody = 64 << 10

// replyTimeout bounds the ephemeral reply to Slack's response_url; Slack
// wants the interaction answered within three seconds.
const replyTimeout = 2 * time.Second

// ErrNotAllowed is what an act function returns (wrapped) when the vigil
// user may not take the action: the user is told so, nothing changes, and it
// is logged as a refusal rather than a failure.
var ErrNotAllowed = errors.New("not allowed")

// Actions passed to the act function of NewInteractionHandler.
const (
	Ack     = "ack"
	Resolve = "resolve"
)

type interactionHandler struct {
	secret string
	users  map[string]string
	act    func(action, incidentID, user string) error
	logger *slog.Logger
	client *http.Client
}

// NewInteractionHandler returns the handler of Slack's interactivity
// requests (POST /slack/interactions). It checks Slack's signature and
// timestamp with signingSecret, maps the clicking Slack user id to a vigil
// user through users, and calls act with "ack" or "resolve" and the
// incident id for the Acknowledge and Resolve buttons. Requests that fail
// the check get 401 and act is not called; unknown users and failed actions
// get an ephemeral reply in Slack and no action. act must check the user's
// permission itself and return an error wrapping ErrNotAllowed when the user
// may not act.
func NewInteractionHandler(signingSecret string, users map[string]string, act func(action, incidentID, user string) error, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &interactionHandler{
		secret: signingSecret,
		users:  users,
		act:    act,
		logger: logger.With("component", "slack_interactions"),
		client: &http.Client{Timeout: replyTimeout},
	}
}

func (h *interactionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read request", http.StatusBadRequest)
		return
	}
	// NewSecretsVerifier rejects timestamps more than five minutes off, so a
	// captured request cannot be replayed later.
	sv, err := slack.NewSecretsVerifier(r.Header, h.secret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		h.logger.Warn("rejected Slack interaction", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}

	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	if cb.Type != slack.InteractionTypeBlockActions {
		w.WriteHeader(http.StatusOK)
		return
	}

	for _, a := range cb.ActionCallback.BlockActions {
		var action string
		switch a.ActionID {
		case ActionAck:
			action = Ack
		case ActionResolve:
			action = Resolve
		default:
			continue
		}
		user, ok := h.users[cb.User.ID]
		if !ok || user == "" {
			h.logger.Warn("Slack user is not a vigil user", "slack_user", cb.User.ID, "slack_name", cb.User.Name, "action", action, "incident", a.Value)
			h.reply(w, cb.ResponseURL, fmt.Sprintf("Your Slack account (%s) is not linked to a vigil user, so vigil did not %s incident %s. Ask an admin to set slack_user for you.", cb.User.ID, action, a.Value))
			return
		}
		if err := h.act(action, a.Value, user); errors.Is(err, ErrNotAllowed) {
			h.logger.Warn("Slack action refused", "user", user, "slack_user", cb.User.ID, "action", action, "incident", a.Value, "err", err)
			h.reply(w, cb.ResponseURL, fmt.Sprintf("You are not allowed to %s incident %s (%v); nothing changed.", action, a.Value, err))
			return
		} else if err != nil {
			h.logger.Error("Slack action failed", "user", user, "action", action, "incident", a.Value, "err", err)
			h.reply(w, cb.ResponseURL, fmt.Sprintf("vigil could not %s incident %s: %v", action, a.Value, err))
			return
		}
		h.logger.Info("Slack action", "user", user, "action", action, "incident", a.Value)
	}
	w.WriteHeader(http.StatusOK)
}

// ephemeral is a message only the clicking user sees.
type ephemeral struct {
	ResponseType    string `json:"response_type"`
	ReplaceOriginal bool   `json:"replace_original"`
	Text            string `json:"text"`
}

// reply tells the clicking user what went wrong: in the response body (read
// by Slack for some interaction kinds) and through the payload's
// response_url (the way for block actions). The payload is signed, so its
// response_url is Slack's.
func (h *interactionHandler) reply(w http.ResponseWriter, responseURL, text string) {
	msg, err := json.Marshal(ephemeral{ResponseType: "ephemeral", Text: text})
	if err != nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	if responseURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
		defer cancel()
		if err := h.post(ctx, responseURL, msg); err != nil {
			h.logger.Warn("could not reply to Slack", "err", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(msg)
}

func (h *interactionHandler) post(ctx context.Context, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad response_url")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		// The response_url lets anyone post to the channel for a while: keep
		// it out of the log.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("%s response_url: %w", ue.Op, ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("response_url answered %s", resp.Status)
	}
	return nil
}
