package rollback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigil-sh/vigil/notifier"
)

// nowAttempts bounds the tries of a rollback fired by hand; the operator
// waits for the answer, so it is a few seconds, not the queue's backoff.
const nowAttempts = 3

// FireNow is Manual followed by the call itself, for POST /api/v1/rollback:
// the operator gets the outcome in the answer. It tries nowAttempts times,
// a second apart, with the same webhook-id; a dry run calls nothing. The
// record says what happened either way, and is kept for ManualRollbacks.
func (m *Manager) FireNow(ctx context.Context, reason, by string) (*notifier.RollbackRecord, error) {
	msg, rec, err := m.Manual(ctx, reason, by)
	if err != nil || rec == nil {
		return rec, err
	}
	if msg != nil {
		err = m.call(ctx, msg, rec)
	}
	if serr := m.recordManual(rec, reason, by); serr != nil {
		m.logger.Error("Manual rollback not kept in the history", "err", serr)
	}
	return rec, err
}

// call sends msg to the deploy controller up to nowAttempts times and
// writes the outcome into rec.
func (m *Manager) call(ctx context.Context, msg *notifier.Message, rec *notifier.RollbackRecord) error {
	recv := m.Receiver()
	for rec.Attempts = 1; ; rec.Attempts++ {
		retry, err := recv.Notify(ctx, msg)
		if err == nil {
			rec.Outcome, rec.StatusCode = notifier.OutcomeDelivered, 0
			return nil
		}
		var sc notifier.StatusCoder
		if errors.As(err, &sc) {
			rec.StatusCode = sc.StatusCode()
		}
		if !retry || rec.Attempts >= nowAttempts {
			rec.Outcome = notifier.OutcomeFailed
			return err
		}
		select {
		case <-ctx.Done():
			rec.Outcome = notifier.OutcomeFailed
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// ManualRollback is a rollback fired by hand and what came of it.
type ManualRollback struct {
	notifier.RollbackRecord
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// recordManual keeps a manual rollback, the newest m.keep of them.
func (m *Manager) recordManual(rec *notifier.RollbackRecord, reason, by string) error {
	b, err := json.Marshal(ManualRollback{RollbackRecord: *rec, Reason: reason, By: by})
	if err != nil {
		return err
	}
	m.mtx.Lock()
	defer m.mtx.Unlock()
	// The delivery id too: two gateways may keep one each in the same
	// nanosecond.
	key := fmt.Sprintf("%s%020d/%s", keyManual, rec.At.UnixNano(), rec.DeliveryID)
	if err := m.kv.Put(key, b); err != nil {
		return fmt.Errorf("storing: %w", err)
	}
	all, err := m.kv.List(keyManual)
	if err != nil {
		return fmt.Errorf("listing: %w", err)
	}
	keys := slices.Sorted(maps.Keys(all))
	for len(keys) > m.keep {
		if err := m.kv.Delete(keys[0]); err != nil {
			return fmt.Errorf("trimming: %w", err)
		}
		keys = keys[1:]
	}
	return nil
}

// ManualRollbacks returns up to limit rollbacks fired by hand, newest
// first; all kept ones when limit is not positive.
func (m *Manager) ManualRollbacks(limit int) ([]ManualRollback, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	out, err := newest[ManualRollback](m.kv, keyManual, limit)
	if err != nil {
		return nil, fmt.Errorf("manual rollbacks: %w", err)
	}
	return out, nil
}

// newest decodes up to limit values under prefix, newest (greatest key)
// first; all when limit is not positive.
func newest[T any](kv notifier.KV, prefix string, limit int) ([]T, error) {
	all, err := kv.List(prefix)
	if err != nil {
		return nil, fmt.Errorf("listing: %w", err)
	}
	keys := slices.Sorted(maps.Keys(all))
	slices.Reverse(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		var v T
		if err := json.Unmarshal(all[k], &v); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", k, err)
		}
		out = append(out, v)
	}
	return out, nil
}
