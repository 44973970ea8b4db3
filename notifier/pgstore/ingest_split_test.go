package pgstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/pgstore"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// countingStore counts the PutIncident calls of the write transactions
// that committed (the last run of each Update).
type countingStore struct {
	*pgstore.Store
	puts atomic.Int64
}

func (s *countingStore) Update(fn func(notifier.Tx) error) error {
	var n int64
	err := s.Store.Update(func(tx notifier.Tx) error {
		n = 0
		return fn(&countingTx{Tx: tx, n: &n})
	})
	if err == nil {
		s.puts.Add(n)
	}
	return err
}

type countingTx struct {
	notifier.Tx
	n *int64
}

func (tx *countingTx) PutIncident(inc *notifier.Incident) error {
	*tx.n++
	return tx.Tx.PutIncident(inc)
}

// TestIngestLateNotifyWritesNothing: of two gateways on one store, the
// second to notify a post the first has recorded writes no incident,
// although it computed the alert's endsAt (posted without one) by its own
// clock, later.
func TestIngestLateNotifyWritesNothing(t *testing.T) {
	stores := storetest.SharedPostgres(t, 2)
	sa, sb := &countingStore{Store: stores[0]}, &countingStore{Store: stores[1]}
	a, b := startGateway(t, sa), startGateway(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Each gateway notifies every record again at its start: b's must be
	// over before a's post, or b may be the first to notify it. An empty
	// post reads the records as the start does.
	require.NoError(t, b.IngestAlerts(ctx, nil))
	alert := notifier.PostedAlert{
		Labels:   map[string]string{"alertname": "Late", "severity": "critical", "instance": "pod-1"},
		StartsAt: time.Now().Add(-time.Minute),
	}
	require.NoError(t, a.IngestAlerts(ctx, []notifier.PostedAlert{alert}))
	require.NoError(t, a.FlushIngest(ctx))
	require.Positive(t, sa.puts.Load(), "the first gateway opened the incident")
	time.Sleep(5 * time.Millisecond) // b's now + resolve_timeout is later

	require.NoError(t, b.IngestAlerts(ctx, []notifier.PostedAlert{alert}))
	require.NoError(t, b.FlushIngest(ctx))
	require.Zero(t, sb.puts.Load(), "the late notify of a recorded alert writes no incident")
	list, err := b.Incidents("")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, notifier.StateTriggered, list[0].State)
	require.Len(t, notifier.MemberList(&list[0]), 1)

	// A real change still writes: the alert resolves.
	alert.EndsAt = time.Now()
	require.NoError(t, b.IngestAlerts(ctx, []notifier.PostedAlert{alert}))
	require.NoError(t, b.FlushIngest(ctx))
	require.Positive(t, sb.puts.Load())
	list, err = a.Incidents("")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, notifier.StateResolved, list[0].State)
}
