package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/pgstore"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// defaultTestDSN is the machine's PostgreSQL, trust authentication, as the
// PostgreSQL collector's tests use it.
const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDSN returns the DSN of the real server (VIGIL_TEST_PG_DSN, as the
// collector's tests, or VIGIL_TEST_POSTGRES_DSN) and fails, saying how to
// start one, when it does not answer.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("VIGIL_TEST_PG_DSN")
	if dsn == "" {
		dsn = os.Getenv("VIGIL_TEST_POSTGRES_DSN")
	}
	if dsn == "" {
		dsn = defaultTestDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		t.Fatalf("no PostgreSQL answers at VIGIL_TEST_PG_DSN: %v\n"+
			"start one with: eval \"$(scripts/pg-ensure.sh)\" (from the repository root)", err)
	}
	return dsn
}

// freshSchema returns a schema name no other test uses, dropped when the
// test ends.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "vigil_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

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
