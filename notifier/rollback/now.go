package rollback

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-sh/vigil/notifier"
)

// nowAttempts bounds the tries of a rollback fired by hand; the operator
// waits for the answer, so it is a few seconds, not the queue's backoff.
const nowAttempts = 3

// FireNow is Manual followed by the call itself, for POST /api/v1/rollback:
// the operator gets the outcome in the answer. It tries nowAttempts times,
// a second apart, with the same webhook-id; a dry run calls nothing. The
// record says what happened either way.
func (m *Manager) FireNow(ctx context.Context, reason, by string) (*notifier.RollbackRecord, error) {
	msg, rec, err := m.Manual(ctx, reason, by)
	if err != nil || msg == nil {
		return rec, err
	}
	recv := m.Receiver()
	for rec.Attempts = 1; ; rec.Attempts++ {
		retry, err := recv.Notify(ctx, msg)
		if err == nil {
			rec.Outcome, rec.StatusCode = notifier.OutcomeDelivered, 0
			return rec, nil
		}
		var sc notifier.StatusCoder
		if errors.As(err, &sc) {
			rec.StatusCode = sc.StatusCode()
		}
		if !retry || rec.Attempts >= nowAttempts {
			rec.Outcome = notifier.OutcomeFailed
			return rec, err
		}
		select {
		case <-ctx.Done():
			rec.Outcome = notifier.OutcomeFailed
			return rec, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
