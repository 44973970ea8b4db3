package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// The remote-write tests send to a real Prometheus, built from the module
// version vigil pins, started with --web.enable-remote-write-receiver on
// 127.0.0.1. The binary is cached in $XDG_CACHE_HOME/vigil-test (usually
// ~/.cache/vigil-test); building it the first time takes minutes.

var (
	promBuildOnce sync.Once
	promBin       string
	promBuildErr  error
)

// prometheusBinary returns the cached Prometheus binary, building it from
// the module cache when missing; it skips the test when that cannot be done.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	promBuildOnce.Do(func() { promBin, promBuildErr = buildPrometheus() })
	if promBuildErr != nil {
		t.Skipf("cannot build Prometheus (the remote-write receiver) from the module cache: %v", promBuildErr)
	}
	return promBin
}

func buildPrometheus() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "github.com/prometheus/prometheus").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/prometheus/prometheus: %w", err)
	}
	srcDir, ver, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || srcDir == "" {
		return "", fmt.Errorf("the Prometheus module is not in the module cache (go list said %q)", out)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "vigil-test", "prometheus-"+ver)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	// The module cache is read-only and its go.mod is Prometheus's own:
	// build a writable copy outside vigil's module.
	tmp, err := os.MkdirTemp("", "prometheus-src")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "prometheus")
	for _, args := range [][]string{{"cp", "-r", srcDir, src}, {"chmod", "-R", "u+w", src}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	// remove_all_sd leaves out the service discovery plugins (cloud SDKs,
	// Kubernetes client): a receiver needs none, and the build is minutes
	// shorter.
	build := exec.Command("go", "build", "-o", bin+".tmp", "./cmd/prometheus")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-tags=remove_all_sd")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/prometheus: %w: %s", err, out)
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// promProc is a running Prometheus receiver.
type promProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	out  *lockedBuffer
	done chan struct{}
}

// startPrometheus starts Prometheus on addr with its data in dir and waits
// until it is ready.
func startPrometheus(t *testing.T, bin, dir, addr string) *promProc {
	t.Helper()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644))
	p := &promProc{t: t, addr: addr, out: newLockedBuffer(), done: make(chan struct{})}
	p.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	require.Eventually(t, func() bool {
		select {
		case <-p.done:
			t.Fatalf("prometheus exited early:\n%s", p.out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "prometheus did not become ready")
	return p
}

// stop ends Prometheus with SIGTERM and waits for it.
func (p *promProc) stop() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("prometheus did not stop:\n%s", p.out.String())
	}
}

func (p *promProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rangeSamples runs query (a range selector) at ts and returns its raw
// samples by series, with the labels add added to each series.
func rangeSamples(t *testing.T, addr, query string, ts time.Time, add model.LabelSet) map[string][]model.SamplePair {
	t.Helper()
	client, err := api.NewClient(api.Config{Address: addr})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, _, _, err := promv1.NewAPI(client).Query(ctx, query, ts)
	require.NoError(t, err)
	m, ok := v.(model.Matrix)
	require.True(t, ok, "%s is not a matrix: %v", query, v)
	out := map[string][]model.SamplePair{}
	for _, s := range m {
		for n, v := range add {
			s.Metric[n] = v
		}
		out[s.Metric.String()] = s.Values
	}
	return out
}

// readyQueue is one queue on /ready.
type readyQueue struct {
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	Shards         float64   `json:"shards"`
	PendingSamples float64   `json:"pending_samples"`
	SamplesSent    float64   `json:"samples_sent"`
	LastSend       time.Time `json:"last_send"`
	LastError      string    `json:"last_error"`
	LastErrorTime  time.Time `json:"last_error_time"`
}

func (p *vigilProc) readyQueues() []readyQueue {
	p.t.Helper()
	resp, err := http.Get(p.url("/ready"))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	require.Equal(p.t, http.StatusOK, resp.StatusCode)
	var body struct {
		Status      string       `json:"status"`
		RemoteWrite []readyQueue `json:"remote_write"`
	}
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&body))
	return body.RemoteWrite
}

// remoteWriteConfig is e2eConfig with remote_write to promAddr and the
// sidecar's external labels.
func remoteWriteConfig(dataDir, addr, app, promAddr string) string {
	return remoteWriteConfigProto(dataDir, addr, app, promAddr, "prometheus.WriteRequest")
}

// remoteWriteConfigProto is remoteWriteConfig with the given protobuf_message.
func remoteWriteConfigProto(dataDir, addr, app, promAddr, proto string) string {
	return e2eConfig(dataDir, addr, app, "5m") + fmt.Sprintf(`global:
  external_labels: {pod: checkout-0, replica: a}
remote_write:
  - name: backend
    url: http://%s/api/v1/write
    queue_config: {batch_send_deadline: 1s, max_backoff: 1s}
    protobuf_message: %s
`, promAddr, proto)
}

// risingApp is a gauge app whose cpu_usage changes every 300ms, so that the
// compared samples are not all one value.
func risingApp(t *testing.T) *gaugeApp {
	app := newGaugeApp(t, 0)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				app.cpu.Add(1)
			}
		}
	}()
	return app
}

var sidecarLabels = model.LabelSet{"pod": "checkout-0", "replica": "a"}

// requireSameSamples waits until the backend holds, for every cpu_usage
// series of vigil in the window before at, the same samples as vigil, with
// the external labels added.
func requireSameSamples(t *testing.T, v *vigilProc, promAddr string, window time.Duration, at time.Time) map[string][]model.SamplePair {
	t.Helper()
	sel := fmt.Sprintf("cpu_usage[%ds]", int(window.Seconds()))
	want := rangeSamples(t, v.url(""), sel, at, sidecarLabels)
	require.NotEmpty(t, want)
	var got map[string][]model.SamplePair
	require.Eventually(t, func() bool {
		got = rangeSamples(t, "http://"+promAddr, `{__name__="cpu_usage", pod="checkout-0", replica="a"}`+sel[len("cpu_usage"):], at, nil)
		return fmt.Sprint(got) == fmt.Sprint(want)
	}, 60*time.Second, 500*time.Millisecond, "the backend's samples differ from vigil's")
	require.Equal(t, want, got)
	for k, v := range got {
		t.Logf("same %d samples of %s in vigil and the backend", len(v), k)
	}
	return got
}

// TestRemoteWriteToPrometheus runs vigil with remote_write to a real
// Prometheus: a PromQL query on Prometheus returns the same samples as
// vigil's own API for the same series and range, with global.external_labels
// added, and /ready shows the queue.
func TestRemoteWriteToPrometheus(t *testing.T) {
	// Remote-Write 1.0 and 2.0; Prometheus accepts both by default.
	for _, proto := range []string{"prometheus.WriteRequest", "io.prometheus.write.v2.Request"} {
		t.Run(proto, func(t *testing.T) { testRemoteWriteToPrometheus(t, proto) })
	}
}

func testRemoteWriteToPrometheus(t *testing.T, proto string) {
	bin := prometheusBinary(t)
	promAddr := freePort(t)
	startPrometheus(t, bin, t.TempDir(), promAddr)

	app := risingApp(t)
	dir := t.TempDir()
	addr := freePort(t)
	v := startVigil(t, writeConfig(t, dir, remoteWriteConfigProto(filepath.Join(dir, "data"), addr, app.hostPort(), promAddr, proto)), addr)

	time.Sleep(6 * time.Second)
	got := requireSameSamples(t, v, promAddr, time.Minute, time.Now().Add(-2*time.Second))
	for _, samples := range got {
		require.GreaterOrEqual(t, len(samples), 3, "a few scrapes' samples")
	}

	q := v.readyQueues()
	require.Len(t, q, 1)
	require.Equal(t, "backend", q[0].Name)
	require.Equal(t, "http://"+promAddr, q[0].URL)
	require.GreaterOrEqual(t, q[0].Shards, 1.0)
	require.Greater(t, q[0].SamplesSent, 0.0)
	require.WithinDuration(t, time.Now(), q[0].LastSend, 30*time.Second)
	require.Empty(t, q[0].LastError)

	// vigil's own series go too, with the same external labels.
	self := rangeSamples(t, "http://"+promAddr, `up{app="vigil", pod="checkout-0", replica="a"}[1m]`, time.Now(), nil)
	require.Len(t, self, 1, "vigil's self-scrape reaches the backend")

	// A reload applies new external labels: the queue restarts with them.
	writeConfig(t, dir, strings.Replace(remoteWriteConfigProto(filepath.Join(dir, "data"), addr, app.hostPort(), promAddr, proto),
		"replica: a", "replica: b", 1))
	resp, err := http.Post(v.url("/-/reload"), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		return len(rangeSamples(t, "http://"+promAddr, `cpu_usage{pod="checkout-0", replica="b"}[1m]`, time.Now(), nil)) > 0
	}, 60*time.Second, 500*time.Millisecond, "the reloaded external labels never reached the backend")
}

// TestRemoteWriteOutage stops the backend for a while (30s, or
// VIGIL_E2E_OUTAGE) and checks that every sample vigil stored meanwhile
// reaches it afterwards, from the WAL, and that /ready showed the error.
func TestRemoteWriteOutage(t *testing.T) {
	outage := outageDuration(t)
	bin := prometheusBinary(t)
	promAddr := freePort(t)
	promDir := t.TempDir()
	prom := startPrometheus(t, bin, promDir, promAddr)

	app := risingApp(t)
	dir := t.TempDir()
	addr := freePort(t)
	start := time.Now()
	v := startVigil(t, writeConfig(t, dir, remoteWriteConfig(filepath.Join(dir, "data"), addr, app.hostPort(), promAddr)), addr)
	require.Eventually(t, func() bool {
		return len(rangeSamples(t, "http://"+promAddr, `cpu_usage{pod="checkout-0"}[1m]`, time.Now(), nil)) > 0
	}, 60*time.Second, 500*time.Millisecond, "nothing reached the backend before the outage")

	prom.stop()
	down := time.Now()
	require.Eventually(t, func() bool {
		q := v.readyQueues()
		return len(q) == 1 && q[0].LastError != "" && q[0].LastErrorTime.After(down)
	}, 30*time.Second, 500*time.Millisecond, "/ready never showed the send error")
	t.Logf("during the outage /ready said: %+v", v.readyQueues()[0])
	time.Sleep(time.Until(down.Add(outage)))
	t.Logf("after %s of outage /ready says: %+v", outage, v.readyQueues()[0])

	startPrometheus(t, bin, promDir, promAddr)
	at := time.Now().Add(-2 * time.Second)
	window := at.Sub(start) + 10*time.Second
	got := requireSameSamples(t, v, promAddr, window, at)
	for _, samples := range got {
		var inOutage int
		for _, s := range samples {
			if ts := s.Timestamp.Time(); ts.After(down) && ts.Before(down.Add(outage)) {
				inOutage++
			}
		}
		require.GreaterOrEqual(t, inOutage, int(outage.Seconds())-3, "the outage's samples arrived")
	}
}
