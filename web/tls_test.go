package web

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/testutil"
)

// tlsTestPair is a self-signed certificate for 127.0.0.1 and its key.
type tlsTestPair = testutil.Pair

func newTLSTestPair(t *testing.T, cn string) tlsTestPair { return testutil.NewCert(t, cn) }

func newTLSTestLogger() (*slog.Logger, *testutil.Buffer) {
	buf := &testutil.Buffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// tlsTestConfig is a config whose server.tls names the files (nothing when empty).
func tlsTestConfig(certFile, keyFile string) *config.Config {
	cfg := testConfig()
	cfg.Server.TLS = config.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	return cfg
}

// dialTLS opens a new connection to addr with at most maxVersion.
func dialTLS(addr string, pool *x509.CertPool, maxVersion uint16) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs:    pool,
		ServerName: "127.0.0.1",
		MaxVersion: maxVersion,
	})
}

// servedCN is the common name of the certificate a new TLS 1.3 connection gets.
func servedCN(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	conn, err := dialTLS(addr, pool, tls.VersionTLS13)
	require.NoError(t, err)
	defer conn.Close()
	state := conn.ConnectionState()
	require.Equal(t, uint16(tls.VersionTLS13), state.Version)
	require.NotEmpty(t, state.PeerCertificates)
	return state.PeerCertificates[0].Subject.CommonName
}

// getHealth asks /health over client and returns the status code.
func getHealth(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	defer client.CloseIdleConnections()
	resp, err := client.Get(url + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode
}

func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := newTLSTestPair(t, "vigil-first"), newTLSTestPair(t, "vigil-second")
	pool := x509.NewCertPool()
	pool.AddCert(first.Cert)
	pool.AddCert(second.Cert)
	first.Write(t, certFile, keyFile)

	logger, logs := newTLSTestLogger()
	reg := prometheus.NewRegistry()
	h := New(&Options{}, logger, reg)
	require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)))
	addr, _ := startServing(t, h)
	require.Equal(t, "vigil-first", servedCN(t, addr, pool))
	requireCertExpiry := func(cn string, notAfter time.Time) {
		t.Helper()
		want := fmt.Sprintf("# HELP vigil_tls_certificate_not_after_timestamp_seconds When the certificate vigil serves expires, in Unix seconds; absent without TLS.\n"+
			"# TYPE vigil_tls_certificate_not_after_timestamp_seconds gauge\n"+
			"vigil_tls_certificate_not_after_timestamp_seconds{subject_cn=%q} %d\n", cn, notAfter.Unix())
		require.NoError(t, promtestutil.GatherAndCompare(reg, strings.NewReader(want), "vigil_tls_certificate_not_after_timestamp_seconds"))
	}
	requireCertExpiry("vigil-first", first.Cert.NotAfter)
	// Its issue time too: encryption.in_transit.certificate_rotation limits its age.
	wantIssued := fmt.Sprintf("# HELP vigil_tls_certificate_not_before_timestamp_seconds When the certificate vigil serves became valid, in Unix seconds; absent without TLS.\n"+
		"# TYPE vigil_tls_certificate_not_before_timestamp_seconds gauge\n"+
		"vigil_tls_certificate_not_before_timestamp_seconds{subject_cn=\"vigil-first\"} %d\n", first.Cert.NotBefore.Unix())
	require.NoError(t, promtestutil.GatherAndCompare(reg, strings.NewReader(wantIssued), "vigil_tls_certificate_not_before_timestamp_seconds"))

	// Renewal: new files, then SIGHUP or POST /-/reload.
	second.Write(t, certFile, keyFile)
	require.Equal(t, "vigil-first", servedCN(t, addr, pool), "the files are read on reload, not before")
	renewed := tlsTestConfig(certFile, keyFile)
	require.NoError(t, h.ApplyConfig(renewed))
	require.Equal(t, "vigil-second", servedCN(t, addr, pool))
	requireCertExpiry("vigil-second", second.Cert.NotAfter)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
	}}
	require.Equal(t, http.StatusOK, getHealth(t, client, "https://"+addr))

	// A broken key fails the reload and keeps the second certificate.
	require.NoError(t, os.WriteFile(keyFile, []byte("not a key\n"), 0o600))
	err := h.ApplyConfig(tlsTestConfig(certFile, keyFile))
	require.Error(t, err)
	require.Contains(t, err.Error(), keyFile)
	require.Contains(t, err.Error(), certFile)
	require.Same(t, renewed, h.cfg.Load(), "a failed reload keeps the config in force")
	require.Equal(t, "vigil-second", servedCN(t, addr, pool))

	// TLS 1.3 stays the minimum after reloads.
	conn, err := dialTLS(addr, pool, tls.VersionTLS12)
	if conn != nil {
		conn.Close()
	}
	require.Error(t, err, "a TLS 1.2 client is refused")

	out := logs.String()
	require.Contains(t, out, "subject_cn=vigil-first")
	require.Contains(t, out, "subject_cn=vigil-second")
	require.Equal(t, 1, strings.Count(out, "subject_cn=vigil-second"), "only a new certificate is logged")
	require.NotContains(t, out, "PRIVATE KEY")
	for _, p := range []tlsTestPair{first, second} {
		require.NotContains(t, out, strings.TrimSpace(strings.Split(string(p.KeyPEM), "\n")[1]), "no key material in the log")
	}
}

func TestTLSReloadSameCertificateIsQuiet(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair := newTLSTestPair(t, "vigil-same")
	pair.Write(t, certFile, keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(pair.Cert)

	logger, logs := newTLSTestLogger()
	h := New(&Options{}, logger, prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)))
	addr, _ := startServing(t, h)
	for range 3 {
		require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)))
	}
	require.Equal(t, "vigil-same", servedCN(t, addr, pool))
	require.Equal(t, 1, strings.Count(logs.String(), "TLS certificate loaded"))
}

func TestTLSReloadErrorsKeepCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair := newTLSTestPair(t, "vigil-kept")
	pair.Write(t, certFile, keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(pair.Cert)

	h := New(&Options{}, discardLogger(), prometheus.NewRegistry())
	applied := tlsTestConfig(certFile, keyFile)
	require.NoError(t, h.ApplyConfig(applied))
	addr, _ := startServing(t, h)

	missingCert, missingKey := filepath.Join(dir, "gone.crt"), filepath.Join(dir, "gone.key")
	other := newTLSTestPair(t, "vigil-other")
	otherCert, otherKey := filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key")
	require.NoError(t, os.WriteFile(otherCert, other.CertPEM, 0o600))
	require.NoError(t, os.WriteFile(otherKey, pair.KeyPEM, 0o600)) // the wrong key for this certificate
	tests := []struct {
		name     string
		cfg      *config.Config
		wantErrs []string
	}{
		{"key missing", tlsTestConfig(certFile, ""), []string{"needs both cert_file and key_file", certFile}},
		{"files missing", tlsTestConfig(missingCert, missingKey), []string{missingCert, missingKey}},
		{"key of another certificate", tlsTestConfig(otherCert, otherKey), []string{otherCert, otherKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.ApplyConfig(tc.cfg)
			require.Error(t, err)
			for _, want := range tc.wantErrs {
				require.Contains(t, err.Error(), want)
			}
			require.Same(t, applied, h.cfg.Load())
			require.Equal(t, "vigil-kept", servedCN(t, addr, pool))
		})
	}
}

func TestTLSSchemeChangeNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair := newTLSTestPair(t, "vigil-scheme")
	pair.Write(t, certFile, keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(pair.Cert)

	t.Run("TLS turned on", func(t *testing.T) {
		logger, logs := newTLSTestLogger()
		h := New(&Options{}, logger, prometheus.NewRegistry())
		require.NoError(t, h.ApplyConfig(testConfig()))
		addr, _ := startServing(t, h)

		// A pair that could not be loaded at the next restart is refused now.
		err := h.ApplyConfig(tlsTestConfig(filepath.Join(dir, "gone.crt"), keyFile))
		require.ErrorContains(t, err, filepath.Join(dir, "gone.crt"))
		require.NotContains(t, logs.String(), "restart")

		next := tlsTestConfig(certFile, keyFile)
		require.NoError(t, h.ApplyConfig(next), "a scheme change does not fail the reload")
		require.Same(t, next, h.cfg.Load())
		require.Contains(t, logs.String(), "restart vigil to serve HTTPS")
		client := &http.Client{Timeout: 5 * time.Second}
		require.Equal(t, http.StatusOK, getHealth(t, client, "http://"+addr), "still plain HTTP")
	})
	t.Run("TLS turned off", func(t *testing.T) {
		logger, logs := newTLSTestLogger()
		h := New(&Options{}, logger, prometheus.NewRegistry())
		require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)))
		addr, _ := startServing(t, h)

		next := testConfig()
		require.NoError(t, h.ApplyConfig(next), "a scheme change does not fail the reload")
		require.Same(t, next, h.cfg.Load())
		require.Contains(t, logs.String(), "restart vigil to serve plain HTTP")
		require.Equal(t, "vigil-scheme", servedCN(t, addr, pool), "still HTTPS with the same certificate")
	})
}

func TestRunRefusesBrokenKey(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	newTLSTestPair(t, "vigil-broken").Write(t, certFile, keyFile)
	require.NoError(t, os.WriteFile(keyFile, []byte("garbage"), 0o600))

	h := New(&Options{ListenAddress: "127.0.0.1:0"}, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)), "before the listener starts, Run reads the pair")
	err := h.Run(t.Context())
	require.Error(t, err)
	require.Contains(t, err.Error(), certFile)
	require.Contains(t, err.Error(), keyFile)
}

func TestTLSReloadWhileServing(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pairs := []tlsTestPair{newTLSTestPair(t, "vigil-a"), newTLSTestPair(t, "vigil-b")}
	pool := x509.NewCertPool()
	for _, p := range pairs {
		pool.AddCert(p.Cert)
	}
	pairs[0].Write(t, certFile, keyFile)
	h := New(&Options{}, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)))
	addr, _ := startServing(t, h)

	// Handshakes while certificates swap: each one gets a whole certificate.
	done := make(chan struct{})
	results := make(chan error, 1)
	go func() {
		defer close(results)
		for {
			select {
			case <-done:
				return
			default:
			}
			conn, err := dialTLS(addr, pool, tls.VersionTLS13)
			if err != nil {
				results <- err
				return
			}
			conn.Close()
		}
	}()
	for i := range 20 {
		pairs[i%2].Write(t, certFile, keyFile)
		require.NoError(t, h.ApplyConfig(tlsTestConfig(certFile, keyFile)))
	}
	close(done)
	select {
	case err, ok := <-results:
		if ok {
			require.NoError(t, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dialing goroutine did not stop")
	}
	require.Equal(t, "vigil-b", servedCN(t, addr, pool))
}
