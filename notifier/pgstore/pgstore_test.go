package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/pgstore"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// testDSN returns the DSN of the real server; see storetest.PostgresDSN.
func testDSN(t testing.TB) string { return storetest.PostgresDSN(t) }

// freshSchema returns a schema name no other test uses, dropped when the
// test ends.
func freshSchema(t testing.TB, dsn string) string { return storetest.FreshSchema(t, dsn) }

func openStore(t testing.TB, dsn, schema string, reg prometheus.Registerer) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema}, nil, reg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	dsn := testDSN(t)
	storetest.Run(t, func(t *testing.T) notifier.Store {
		return openStore(t, dsn, freshSchema(t, dsn), nil)
	})
}

// TestPollReadsLittle checks what the notifier's poll of a shared store
// reads instead of whole incidents and deliveries: the deadlines of the
// open incidents only, and the deliveries' IDs.
func TestPollReadsLittle(t *testing.T) {
	dsn := testDSN(t)
	s := openStore(t, dsn, freshSchema(t, dsn), nil)
	at := time.Date(2026, 3, 1, 12, 15, 0, 123456789, time.UTC)
	open := notifier.Incident{ID: "b", Fingerprint: "fp1", State: notifier.StateTriggered, NextDeadline: at}
	acked := notifier.Incident{ID: "c", Fingerprint: "fp2", State: notifier.StateAcknowledged}
	done := notifier.Incident{ID: "a", Fingerprint: "fp3", State: notifier.StateResolved, NextDeadline: at}
	require.NoError(t, s.Update(func(tx notifier.Tx) error {
		for _, inc := range []*notifier.Incident{&open, &acked, &done} {
			if err := tx.PutIncident(inc); err != nil {
				return err
			}
		}
		for _, id := range []string{"d2", "d1"} {
			if err := tx.PutDelivery(&notifier.Delivery{ID: id, Message: []byte("{}")}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.View(func(tx notifier.Tx) error {
		l := tx.(interface {
			OpenDeadlines() (map[string]time.Time, error)
			DeliveryIDs() ([]string, error)
		})
		got, err := l.OpenDeadlines()
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.True(t, got["b"].Equal(at), "%v", got)
		ids, err := l.DeliveryIDs()
		require.NoError(t, err)
		require.Equal(t, []string{"d1", "d2"}, ids)
		return nil
	}))
}
