package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDeadRuleReported runs the seed's high_network_usage where nothing
// produces network_usage (a machine whose network device reports no link
// speed): after alerts.absent_after the running vigil logs it once, exports
// vigil_rule_inputs_absent 1, and `vigil check config --live` lists it;
// the rule on up, which has series, is not listed.
func TestDeadRuleReported(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`service: checkout
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: info, format: text}
metrics: {interval: 1s}
alerts:
  absent_after: 3s
  rules:
    - {name: high_network_usage, condition: network_usage > 80, duration: 5m, severity: warning, labels: {app: infrastructure, environment: production}}
    - {name: vigil_down, condition: up == 0, duration: 1m, severity: critical}
`, filepath.Join(dir, "data"), addr))
	v := startVigil(t, cfg, addr)

	var out string
	require.Eventually(t, func() bool {
		cmd := exec.Command(vigilBin, "check", "config", "--live", v.url(""))
		cmd.Env = append(cmd.Environ(), "VIGIL_TOKEN="+e2eToken)
		b, err := cmd.CombinedOutput()
		out = string(b)
		return err == nil && strings.Contains(out, "high_network_usage")
	}, 30*time.Second, 500*time.Millisecond, "check config --live never listed the dead rule")
	require.Contains(t, out, `rule "high_network_usage": network_usage{app="infrastructure",environment="production"} has matched no series since`)
	require.NotContains(t, out, "vigil_down")

	resp, err := http.Get(v.url("/metrics"))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, string(body), `vigil_rule_inputs_absent{rule="high_network_usage",rule_group="vigil",selector="network_usage{app=\"infrastructure\",environment=\"production\"}"} 1`)
	require.Contains(t, string(body), `vigil_rule_inputs_absent{rule="vigil_down",rule_group="vigil",selector="up"} 0`)

	time.Sleep(2 * time.Second) // a few more checks: still one warning
	require.Equal(t, 1, strings.Count(v.out.String(), "rule input matches no series"), v.out.String())
}
