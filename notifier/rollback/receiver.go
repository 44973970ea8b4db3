package rollback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/webhook"
)

// HeaderIdempotencyKey carries the delivery id as well as webhook-id, for
// deploy controllers that deduplicate on the common Idempotency-Key header.
const HeaderIdempotencyKey = "Idempotency-Key"

// maxErrorBody is how much of a failed response's body goes into the error.
const maxErrorBody = 256

// StatusError is a webhook response that was not 2xx.
type StatusError struct {
	Code int
	// URL is the webhook URL without user info, query or fragment.
	URL string
	// Body is the start of the response body.
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("rollback webhook %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// StatusCode returns the HTTP status code, for the outcome record.
func (e *StatusError) StatusCode() int { return e.Code }

var _ notifier.StatusCoder = (*StatusError)(nil)

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
	redacted := redactURL(w.URL)
	if timeout := time.Duration(w.Timeout); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(msg.Payload))
	if err != nil {
		return false, fmt.Errorf("rollback webhook %s: building request: %w", redacted, stripURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil-rollback")
	req.Header.Set(HeaderIdempotencyKey, msg.DeliveryID)
	if err := webhook.SetHeaders(req.Header, w.Secret.Value(), msg.DeliveryID, r.m.now(), msg.Payload); err != nil {
		return false, fmt.Errorf("rollback webhook: signing: %w", err)
	}
	resp, err := r.m.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("rollback webhook %s: %w", redacted, stripURL(err))
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))

	if resp.StatusCode/100 == 2 {
		r.m.logger.Info("rollback webhook delivered", "delivery_id", msg.DeliveryID, "status", resp.StatusCode)
		return false, nil
	}
	serr := &StatusError{Code: resp.StatusCode, URL: redacted, Body: strings.TrimSpace(string(head))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return true, &notifier.RetryAfter{After: retryAfter(resp.Header.Get("Retry-After"), r.m.now()), Err: serr}
	case resp.StatusCode >= 500:
		return true, serr
	}
	return false, serr
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(n)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// stripURL returns the cause of a *url.Error, whose message carries the full
// URL (user info and query may hold credentials).
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
