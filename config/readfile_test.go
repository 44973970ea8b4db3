//go:build unix

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadWithin loads file and fails the test, rather than hang, when loading
// takes longer than a few seconds (a FIFO read blocks for ever).
func loadWithin(t *testing.T, file string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Load(file)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("loading %s hangs", file)
		return nil
	}
}

// TestSecretFileBounds: a secret file must be a regular file of at most
// MaxSecretFileSize bytes; anything else (a device, a FIFO, a directory, a
// huge file) is refused at once with the file, line, key and path, instead
// of being read whole or for ever (issue 13 item 5).
func TestSecretFileBounds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxSecretFileSize+1), 0o600))
	justRight := filepath.Join(dir, "just-right")
	require.NoError(t, os.WriteFile(justRight, []byte(strings.Repeat("s", MaxSecretFileSize-1)+"\n"), 0o600))

	keys := []struct {
		key, yaml, want string
	}{
		{"dsn_file", "collectors:\n  database:\n    dsn_file: %s\n", `:3: collectors.database.dsn_file: cannot read the secret: `},
		{"token_file", "receivers:\n  - name: chat\n    slack:\n      channel: \"#ops\"\n      token_file: %s\n",
			`:5: receivers[0] "chat": slack.token_file: cannot read the secret: `},
		{"secret_file", "rollback:\n  webhook:\n    url: https://deployer.example/rollback\n    secret_file: %s\n",
			`:4: rollback.webhook.secret_file: cannot read the secret: `},
	}
	files := []struct {
		name, path, want string
	}{
		{"device", "/dev/zero", "/dev/zero is not a regular file (it is a character device)"},
		{"fifo", fifo, fifo + " is not a regular file (it is a named pipe)"},
		{"directory", dir, dir + " is not a regular file (it is a directory)"},
		{"too large", big, big + ": file too large: more than 64 KiB"},
	}
	for _, k := range keys {
		for _, f := range files {
			t.Run(k.key+"/"+f.name, func(t *testing.T) {
				cfgFile := filepath.Join(t.TempDir(), "vigil.yml")
				require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil, k.yaml, f.path), 0o600))
				err := loadWithin(t, cfgFile)
				require.Error(t, err)
				require.Contains(t, err.Error(), cfgFile+k.want+f.want)
			})
		}
		t.Run(k.key+"/64 KiB", func(t *testing.T) {
			cfgFile := filepath.Join(t.TempDir(), "vigil.yml")
			require.NoError(t, os.WriteFile(cfgFile, fmt.Appendf(nil, k.yaml, justRight), 0o600))
			require.NoError(t, loadWithin(t, cfgFile))
		})
	}
}

// TestConfigFileBounds: the configuration file itself, read the same way at
// start, on reload and by `vigil check config`, is bounded too.
func TestConfigFileBounds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big.yml")
	require.NoError(t, os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxConfigFileSize)+"\n"), 0o600))
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "read config: /dev/zero is not a regular file (it is a character device)"},
		{fifo, "read config: " + fifo + " is not a regular file (it is a named pipe)"},
		{big, "read config: " + big + ": file too large: more than 4 MiB"},
	} {
		err := loadWithin(t, tc.path)
		require.EqualError(t, err, tc.want)
	}
}
