package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckConfigSeedSecurity: the seed's firewall, network,
// security.groups and encryption blocks pass `vigil check config`, and what
// vigil records without enforcing is stated exactly once.
func TestCheckConfigSeedSecurity(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := execute([]string{"check", "config", "../../config/testdata/seed_security.good.yml"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	out := stdout.String()
	require.Contains(t, out, "SUCCESS")
	require.Equal(t, 1, strings.Count(out, "recorded, not enforced: "), out)
	require.Contains(t, out, "  warning: recorded, not enforced: firewall (")
	require.Contains(t, out, "encryption.at_rest algorithm AES-256, key_rotation 30d, key_storage KMS")
	require.Contains(t, out, "encryption.in_transit.certificate_storage ACM")
	require.Equal(t, 1, strings.Count(out, "no rule opens vigil's port 9090"), out)
}
