package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns the files and a pool that trusts the certificate.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSKeepsCollecting: with TLS on the listener, vigil still stores its
// own metrics and its collectors' (it scrapes them over a loopback-only
// plain listener), so the host rules work and the certificate's expiry can
// be alerted on; the listener itself speaks only TLS 1.3.
func TestTLSKeepsCollecting(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeSelfSigned(t, dir)
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

	// Plain HTTP on the TLS port gets nothing.
	resp, err := http.Get("http://" + addr + "/health")
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
	}
}
