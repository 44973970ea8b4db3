package web

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vigil-sh/vigil/config"
)

// scheme is what the listener speaks. It is fixed when Run starts listening:
// a listener cannot move between HTTP and HTTPS without a restart.
type scheme int

const (
	schemeUnset scheme = iota // not listening yet
	schemeHTTP
	schemeHTTPS
)

// listenerTLS is the certificate the listener serves and the scheme it was
// started with. A reload swaps the certificate in place, so renewed
// certificates are served without a restart.
type listenerTLS struct {
	// mtx orders reloads with the start of the listener, so that a reload
	// never checks the scheme before Run fixes it and swaps after.
	mtx    sync.Mutex
	scheme scheme
	cert   atomic.Pointer[tls.Certificate]
}

var errNoCertificate = errors.New("web: no server certificate loaded")

// tlsFiles returns the configured certificate and key: server.tls wins over
// the older server.cert_file and server.key_file.
func tlsFiles(cfg *config.Config) (certFile, keyFile string) {
	if cfg == nil {
		return "", ""
	}
	certFile, keyFile = cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile
	if certFile == "" && keyFile == "" {
		certFile, keyFile = cfg.Server.CertFile, cfg.Server.KeyFile
	}
	return certFile, keyFile
}

// loadCertificate reads the pair; both files are named in every error.
func loadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("web: server TLS needs both cert_file and key_file (cert_file %q, key_file %q)", certFile, keyFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("web: load server certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// tlsConfig fixes the listener's scheme from the config in force. It returns
// nil for plain HTTP; with a certificate in the config, it loads the pair and
// returns a config that serves whichever certificate ApplyConfig last swapped
// in and refuses anything older than TLS 1.3.
func (h *Handler) tlsConfig() (*tls.Config, error) {
	h.listenerTLS.mtx.Lock()
	defer h.listenerTLS.mtx.Unlock()
	certFile, keyFile := tlsFiles(h.cfg.Load())
	if certFile == "" && keyFile == "" {
		h.listenerTLS.scheme = schemeHTTP
		return nil, nil
	}
	cert, err := loadCertificate(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	h.setCertificate(cert, certFile)
	h.listenerTLS.scheme = schemeHTTPS
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := h.listenerTLS.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errNoCertificate
		},
	}, nil
}

// applyTLS checks cfg's TLS against the running listener and swaps in its
// certificate. On error nothing has changed. The caller holds
// listenerTLS.mtx.
func (h *Handler) applyTLS(cfg *config.Config) error {
	certFile, keyFile := tlsFiles(cfg)
	wantTLS := certFile != "" || keyFile != ""
	switch h.listenerTLS.scheme {
	case schemeUnset:
		// Run reads the pair when it starts listening, and fails there.
		return nil
	case schemeHTTP:
		if !wantTLS {
			return nil
		}
		// Not served until a restart, but a pair that cannot be loaded
		// would stop that restart: refuse it now.
		if _, err := loadCertificate(certFile, keyFile); err != nil {
			return err
		}
		h.logger.Warn("TLS is configured but the listener serves plain HTTP: restart vigil to serve HTTPS",
			"cert_file", certFile, "key_file", keyFile)
		return nil
	default:
		if !wantTLS {
			h.logger.Warn("TLS is no longer configured but the listener serves HTTPS: restart vigil to serve plain HTTP; the current certificate stays in use")
			return nil
		}
		cert, err := loadCertificate(certFile, keyFile)
		if err != nil {
			return err
		}
		h.setCertificate(cert, certFile)
		return nil
	}
}

// setCertificate swaps cert in and says so when it differs from the one it
// replaces; only public parts of the certificate are logged.
func (h *Handler) setCertificate(cert *tls.Certificate, certFile string) {
	old := h.listenerTLS.cert.Swap(cert)
	if old != nil && len(old.Certificate) > 0 && len(cert.Certificate) > 0 &&
		bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
		return
	}
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		// Only when GODEBUG x509keypairleaf=0 leaves Leaf empty.
		leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if leaf == nil {
		h.logger.Info("TLS certificate loaded", "cert_file", certFile)
		return
	}
	h.logger.Info("TLS certificate loaded", "cert_file", certFile,
		"subject_cn", leaf.Subject.CommonName, "not_after", leaf.NotAfter)
	h.metrics.certNotAfter.Reset()
	h.metrics.certNotAfter.WithLabelValues(leaf.Subject.CommonName).Set(float64(leaf.NotAfter.Unix()))
	h.metrics.certNotBefore.Reset()
	h.metrics.certNotBefore.WithLabelValues(leaf.Subject.CommonName).Set(float64(leaf.NotBefore.Unix()))
}
