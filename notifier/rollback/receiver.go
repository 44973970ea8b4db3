package rollback

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/webhook"
)

// HeaderIdempotencyKey carries the delivery id as well as webhook-id, for
// deploy controllers that deduplicate on the common Idempotency-Key header.
const HeaderIdempotencyKey = "Idempotency-Key"

// maxErrorBody is how much of a failed response's body goes into the error.
const maxErrorBody = 256

// StatusError is a webhook response that was not 2xx; it is the webhook
// package's, whose Post both receivers share.
type StatusError = webhook.StatusError

// Receiver returns the notifier.Receiver that delivers KindRollback messages:
// it POSTs Message.Payload to rollback.webhook.url, signed with the Standard
// Webhooks headers. webhook-id and Idempotency-Key are the message's
// DeliveryID, the same on every retry; the timestamp and signature are made
// afresh for each attempt. It reads the config at each call, so reloads
// apply to pending deliveries.
func (m *Manager) Receiver() notifier.Receiver { return receiver{m} }

type receiver struct{ m *Manager }

// Notify implements notifier.Receiver: 2xx is delivered; 5xx and network
// errors are retried; 429 is retried after its Retry-After
// (*notifier.RetryAfter, with After 0 when the header is missing or
// unreadable); any other status is not retried. HTTP errors are
// *StatusError.
func (r receiver) Notify(ctx context.Context, msg *notifier.Message) (bool, error) {
	if msg.Kind != notifier.KindRollback {
		return false, fmt.Errorf("rollback receiver: message %s is of kind %q, not %q", msg.DeliveryID, msg.Kind, notifier.KindRollback)
	}
	if len(msg.Payload) == 0 {
		return false, fmt.Errorf("rollback receiver: message %s has no payload", msg.DeliveryID)
	}
	s := r.m.settings()
	if s.webhook == nil {
		return false, fmt.Errorf("rollback receiver: %w", ErrNotConfigured)
	}
	w := s.webhook
	if timeout := time.Duration(w.Timeout); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	status, retry, err := webhook.Post(ctx, r.m.client, webhook.Request{
		Receiver: "rollback",
		URL:      w.URL,
		Secret:   w.Secret.Value(),
		ID:       msg.DeliveryID,
		Now:      r.m.now(),
		Body:     msg.Payload,
		Header: http.Header{
			HeaderIdempotencyKey: {msg.DeliveryID},
			"User-Agent":         {"vigil-rollback"},
		},
	})
	if err != nil {
		return retry, fmt.Errorf("rollback webhook %s: %w", redactURL(w.URL), err)
	}
	r.m.logger.Info("rollback webhook delivered", "delivery_id", msg.DeliveryID, "status", status)
	return false, nil
}
