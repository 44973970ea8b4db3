package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStorageIncidents: storage.incidents takes ${VAR} and a file, and
// storage.lease a duration; the DSN is a secret.
func TestStorageIncidents(t *testing.T) {
	t.Setenv("VIGIL_TEST_PG", "postgres://vigil:pw@db:5432/vigil")
	cfg, err := Parse([]byte("storage:\n  incidents: ${VIGIL_TEST_PG}\n  lease: 5s\n"), "vigil.yaml")
	require.NoError(t, err)
	require.Equal(t, Secret("postgres://vigil:pw@db:5432/vigil"), cfg.Storage.Incidents)
	require.Equal(t, Duration(5*time.Second), cfg.Storage.Lease)
	require.NotContains(t, cfg.Storage.Incidents.String(), "pw")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg"), []byte("postgresql://vigil@db/vigil\n"), 0o600))
	path := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(path, []byte("storage:\n  incidents_file: pg\n"), 0o600))
	cfg, err = Load(path)
	require.NoError(t, err)
	require.Equal(t, Secret("postgresql://vigil@db/vigil"), cfg.Storage.Incidents)
	require.Zero(t, cfg.Storage.Lease, "0: the notifier's default")
}
