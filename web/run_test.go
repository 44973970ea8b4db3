package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestRunPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()

	h := New(&Options{ListenAddress: addr}, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(testConfig()))
	err = h.Run(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), addr)
}

// startServing serves h on a fresh 127.0.0.1 listener until the test ends.
func startServing(t *testing.T, h *Handler) (addr string, stop func() error) {
	t.Helper()
	tlsCfg, err := h.tlsConfig()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.serve(ctx, ln, tlsCfg) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-errc
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

func TestServeAndShutdown(t *testing.T) {
	h := New(&Options{}, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(testConfig()))
	addr, stop := startServing(t, h)

	resp, err := http.Get("http://" + addr + "/health")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	require.NoError(t, stop())
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the listener is closed after shutdown")
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	tests := []struct {
		name string
		set  func(*config.Config)
	}{
		{"server.tls", func(c *config.Config) { c.Server.TLS = config.TLSConfig{CertFile: certFile, KeyFile: keyFile} }},
		{"server.cert_file", func(c *config.Config) { c.Server.CertFile, c.Server.KeyFile = certFile, keyFile }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.set(cfg)
			h := New(&Options{}, discardLogger(), prometheus.NewRegistry())
			require.NoError(t, h.ApplyConfig(cfg))
			addr, _ := startServing(t, h)

			get := func(maxVersion uint16) (*http.Response, error) {
				client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
					RootCAs: pool, MaxVersion: maxVersion, ServerName: "127.0.0.1",
				}}}
				defer client.CloseIdleConnections()
				return client.Get("https://" + addr + "/health")
			}
			resp, err := get(tls.VersionTLS13)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)

			_, err = get(tls.VersionTLS12)
			require.Error(t, err, "TLS 1.2 is refused")
		})
	}
}

func TestServeTLSErrors(t *testing.T) {
	certFile, _, _ := writeCert(t)
	tests := []struct {
		name    string
		tls     config.TLSConfig
		wantErr string
	}{
		{"key missing", config.TLSConfig{CertFile: certFile}, "needs both cert_file and key_file"},
		{"files missing", config.TLSConfig{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}, "/nonexistent/cert.pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Server.TLS = tc.tls
			h := New(&Options{ListenAddress: "127.0.0.1:0"}, discardLogger(), prometheus.NewRegistry())
			require.NoError(t, h.ApplyConfig(cfg))
			err := h.Run(context.Background())
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	p := newTLSTestPair(t, "vigil test")
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	p.Write(t, certFile, keyFile)
	pool = x509.NewCertPool()
	pool.AddCert(p.Cert)
	return certFile, keyFile, pool
}

func TestSemverBuildMetadata(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0.1.0", "0.1.0"},
		{"v0.3.0-2-gabc1234-dirty", "v0.3.0-2-gabc1234-dirty"},
		{"", ""},
		{"1.0.0+build/5", "1.0.0-build-5"},
		{"..x..", "x"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, semverBuildMetadata(tc.in), tc.in)
	}
}
