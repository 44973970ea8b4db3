package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/internal/testutil"
)

// TestTLSKeepsCollecting: with TLS on the listener, vigil still stores its
// own metrics and its collectors' (it scrapes them over a loopback-only
// plain listener), so the host rules work and the certificate's expiry can
// be alerted on; the listener itself speaks only TLS 1.3.
func TestTLSKeepsCollecting(t *testing.T) {
	dir := t.TempDir()
	pair := testutil.NewCert(t, "vigil e2e")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair.Write(t, certFile, keyFile)
	pool := pair.Pool()
	addr := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %s
server: {listen: "%s", tls: {cert_file: %q, key_file: %q}}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  infrastructure: {labels: {app: infrastructure}}
`, filepath.Join(dir, "data"), addr, certFile, keyFile))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
	}}
	v := startVigilWith(t, cfg, addr, "https", client)

	for _, q := range []string{
		`up{job="vigil"} == 1`,
		`cpu_usage{app="infrastructure"}`,
		`vigil_tls_certificate_not_after_timestamp_seconds - time() > 0`,
	} {
		require.Eventually(t, func() bool { return len(v.query(q)) > 0 }, 20*time.Second, 200*time.Millisecond, q)
	}

	// vigil's own series carry the listen address as instance, not the
	// loopback port of the day, so they stay one series across restarts.
	up := v.query(`up{job="vigil"}`)
	require.Len(t, up, 1)
	require.Equal(t, addr, string(up[0].Metric["instance"]))

	// Plain HTTP on the TLS port gets nothing.
	resp, err := http.Get("http://" + addr + "/health")
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
	}
}
