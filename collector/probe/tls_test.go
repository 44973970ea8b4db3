package probe

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// collectorFunc is an Update method as a prometheus.Collector.
type collectorFunc func(ctx context.Context, ch chan<- prometheus.Metric) error

func (f collectorFunc) Describe(chan<- *prometheus.Desc) {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	_ = f(context.Background(), ch)
}

func TestTLSProbe(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert := srv.Certificate()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600))
	addr := srv.Listener.Addr().String()
	now := cert.NotAfter.Add(-10 * 24 * time.Hour)

	for name, tc := range map[string]struct {
		cfg      config.TLSProbeConfig
		policy   string
		contains []string
	}{
		// The app negotiates TLS 1.2; the seed's policy is TLS 1.3.
		"below policy, trusted": {
			cfg: config.TLSProbeConfig{Address: addr, ServerName: "example.com", CAFile: caFile}, policy: "TLS 1.3",
			contains: []string{`probe_tls_success 1`, `probe_tls_version_info{version="TLS 1.2"} 1`,
				`probe_tls_version_meets_policy 0`, `probe_tls_certificate_expiry_days 10`, `probe_tls_certificate_verified 1`},
		},
		"meets policy, untrusted": {
			cfg: config.TLSProbeConfig{Address: addr}, policy: "TLS 1.2",
			contains: []string{`probe_tls_version_meets_policy 1`, `probe_tls_certificate_verified 0`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := NewTLS(&tc.cfg, tc.policy)
			require.NoError(t, err)
			p.now = func() time.Time { return now }
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectorFunc(p.Update))
			mfs, err := reg.Gather()
			require.NoError(t, err)
			var b strings.Builder
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					b.WriteString(mf.GetName())
					if len(m.GetLabel()) > 0 {
						b.WriteString(`{` + m.GetLabel()[0].GetName() + `="` + m.GetLabel()[0].GetValue() + `"}`)
					}
					b.WriteString(" " + strconv.FormatFloat(m.GetGauge().GetValue(), 'f', -1, 64) + "\n")
				}
			}
			for _, want := range tc.contains {
				require.Contains(t, b.String(), want)
			}
			require.Contains(t, b.String(), "probe_tls_certificate_not_after_timestamp_seconds "+strconv.FormatInt(cert.NotAfter.Unix(), 10))
		})
	}

	// Nothing listening: the handshake fails, the collection does not.
	p, err := NewTLS(&config.TLSProbeConfig{Address: "127.0.0.1:1", Timeout: config.Duration(time.Second)}, "")
	require.NoError(t, err)
	ch := make(chan prometheus.Metric, 10)
	require.NoError(t, p.Update(context.Background(), ch))
	require.Len(t, ch, 1)
}
