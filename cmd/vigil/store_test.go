package main

import (
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// TestOpenIncidentStoreDown: storage.incidents naming a PostgreSQL that is
// down stops vigil at start with an error that names the key and the
// server, never the password.
func TestOpenIncidentStoreDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	cfg := &config.Config{DataDir: t.TempDir()}
	cfg.Storage.Incidents = config.Secret(fmt.Sprintf("postgres://vigil:s3cret@127.0.0.1:%d/vigil?sslmode=disable&connect_timeout=2", port))
	store, err := openIncidentStore(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.Nil(t, store)
	require.ErrorContains(t, err, fmt.Sprintf("opening the incident store of storage.incidents: pgstore: connect to postgres://127.0.0.1:%d/vigil (schema vigil): ", port))
	require.NotContains(t, err.Error(), "s3cret")
}
