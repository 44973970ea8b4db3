package pgstore_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier/pgstore"
)

// TestOpenErrors: a DSN that does not parse, a schema name that is not
// allowed and a server that is down fail Open at start with an error that
// says which, and never the DSN's password.
func TestOpenErrors(t *testing.T) {
	// A port nothing listens on: taken, then released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	for _, tc := range []struct {
		name    string
		dsn     string
		schema  string
		wantErr string
	}{
		{
			name:    "DSN does not parse",
			dsn:     "postgres://vigil:s3cret@127.0.0.1:5432/test?sslmode=sometimes",
			wantErr: "pgstore: cannot parse the DSN",
		},
		{
			name:    "schema name",
			dsn:     "postgres://vigil:s3cret@127.0.0.1:5432/test?sslmode=disable",
			schema:  "Vigil; DROP",
			wantErr: `pgstore: schema "Vigil; DROP": lower-case letters, digits and _ only`,
		},
		{
			name:    "server down",
			dsn:     fmt.Sprintf("postgres://vigil:s3cret@127.0.0.1:%d/test?sslmode=disable&connect_timeout=2", port),
			wantErr: fmt.Sprintf("pgstore: connect to postgres://127.0.0.1:%d/test (schema vigil): ", port),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := pgstore.Open(ctx, tc.dsn, pgstore.Options{Schema: tc.schema}, nil, nil)
			require.Nil(t, s)
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}
