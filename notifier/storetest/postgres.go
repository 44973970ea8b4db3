package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier/pgstore"
)

// DefaultPostgresDSN is the machine's PostgreSQL, trust authentication, as
// pgstore's own tests use it.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresDSN returns the DSN of the test server (VIGIL_TEST_PG_DSN, else
// VIGIL_TEST_POSTGRES_DSN, else DefaultPostgresDSN) and fails the test,
// saying how to start one, when it does not answer.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("VIGIL_TEST_PG_DSN")
	if dsn == "" {
		dsn = os.Getenv("VIGIL_TEST_POSTGRES_DSN")
	}
	if dsn == "" {
		dsn = DefaultPostgresDSN
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

// SharedPostgres opens n stores on one throwaway schema of the test
// server, as n gateways of an HA pair share one: each has its own
// connection pool. The schema is dropped when the test ends.
func SharedPostgres(t testing.TB, n int) []*pgstore.Store {
	t.Helper()
	dsn := PostgresDSN(t)
	schema := FreshSchema(t, dsn)
	out := make([]*pgstore.Store, n)
	for i := range out {
		s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema}, nil, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		out[i] = s
	}
	return out
}

// FreshSchema returns a schema name no other test uses on the server at
// dsn; the schema is dropped when the test ends.
func FreshSchema(t testing.TB, dsn string) string {
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
