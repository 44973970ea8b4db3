package rollback

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

func TestFireNow(t *testing.T) {
	ctx := context.Background()

	t.Run("retries with the same id, then delivered", func(t *testing.T) {
		ctl := newController(t, []byte(testSecret), http.StatusBadGateway)
		m := newManager(t, notifier.NewMemKV(), newClock(t0), testConfig(ctl.srv.URL))
		_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
		require.NoError(t, err)
		rec, err := m.FireNow(ctx, "error spike", "alice")
		require.NoError(t, err)
		require.Equal(t, notifier.OutcomeDelivered, rec.Outcome)
		require.Equal(t, 2, rec.Attempts)
		calls := ctl.Calls()
		require.Len(t, calls, 2)
		require.True(t, calls[0].verified && calls[1].verified)
		require.Equal(t, calls[0].header.Get("webhook-id"), calls[1].header.Get("webhook-id"))

		kept, err := m.ManualRollbacks(10)
		require.NoError(t, err)
		require.Len(t, kept, 1, "the manual rollback is kept for the operator page")
		require.Equal(t, "alice", kept[0].By)
		require.Equal(t, "error spike", kept[0].Reason)
		require.Equal(t, notifier.OutcomeDelivered, kept[0].Outcome)
		require.Equal(t, "2.0.0", kept[0].BadVersion)
	})

	t.Run("a refusal is not retried", func(t *testing.T) {
		ctl := newController(t, []byte(testSecret), http.StatusBadRequest)
		m := newManager(t, notifier.NewMemKV(), newClock(t0), testConfig(ctl.srv.URL))
		_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
		require.NoError(t, err)
		rec, err := m.FireNow(ctx, "error spike", "alice")
		require.Error(t, err)
		require.Equal(t, notifier.OutcomeFailed, rec.Outcome)
		require.Equal(t, http.StatusBadRequest, rec.StatusCode)
		require.Len(t, ctl.Calls(), 1)
		kept, err := m.ManualRollbacks(0)
		require.NoError(t, err)
		require.Len(t, kept, 1, "a failed manual rollback is kept too")
		require.Equal(t, notifier.OutcomeFailed, kept[0].Outcome)
		require.Equal(t, http.StatusBadRequest, kept[0].StatusCode)
	})

	t.Run("nothing deployed", func(t *testing.T) {
		ctl := newController(t, []byte(testSecret))
		m := newManager(t, notifier.NewMemKV(), newClock(t0), testConfig(ctl.srv.URL))
		_, err := m.FireNow(ctx, "x", "alice")
		require.ErrorIs(t, err, ErrNoDeploy)
		require.Empty(t, ctl.Calls())
		kept, err := m.ManualRollbacks(0)
		require.NoError(t, err)
		require.Empty(t, kept, "a refused rollback was never made")
	})
}
