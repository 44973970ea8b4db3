package notifier

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// fullStore is a BoltStore whose write transactions fail while full is set,
// as bbolt's do when the data disk is full.
type fullStore struct {
	*BoltStore
	full    atomic.Bool
	refused atomic.Int64
	// onRefuse, when set, runs once as a write is refused, before the
	// refusal is returned.
	onRefuse atomic.Pointer[func()]
}

func (s *fullStore) Update(fn func(Tx) error) error {
	if s.full.Load() {
		s.refused.Add(1)
		if f := s.onRefuse.Swap(nil); f != nil {
			(*f)()
		}
		return fmt.Errorf("write notifier.db: %w", syscall.ENOSPC)
	}
	return s.BoltStore.Update(fn)
}

func openFullStore(t *testing.T) *fullStore {
	t.Helper()
	b, err := OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return &fullStore{BoltStore: b}
}

// An escalation deadline that passes while the disk is full is taken once
// there is space again, without a restart.
func TestEscalationStepRetriedAfterStoreFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openFullStore(t)
		rec := &recorder{}
		h := start(t, "", testConfig(config.EnvProduction), rec, nil, func(o *Options) { o.Store = store })
		t0 := time.Now()
		inc := h.fire(alert("critical", t0)) // Level 2 due after 1h

		store.full.Store(true)
		time.Sleep(time.Hour + 5*time.Minute)
		synctest.Wait()
		require.Positive(t, store.refused.Load(), "the deadline tried to write")
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, 0, got.Level)

		store.full.Store(false)
		freed := time.Now()
		time.Sleep(time.Minute)
		synctest.Wait()
		got, err = h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, 1, got.Level, "Level 2 was told once the store took writes again")
		require.True(t, got.NextDeadline.After(freed), "the next deadline is counted from the step: %s", got.NextDeadline)
		var r2 []call
		for _, c := range rec.delivered() {
			if c.receiver == "r2" {
				r2 = append(r2, c)
			}
		}
		require.Len(t, r2, 1)
		require.Equal(t, KindEscalation, r2[0].kind)
		// Retries back off to at most 30s: Level 2 is told within 30s of
		// the space coming back.
		require.LessOrEqual(t, r2[0].at.Sub(freed), 30*time.Second)
	})
}

// hookRollbacker runs hook inside Decide, then decides as fakeRollbacker.
type hookRollbacker struct {
	fakeRollbacker
	hook func()
}

func (h *hookRollbacker) Decide(ctx context.Context, inc *Incident, env string) (*Message, *RollbackRecord, error) {
	if h.hook != nil {
		h.hook()
	}
	return h.fakeRollbacker.Decide(ctx, inc, env)
}

// A rollback decision whose record cannot be written is decided and
// written again once the store takes writes, without a restart.
func TestRollbackDecisionRetriedAfterStoreFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openFullStore(t)
		rec := &recorder{}
		rb := &hookRollbacker{}
		// The disk fills between the incident opening and its decision.
		rb.hook = func() { store.full.Store(true) }
		h := start(t, "", testConfig(config.EnvProduction), rec, rb, func(o *Options) { o.Store = store })
		inc := h.fire(alert("critical", time.Now()))
		rb.hook = nil
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Nil(t, got.Rollback)

		time.Sleep(10 * time.Second)
		synctest.Wait()
		store.full.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()

		got, err = h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.NotNil(t, got.Rollback, "the decision was recorded once the store took writes")
		require.Equal(t, OutcomeDelivered, got.Rollback.Outcome)
		n := 0
		for _, c := range rec.delivered() {
			if c.receiver == RollbackReceiver {
				n++
			}
		}
		require.Equal(t, 1, n, "one rollback call")
		var pending []string
		require.NoError(t, store.View(func(tx Tx) error {
			pending, err = tx.RollbackPending()
			return err
		}))
		require.Empty(t, pending)

		// Nothing is left to retry: more time decides nothing again.
		calls := rb.calls
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		require.Equal(t, calls, rb.calls)
	})
}

// An escalation step that failed and is retried after its incident was
// resolved (by a write that succeeded meanwhile) has nothing left to do:
// its retry count and spent timer are forgotten, not kept for ever.
func TestEscalationRetryForgottenAfterResolve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openFullStore(t)
		h := start(t, "", testConfig(config.EnvProduction), &recorder{}, nil, func(o *Options) { o.Store = store })
		// Off the hourly prune, so that the deadline's is the write that
		// fails first.
		time.Sleep(time.Minute)
		inc := h.fire(alert("critical", time.Now())) // Level 2 due after 1h
		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		entries := func() (int, int) {
			h.m.timerMtx.Lock()
			defer h.m.timerMtx.Unlock()
			return len(h.m.retries), len(h.m.timers)
		}

		// The deadline's write fails; as it fails, the incident is
		// resolved by a write that succeeds.
		resolve := func() {
			store.full.Store(false)
			_, err := h.m.Resolve(inc.ID, "alice", "")
			require.NoError(t, err)
			store.full.Store(true)
		}
		store.onRefuse.Store(&resolve)
		store.full.Store(true)
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		require.Positive(t, store.refused.Load(), "the deadline's write failed")
		require.Nil(t, store.onRefuse.Load(), "the incident was resolved as the deadline's write failed")

		store.full.Store(false)
		time.Sleep(time.Minute) // the retry runs and finds nothing to do
		synctest.Wait()
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, got.State)
		retries, timers := entries()
		require.Zero(t, retries, "retry counts left")
		require.Zero(t, timers, "timers left")
	})
}
