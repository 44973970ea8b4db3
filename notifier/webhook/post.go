package webhook

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
)

// maxErrorBody is how much of a failed response's body goes into the error.
const maxErrorBody = 256

// StatusError is a delivery the far end answered with a status other than
// 2xx.
type StatusError struct {
	// Receiver names the destination: a receiver's name, or "rollback".
	Receiver string
	Code     int
	// Body is the start of the response body, for the operator.
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("webhook %q: unexpected status %d %s", e.Receiver, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// StatusCode returns the HTTP status code of the response.
func (e *StatusError) StatusCode() int { return e.Code }

var _ notifier.StatusCoder = (*StatusError)(nil)

// Request is one signed POST of a JSON body.
type Request struct {
	// Receiver names the destination in errors.
	Receiver string
	URL      string
	Secret   string
	// ID is the webhook-id: the delivery id, the same on every retry.
	ID string
	// Now is the webhook-timestamp: the time of this attempt.
	Now    time.Time
	Body   []byte
	Header http.Header // extra headers, such as Idempotency-Key
}

// Post sends r with the Standard Webhooks headers and says, as a
// notifier.Receiver must, whether a failure is worth retrying: 2xx is
// delivered; 5xx and network errors are retried; 429 is retried after its
// Retry-After (*notifier.RetryAfter when the header is readable); any other
// status is not. HTTP failures are *StatusError. Errors never carry the URL,
// whose path or query may hold a token, nor the secret.
func Post(ctx context.Context, client *http.Client, r Request) (status int, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return 0, false, fmt.Errorf("webhook %q: build request: %w", r.Receiver, stripURL(err))
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "vigil")
	}
	if err := SetHeaders(req.Header, r.Secret, r.ID, r.Now, r.Body); err != nil {
		return 0, false, fmt.Errorf("webhook %q: sign: %w", r.Receiver, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, true, fmt.Errorf("webhook %q: send: %w", r.Receiver, stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, false, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	serr := &StatusError{Receiver: r.Receiver, Code: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), r.Now); ok {
			return resp.StatusCode, true, &notifier.RetryAfter{After: after, Err: serr}
		}
		return resp.StatusCode, true, serr
	case resp.StatusCode >= 500:
		return resp.StatusCode, true, serr
	default:
		return resp.StatusCode, false, serr
	}
}

// NoRedirects is an http.Client CheckRedirect that refuses to follow: a
// redirected POST loses its body and its signature.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// stripURL drops the URL from a *url.Error: webhook URLs often carry a token
// in their path or query.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
