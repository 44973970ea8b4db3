package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	vigilrules "github.com/vigil-sh/vigil/rules"
)

// vigilBin is the binary under test, built once by TestMain.
var vigilBin string

// e2eToken is the API token of the test user every test config carries
// (staging and production refuse to start without users). TestMain makes
// every HTTP client of this package send it.
const e2eToken = "vgl_end-to-end-test-token"

// bearer adds the test user's token to every request.
type bearer struct{ base http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.Header.Get("Authorization") == "" {
		r.Header.Set("Authorization", "Bearer "+e2eToken)
	}
	return b.base.RoundTrip(r)
}

func TestMain(m *testing.M) {
	http.DefaultTransport = bearer{http.DefaultTransport}
	api.DefaultRoundTripper = bearer{api.DefaultRoundTripper}
	dir, err := os.MkdirTemp("", "vigil-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-o", vigilBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building vigil for the end-to-end tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gaugeApp is an app whose /metrics serves cpu_usage with a value the test sets.
type gaugeApp struct {
	*httptest.Server
	cpu atomic.Int64
}

func newGaugeApp(t *testing.T, cpu int64) *gaugeApp {
	a := &gaugeApp{}
	a.cpu.Store(cpu)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP cpu_usage CPU in percent.\n# TYPE cpu_usage gauge\ncpu_usage %d\n", a.cpu.Load())
		fmt.Fprintf(w, "# TYPE app_build_info gauge\napp_build_info{version=\"1.2.3\"} 1\n")
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *gaugeApp) hostPort() string { return strings.TrimPrefix(a.URL, "http://") }

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// vigilProc is a running vigil binary.
type vigilProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	out  *lockedBuffer
	done chan struct{}
	// scheme and client reach it: http and http.DefaultClient unless
	// started by startVigilTLS.
	scheme string
	client *http.Client
}

type lockedBuffer struct {
	buf  bytes.Buffer
	lock chan struct{}
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{lock: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.lock <- struct{}{}
	defer func() { <-b.lock }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.lock <- struct{}{}
	defer func() { <-b.lock }()
	return b.buf.String()
}

func startVigil(t *testing.T, configFile, addr string) *vigilProc {
	t.Helper()
	return startVigilWith(t, configFile, addr, "http", http.DefaultClient)
}

// startVigilWith starts vigil and waits until it is ready at
// scheme://addr through client.
func startVigilWith(t *testing.T, configFile, addr, scheme string, client *http.Client) *vigilProc {
	t.Helper()
	p := &vigilProc{t: t, addr: addr, out: newLockedBuffer(), done: make(chan struct{}), scheme: scheme, client: client}
	p.cmd = exec.Command(vigilBin, "--config", configFile)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("vigil output:\n%s", p.out.String())
		}
	})
	require.Eventually(t, func() bool {
		select {
		case <-p.done:
			t.Fatalf("vigil exited early:\n%s", p.out.String())
		default:
		}
		resp, err := p.client.Get(p.url("/ready"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "vigil did not become ready")
	return p
}

func (p *vigilProc) url(path string) string { return p.scheme + "://" + p.addr + path }

// stop sends sig and waits for the process to exit.
func (p *vigilProc) stop(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("vigil did not exit after %s:\n%s", sig, p.out.String())
	}
}

type alertJSON struct {
	Name     string            `json:"name"`
	State    string            `json:"state"`
	Severity string            `json:"severity"`
	Labels   map[string]string `json:"labels"`
	Value    float64           `json:"value"`
	ActiveAt time.Time         `json:"activeAt"`
	FiredAt  *time.Time        `json:"firedAt"`
}

func (p *vigilProc) alerts() []alertJSON {
	p.t.Helper()
	resp, err := http.Get(p.url("/alerts"))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	require.Equal(p.t, http.StatusOK, resp.StatusCode)
	var out []alertJSON
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func (p *vigilProc) alert(name string) *alertJSON {
	for _, a := range p.alerts() {
		if a.Name == name {
			return &a
		}
	}
	return nil
}

// writeConfig writes a config with the test user added.
func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	f := filepath.Join(dir, "vigil.yaml")
	body += fmt.Sprintf("users:\n  - {name: e2e, role: admin, tokens: [%q]}\n", auth.Hash(e2eToken))
	require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
	return f
}

func e2eConfig(dataDir, addr, app, duration string) string {
	return fmt.Sprintf(`service: checkout
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: debug, format: text, output: stdout}
metrics: {interval: 1s, labels: {environment: production}}
collectors:
  app: {targets: ["%s"], labels: {app: app}}
alerts:
  rules:
    - name: high_cpu
      condition: cpu_usage > 80
      duration: %s
      severity: critical
      labels: {app: app, environment: production}
`, dataDir, addr, app, duration)
}

// TestAlertLifecycle is the end-to-end check: a seed rule with
// duration 2s goes pending, fires after 2s, shows in /alerts and
// /api/v1/alerts, and resolves when the metric drops.
func TestAlertLifecycle(t *testing.T) {
	app := newGaugeApp(t, 95)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, e2eConfig(filepath.Join(dir, "data"), addr, app.hostPort(), "2s"))
	v := startVigil(t, cfg, addr)

	var pending *alertJSON
	require.Eventually(t, func() bool {
		pending = v.alert("high_cpu")
		return pending != nil
	}, 15*time.Second, 100*time.Millisecond, "high_cpu never became active")
	require.Equal(t, "pending", pending.State, "a 2s rule must be pending first")
	require.Equal(t, "critical", pending.Severity)
	require.Equal(t, "app", pending.Labels["app"])
	require.Equal(t, "production", pending.Labels["environment"])
	require.Equal(t, 95.0, pending.Value)

	var firing *alertJSON
	require.Eventually(t, func() bool {
		firing = v.alert("high_cpu")
		return firing != nil && firing.State == "firing"
	}, 15*time.Second, 100*time.Millisecond, "high_cpu never fired")
	require.NotNil(t, firing.FiredAt)
	require.GreaterOrEqual(t, firing.FiredAt.Sub(firing.ActiveAt), 2*time.Second, "fired before its duration")
	require.True(t, firing.ActiveAt.Equal(pending.ActiveAt), "activeAt moved between pending and firing")

	// The Prometheus API shows the same alert.
	client, err := api.NewClient(api.Config{Address: v.url("")})
	require.NoError(t, err)
	papi := promv1.NewAPI(client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := papi.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, res.Alerts, 1)
	require.Equal(t, promv1.AlertStateFiring, res.Alerts[0].State)
	require.Equal(t, model.LabelValue("high_cpu"), res.Alerts[0].Labels["alertname"])

	// The scraped series carry the collector's labels.
	val, _, _, err := papi.Query(ctx, `up{job="app"}`, time.Now())
	require.NoError(t, err)
	vec := val.(model.Vector)
	require.Len(t, vec, 1)
	require.Equal(t, model.SampleValue(1), vec[0].Value)
	require.Equal(t, model.LabelValue("app"), vec[0].Metric["app"])
	require.Equal(t, model.LabelValue("production"), vec[0].Metric["environment"])
	require.Equal(t, model.LabelValue("checkout"), vec[0].Metric["service"])

	// vigil scrapes itself.
	val, _, _, err = papi.Query(ctx, `up{app="vigil"}`, time.Now())
	require.NoError(t, err)
	require.Len(t, val.(model.Vector), 1)

	// Without the token: 401 on a guarded route, 200 on the open ones.
	anonymous := &http.Client{Transport: &http.Transport{}}
	for path, want := range map[string]int{"/alerts": http.StatusUnauthorized, "/api/v1/query?query=up": http.StatusUnauthorized,
		"/health": http.StatusOK, "/ready": http.StatusOK, "/metrics": http.StatusOK} {
		resp, err := anonymous.Get(v.url(path))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}

	// The metric drops: the alert resolves and leaves /alerts.
	app.cpu.Store(10)
	require.Eventually(t, func() bool { return v.alert("high_cpu") == nil }, 15*time.Second, 100*time.Millisecond,
		"high_cpu did not resolve")

	v.stop(syscall.SIGTERM)
	require.Equal(t, 0, v.cmd.ProcessState.ExitCode(), "SIGTERM must be a clean exit")
}

// TestRestartKeepsFiringAlert checks that the `for` clock is restored: an
// alert firing before a restart fires again without waiting out its duration.
func TestRestartKeepsFiringAlert(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			app := newGaugeApp(t, 95)
			dir := t.TempDir()
			addr := freePort(t)
			const hold = 10 * time.Second
			cfg := writeConfig(t, dir, e2eConfig(filepath.Join(dir, "data"), addr, app.hostPort(), "10s"))

			v := startVigil(t, cfg, addr)
			var before *alertJSON
			require.Eventually(t, func() bool {
				before = v.alert("high_cpu")
				return before != nil && before.State == "firing"
			}, 30*time.Second, 200*time.Millisecond, "high_cpu never fired")
			v.stop(sig)

			restarted := time.Now()
			v = startVigil(t, cfg, addr)
			var after *alertJSON
			require.Eventually(t, func() bool {
				after = v.alert("high_cpu")
				return after != nil && after.State == "firing"
			}, 30*time.Second, 100*time.Millisecond, "high_cpu did not fire again after the restart")
			require.Less(t, time.Since(restarted), hold,
				"after a restart the alert waited out its whole duration again")
			require.WithinDuration(t, before.ActiveAt, after.ActiveAt, 2*time.Second,
				"activeAt was not restored")
		})
	}
}

// TestReload checks SIGHUP and POST /-/reload: a bad config keeps the old one
// and is reported in vigil_config_last_reload_successful.
func TestReload(t *testing.T) {
	app := newGaugeApp(t, 10)
	dir := t.TempDir()
	addr := freePort(t)
	good := e2eConfig(filepath.Join(dir, "data"), addr, app.hostPort(), "5m")
	cfg := writeConfig(t, dir, good)
	v := startVigil(t, cfg, addr)
	require.Equal(t, 1.0, metricValue(t, v, "vigil_config_last_reload_successful"))

	// A bad config: vigil keeps running on the old rules and says so.
	writeConfig(t, dir, good+"    - {name: broken, condition: 'cpu_usage >', duration: 1m, severity: critical}\n")
	require.NoError(t, v.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return metricValue(t, v, "vigil_config_last_reload_successful") == 0
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, []string{"high_cpu"}, ruleNames(t, v))

	resp, err := http.Post(v.url("/-/reload"), "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Contains(t, string(body), "broken")

	// A good config with one more rule takes effect.
	writeConfig(t, dir, good+"    - {name: low_cpu, condition: cpu_usage < 1, duration: 1m, severity: warning}\n")
	resp, err = http.Post(v.url("/-/reload"), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1.0, metricValue(t, v, "vigil_config_last_reload_successful"))
	require.ElementsMatch(t, []string{"high_cpu", "low_cpu"}, ruleNames(t, v))
}

// ruleNames are the alerting rules of the config's own groups; vigil's own
// rules (rules.OwnGroupName, e.g. rule_limit_exceeded) are left out.
func ruleNames(t *testing.T, v *vigilProc) []string {
	t.Helper()
	client, err := api.NewClient(api.Config{Address: v.url("")})
	require.NoError(t, err)
	res, err := promv1.NewAPI(client).Rules(context.Background(), nil)
	require.NoError(t, err)
	var names []string
	for _, g := range res.Groups {
		if g.Name == vigilrules.OwnGroupName {
			continue
		}
		for _, r := range g.Rules {
			if ar, ok := r.(promv1.AlertingRule); ok {
				names = append(names, ar.Name)
			}
		}
	}
	return names
}

func metricValue(t *testing.T, v *vigilProc, name string) float64 {
	t.Helper()
	resp, err := http.Get(v.url("/metrics"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var f float64
			_, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &f)
			require.NoError(t, err, line)
			return f
		}
	}
	t.Fatalf("metric %s not found in /metrics", name)
	return 0
}

// TestDefaultConfigServes checks what `make run` gives: vigil on its built-in
// default config answers /health and /alerts.
func TestDefaultConfigServes(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(vigilBin)
	cmd.Dir = dir
	out := newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	ln, err := net.Listen("tcp", "127.0.0.1:9090")
	if err != nil {
		t.Skipf("port 9090 is taken on this machine; the default config listens there: %v", err)
	}
	ln.Close()
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("vigil output:\n%s", out.String())
		}
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://127.0.0.1:9090/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	resp, err := http.Get("http://127.0.0.1:9090/alerts")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var alerts []alertJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&alerts))
	require.DirExists(t, filepath.Join(dir, "data"), "the default config keeps data in ./data")
	require.Contains(t, out.String(), "built-in default")
}

// TestCLI covers check config, test rules and version.
func TestCLI(t *testing.T) {
	runCLI := func(args ...string) (string, int) {
		cmd := exec.Command(vigilBin, args...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}

	out, code := runCLI("version")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "vigil")

	out, code = runCLI("check", "config", "../../deploy/examples/vigil.yaml")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "SUCCESS")
	require.NotContains(t, out, "<secret>", "the summary must not even hint at secrets' values")

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("service: x\nalerts:\n  rules:\n    - {name: a, condition: 'up ==', duration: 5x, severity: critical}\nbogus: 1\n"), 0o644))
	out, code = runCLI("check", "config", bad)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "bad.yml:4")
	require.Contains(t, out, "bad.yml:5")
	require.Contains(t, out, `"5x"`)

	out, code = runCLI("test", "rules", "../../rules/testdata/seed_rules_test.yml")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "SUCCESS")

	out, code = runCLI("test", "rules", "../../rules/testdata/seed_rules_fail_test.yml")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "FAILED")

	_, code = runCLI("check")
	require.Equal(t, 2, code)

	out, code = runCLI("token", "new")
	require.Equal(t, 0, code, out)
	var token, hash string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			token = v
		}
		if v, ok := strings.CutPrefix(line, "hash:  "); ok {
			hash = v
		}
	}
	require.True(t, auth.Verify(token, hash), "the printed hash must verify the printed token")

	// Production without users refuses to start, saying why.
	prod := filepath.Join(dir, "prod.yml")
	require.NoError(t, os.WriteFile(prod, []byte("environment: production\n"), 0o644))
	out, code = runCLI("--config", prod)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "users")
}
