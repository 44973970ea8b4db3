package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// amtoolVersion is the amtool the test builds: the Alertmanager module of
// go.mod.
const amtoolVersion = "v0.31.0"

// amtoolBin returns amtool, built once into ~/.cache/vigil-test/amtool. It
// is built outside vigil's module graph (which lacks amtool's go.sum
// entries); the test is skipped only when the module proxy cannot be
// reached.
func amtoolBin(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	dir := filepath.Join(cache, "vigil-test", "amtool-"+amtoolVersion)
	bin := filepath.Join(dir, "amtool")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/prometheus/alertmanager/cmd/amtool@"+amtoolVersion)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOBIN="+dir, "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := string(out)
		for _, offline := range []string{"dial tcp", "no such host", "proxyconnect", "connection refused", "i/o timeout", "GOPROXY=off", "network is unreachable"} {
			if strings.Contains(text, offline) {
				t.Skipf("amtool %s cannot be built: the module proxy is not reachable:\n%s", amtoolVersion, text)
			}
		}
		t.Fatalf("building amtool %s: %v\n%s", amtoolVersion, err, text)
	}
	return bin
}

// TestAmtool: amtool, unchanged, adds and lists alerts through vigil and
// adds, lists and expires silences, with a bearer token from its HTTP
// config file. The alert opens an incident that notifies level 1.
func TestAmtool(t *testing.T) {
	amtool := amtoolBin(t)
	app := newGaugeApp(t, 10) // the rule does not fire
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, escalationConfig(dir, addr, app, hooks, "1h", "ingest: {resolve_timeout: 1h}\n"))
	v := startVigil(t, cfg, addr)

	httpConfig := filepath.Join(dir, "amtool-http.yml")
	require.NoError(t, os.WriteFile(httpConfig, []byte(fmt.Sprintf("authorization:\n  credentials: %q\n", e2eToken)), 0o600))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(amtool, append([]string{"--alertmanager.url=" + v.url("/"), "--http.config.file=" + httpConfig}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "amtool %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout.String(), stderr.String())
		return stdout.String()
	}

	run("alert", "add", "alertname=AmtoolAlert", "severity=critical", "app=app", "instance=pod-3",
		"--annotation=summary=added_by_amtool", "--generator-url=http://example.test/x")
	require.Eventually(t, func() bool { return len(hooks.accepted("/l1")) > 0 }, 20*time.Second, 100*time.Millisecond,
		"the alert amtool added notified no level 1")
	list := v.incidents()
	require.Len(t, list, 1)
	require.Contains(t, v.incidentBody(list[0].ID), `"name":"AmtoolAlert"`)
	require.Contains(t, v.incidentBody(list[0].ID), `"source":"api"`)

	type amtoolAlert struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Status      struct {
			State      string   `json:"state"`
			SilencedBy []string `json:"silencedBy"`
		} `json:"status"`
	}
	var alerts []amtoolAlert
	require.NoError(t, json.Unmarshal([]byte(run("alert", "query", "-o", "json", "alertname=AmtoolAlert")), &alerts))
	require.Len(t, alerts, 1)
	require.Equal(t, map[string]string{"alertname": "AmtoolAlert", "severity": "critical", "app": "app", "instance": "pod-3"}, alerts[0].Labels)
	require.Equal(t, "added_by_amtool", alerts[0].Annotations["summary"])
	require.Equal(t, "active", alerts[0].Status.State)

	id := strings.TrimSpace(run("silence", "add", "alertname=AmtoolAlert", "instance=~pod-.*", "--comment=maintenance", "--duration=2h"))
	require.NotEmpty(t, id)
	ids := strings.Fields(run("silence", "query", "-q", "alertname=AmtoolAlert"))
	require.Equal(t, []string{id}, ids)
	type amtoolSilence struct {
		ID        string `json:"id"`
		CreatedBy string `json:"createdBy"`
		Comment   string `json:"comment"`
		Matchers  []struct {
			Name    string `json:"name"`
			Value   string `json:"value"`
			IsRegex bool   `json:"isRegex"`
		} `json:"matchers"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	var sils []amtoolSilence
	require.NoError(t, json.Unmarshal([]byte(run("silence", "query", "-o", "json")), &sils))
	require.Len(t, sils, 1)
	require.Equal(t, "e2e", sils[0].CreatedBy, "the token's user silences")
	require.Equal(t, "maintenance", sils[0].Comment)
	require.Equal(t, "active", sils[0].Status.State)
	require.Len(t, sils[0].Matchers, 2)
	require.Equal(t, "pod-.*", sils[0].Matchers[1].Value)
	require.True(t, sils[0].Matchers[1].IsRegex)

	// Silenced: the default query leaves it out, --silenced shows it.
	require.NoError(t, json.Unmarshal([]byte(run("alert", "query", "-o", "json")), &alerts))
	require.Empty(t, alerts)
	require.NoError(t, json.Unmarshal([]byte(run("alert", "query", "-o", "json", "--silenced")), &alerts))
	require.Len(t, alerts, 1)
	require.Equal(t, []string{id}, alerts[0].Status.SilencedBy)

	run("silence", "expire", id)
	require.Empty(t, strings.Fields(run("silence", "query", "-q")))
	require.NoError(t, json.Unmarshal([]byte(run("silence", "query", "-o", "json", "--expired")), &sils))
	require.Len(t, sils, 1)
	require.Equal(t, "expired", sils[0].Status.State)

	// Resolved by amtool: an end in the past resolves the incident.
	run("alert", "add", "alertname=AmtoolAlert", "severity=critical", "app=app", "instance=pod-3",
		"--end="+time.Now().Add(-time.Second).Format(time.RFC3339))
	require.Eventually(t, func() bool {
		l := v.incidents()
		return len(l) == 1 && l[0].State == "resolved"
	}, 20*time.Second, 100*time.Millisecond, "the alert amtool resolved is still open")
}
