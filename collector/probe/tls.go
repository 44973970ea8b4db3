package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
)

var (
	tlsSuccessDesc   = prometheus.NewDesc("probe_tls_success", "Whether the TLS handshake with the app succeeded.", nil, nil)
	tlsVersionDesc   = prometheus.NewDesc("probe_tls_version_info", "The TLS version the app negotiated; always 1.", []string{"version"}, nil)
	tlsPolicyDesc    = prometheus.NewDesc("probe_tls_version_meets_policy", "Whether the negotiated TLS version is at least encryption.in_transit.algorithm (1) or not (0); absent without it.", nil, nil)
	tlsNotBeforeDesc = prometheus.NewDesc("probe_tls_certificate_not_before_timestamp_seconds", "When the app's certificate became valid, in Unix seconds.", nil, nil)
	tlsNotAfterDesc  = prometheus.NewDesc("probe_tls_certificate_not_after_timestamp_seconds", "When the app's certificate expires, in Unix seconds.", nil, nil)
	tlsExpiryDesc    = prometheus.NewDesc("probe_tls_certificate_expiry_days", "Days until the app's certificate expires; negative once it has.", nil, nil)
	tlsVerifiedDesc  = prometheus.NewDesc("probe_tls_certificate_verified", "Whether the app's certificate chain and name verify against the system roots or ca_file.", nil, nil)
)

// tlsVersions maps crypto/tls versions to the names the seed writes.
var tlsVersions = map[uint16]string{
	tls.VersionTLS10: "TLS 1.0", tls.VersionTLS11: "TLS 1.1",
	tls.VersionTLS12: "TLS 1.2", tls.VersionTLS13: "TLS 1.3",
}

// TLSProber checks the app's TLS endpoint: the version it negotiates and its
// certificate's dates, as series rules can use (encryption.in_transit).
type TLSProber struct {
	address    string
	serverName string
	roots      *x509.CertPool // nil: the system roots
	timeout    time.Duration
	minVersion uint16 // 0: no policy
	now        func() time.Time
}

// NewTLS returns a TLSProber for cfg; minVersion is the lowest TLS version
// encryption.in_transit.algorithm allows ("" for none).
func NewTLS(cfg *config.TLSProbeConfig, minVersion string) (*TLSProber, error) {
	p := &TLSProber{address: cfg.Address, serverName: cfg.ServerName, timeout: time.Duration(cfg.Timeout), now: time.Now}
	if p.timeout <= 0 {
		p.timeout = 10 * time.Second
	}
	if p.serverName == "" {
		if host, _, err := net.SplitHostPort(cfg.Address); err == nil {
			p.serverName = host
		}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_probe.ca_file: %w", err)
		}
		p.roots = x509.NewCertPool()
		if !p.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_probe.ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	for v, name := range tlsVersions {
		if name == minVersion {
			p.minVersion = v
		}
	}
	return p, nil
}

// Update runs one handshake and sends the probe's metrics. A failed
// handshake is probe_tls_success 0, not a failed collection.
func (p *TLSProber) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{
		ServerName: p.serverName,
		// The certificate is verified below, so that an untrusted or expired
		// one still reports its dates.
		InsecureSkipVerify: true, //nolint:gosec // verified by hand below
		MinVersion:         tls.VersionTLS10,
	}}
	conn, err := d.DialContext(ctx, "tcp", p.address)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(tlsSuccessDesc, prometheus.GaugeValue, 0)
		return nil
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	ch <- prometheus.MustNewConstMetric(tlsSuccessDesc, prometheus.GaugeValue, 1)
	version, ok := tlsVersions[state.Version]
	if !ok {
		version = fmt.Sprintf("0x%04x", state.Version)
	}
	ch <- prometheus.MustNewConstMetric(tlsVersionDesc, prometheus.GaugeValue, 1, version)
	if p.minVersion != 0 {
		ch <- prometheus.MustNewConstMetric(tlsPolicyDesc, prometheus.GaugeValue, boolValue(state.Version >= p.minVersion))
	}
	if len(state.PeerCertificates) == 0 {
		return nil
	}
	leaf := state.PeerCertificates[0]
	ch <- prometheus.MustNewConstMetric(tlsNotBeforeDesc, prometheus.GaugeValue, float64(leaf.NotBefore.Unix()))
	ch <- prometheus.MustNewConstMetric(tlsNotAfterDesc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
	ch <- prometheus.MustNewConstMetric(tlsExpiryDesc, prometheus.GaugeValue, leaf.NotAfter.Sub(p.now()).Hours()/24)
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: p.serverName, Roots: p.roots, Intermediates: inter, CurrentTime: p.now()})
	ch <- prometheus.MustNewConstMetric(tlsVerifiedDesc, prometheus.GaugeValue, boolValue(verr == nil))
	return nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
