package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
)

// demo plays the whole loop on this machine in about two minutes: a small
// app whose error rate the demo raises, a receiver that prints what it gets,
// a deploy controller stand-in that prints rollback calls, and vigil itself
// (this binary, as a child process) with short response times. Everything
// listens on 127.0.0.1.
func demo(stdout, stderr io.Writer) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d := &demoRun{out: stdout, start: time.Now()}
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(stderr, "demo: %s\n", err)
		return 1
	}
	return 0
}

type demoRun struct {
	out   io.Writer
	start time.Time

	errorPercent atomic.Int64
	requests     atomic.Int64
	failures     atomic.Int64
	version      atomic.Value // string
	vigil        string       // base URL
	token        string       // the demo user's API token

	// The canary act: a second instance of the app running the next
	// version beside the first, empty until the act begins.
	canaryOn       atomic.Bool
	canaryRequests atomic.Int64
	canaryFailures atomic.Int64
}

func (d *demoRun) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func listenLocal() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func (d *demoRun) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "vigil-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The app: each scrape counts 200 more requests, errorPercent of them 5xx.
	d.version.Store("1.4.0")
	app, err := d.serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		d.requests.Add(200)
		d.failures.Add(2 * d.errorPercent.Load())
		fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total{code=\"200\"} %d\n", d.requests.Load()-d.failures.Load())
		fmt.Fprintf(w, "http_requests_total{code=\"500\"} %d\n", d.failures.Load())
		fmt.Fprintf(w, "# TYPE demo_build_info gauge\ndemo_build_info{version=%q} 1\n", d.version.Load())
	}))
	if err != nil {
		return err
	}
	// The canary: 200 more requests per scrape, 4% of them 5xx, once on.
	canary, err := d.serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !d.canaryOn.Load() {
			return
		}
		d.canaryRequests.Add(200)
		d.canaryFailures.Add(8)
		fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total{code=\"200\"} %d\n", d.canaryRequests.Load()-d.canaryFailures.Load())
		fmt.Fprintf(w, "http_requests_total{code=\"500\"} %d\n", d.canaryFailures.Load())
		fmt.Fprintf(w, "# TYPE demo_build_info gauge\ndemo_build_info{version=\"1.6.0\"} 1\n")
	}))
	if err != nil {
		return err
	}
	receiver, err := d.serve(http.HandlerFunc(d.receive))
	if err != nil {
		return err
	}
	deployer, err := d.serve(http.HandlerFunc(d.rollbackCall))
	if err != nil {
		return err
	}
	l, err := listenLocal()
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	d.vigil = "http://" + addr

	// Production refuses to start without users: the demo has one, with a
	// token made for this run.
	token, hash, err := auth.NewToken()
	if err != nil {
		return err
	}
	d.token = token
	cfg := filepath.Join(dir, "vigil.yaml")
	body := fmt.Sprintf(demoConfig, filepath.Join(dir, "data"), addr, app, receiver, deployer, canary) + demoAnalysisConfig +
		fmt.Sprintf("users:\n  - {name: demo-operator, role: admin, tokens: [%q]}\n", hash)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "vigil.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, self, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	d.say("vigil is starting on %s (config and data in %s)", d.vigil, dir)
	if err := d.waitFor(ctx, 30*time.Second, func() bool { return d.get("/ready") == nil }); err != nil {
		return fmt.Errorf("vigil did not become ready: %w", err)
	}
	d.say("ready. Response times are shortened for the demo: critical alerts escalate every 20s.")
	d.say("watch it on the operator page: %s/ (sign in with the demo's token %s)", d.vigil, d.token)

	if err := d.post("/api/v1/deploys", `{"service":"demo","version":"1.4.0","environment":"production"}`, nil); err != nil {
		return err
	}
	d.say("the deploy controller ships demo 1.5.0 over 1.4.0 (POST /api/v1/deploys)")
	d.version.Store("1.5.0")
	if err := d.post("/api/v1/deploys", `{"service":"demo","version":"1.5.0","environment":"production"}`, nil); err != nil {
		return err
	}
	d.say("the new version fails 30%% of its requests; the seed's high_error_rate rule (error_rate > 5 for 3s) will fire")
	d.errorPercent.Store(30)

	var incidentID string
	if err := d.waitFor(ctx, 60*time.Second, func() bool {
		incidentID = d.openIncident()
		return incidentID != ""
	}); err != nil {
		return fmt.Errorf("no incident opened: %w", err)
	}
	d.say("incident %s opened; Level 1 (support) is notified, and the deploy started within the rollback window", incidentID)

	if err := d.waitFor(ctx, 45*time.Second, func() bool { return d.incidentLevel(incidentID) >= 1 }); err != nil {
		return fmt.Errorf("no escalation: %w", err)
	}
	d.say("nobody acknowledged within 20s: escalated to Level 2 (development)")

	d.say("a developer acknowledges (POST /api/v1/incidents/%s/ack)", incidentID)
	if err := d.post("/api/v1/incidents/"+incidentID+"/ack", `{"by":"dev-on-call","comment":"rolling back 1.5.0"}`, nil); err != nil {
		return err
	}
	d.say("the rollback brings back 1.4.0: errors stop; the alert resolves once the last minute's error rate is under 5%%")
	d.version.Store("1.4.0")
	d.errorPercent.Store(0)
	if err := d.waitFor(ctx, 90*time.Second, func() bool { return d.incidentState(incidentID) == "resolved" }); err != nil {
		return fmt.Errorf("the incident did not resolve: %w", err)
	}
	time.Sleep(2 * time.Second) // let the resolve notifications arrive
	d.say("incident resolved; every level that was notified has been told.")
	if err := d.canaryAct(ctx); err != nil {
		return err
	}
	if err := d.missedBackup(ctx); err != nil {
		return err
	}
	d.say("Done in %s.", time.Since(d.start).Round(time.Second))
	return nil
}

// demoAnalysisConfig judges canary deploys every 3s for 5 steps: the
// canary fails when its error rate is more than twice the stable version's.
const demoAnalysisConfig = `analysis:
  interval: 3s
  steps: 5
  min_requests: 100
  thresholds:
    error_rate: {max: 5, max_ratio: 2}
`

// canaryAct ships 1.6.0 as a canary beside 1.4.0: it fails 4% of its
// requests, under the alert rule's 5% but four times the stable version's
// 1%, so its analysis fails and vigil asks the deploy controller to roll
// it back.
func (d *demoRun) canaryAct(ctx context.Context) error {
	d.errorPercent.Store(1)
	var dep struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := d.post("/api/v1/deploys", `{"service":"demo","version":"1.6.0","environment":"production","strategy":"canary"}`, &dep); err != nil {
		return err
	}
	d.canaryOn.Store(true)
	d.say("act 2: the deploy controller starts 1.6.0 as a canary beside 1.4.0 (strategy canary, deploy %s); vigil compares the two every 3s", dep.Data.ID)
	var a struct {
		Verdict    string `json:"verdict"`
		Reason     string `json:"reason"`
		IncidentID string `json:"incident_id"`
	}
	if err := d.waitFor(ctx, 60*time.Second, func() bool {
		resp, err := d.call(http.MethodGet, "/api/v1/deploys/"+dep.Data.ID+"/analysis", "")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&env) != nil || json.Unmarshal(env.Data, &a) != nil {
			return false
		}
		return a.Verdict != "" && (a.Verdict != "fail" || a.IncidentID != "")
	}); err != nil {
		return fmt.Errorf("the canary's analysis did not finish: %w", err)
	}
	d.say("canary analysis: %s (%s); incident %s (GET /api/v1/deploys/%s/analysis, and the page's Deploy analysis section)",
		strings.ToUpper(a.Verdict), a.Reason, a.IncidentID, dep.Data.ID)
	time.Sleep(2 * time.Second) // let the rollback call arrive
	d.canaryOn.Store(false)
	d.say("the deploy controller removes the canary: 1.4.0 serves alone")
	return nil
}

// missedBackup plays the backup watch (docs/dr-watch.md): the demo's backup
// block wants a backup every minute, and the backup job's last report is
// three minutes old, so vigil's own rule backup_missed fires; a fresh
// backup resolves it.
func (d *demoRun) missedBackup(ctx context.Context) error {
	last := time.Now().Add(-3 * time.Minute).UTC().Format(time.RFC3339)
	d.say("the backup job reports its last backup, from 3 minutes ago (POST /api/v1/backups); the backup block's schedule \"* * * * *\" wants one every minute")
	if err := d.post("/api/v1/backups", `{"time":"`+last+`","size":1048576,"ok":true,"location":"file:///var/backups/demo.tar.zst"}`, nil); err != nil {
		return err
	}
	var id string
	if err := d.waitFor(ctx, 30*time.Second, func() bool {
		id = d.openIncidentOf(config.BackupMissedRuleName)
		return id != ""
	}); err != nil {
		return fmt.Errorf("backup_missed did not fire: %w", err)
	}
	d.say("backup_missed fired: incident %s (vigil's own rule, from the backup block)", id)
	if err := d.post("/api/v1/backups", `{"size":1048576,"location":"file:///var/backups/demo-2.tar.zst"}`, nil); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 30*time.Second, func() bool { return d.incidentState(id) == "resolved" }); err != nil {
		return fmt.Errorf("backup_missed did not resolve: %w", err)
	}
	d.say("a fresh backup is recorded: backup_missed resolved. Backup watch done in %s.", time.Since(d.start).Round(time.Second))
	return nil
}

// openIncidentOf returns an open incident of the alert name, or "".
func (d *demoRun) openIncidentOf(alertname string) string {
	resp, err := d.call(http.MethodGet, "/api/v1/incidents?state=triggered", "")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var env struct {
		Data []struct {
			ID    string `json:"id"`
			Alert struct {
				Name string `json:"name"`
			} `json:"alert"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&env) != nil {
		return ""
	}
	for _, inc := range env.Data {
		if inc.Alert.Name == alertname {
			return inc.ID
		}
	}
	return ""
}

const demoConfig = `service: demo
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: info, format: text}
metrics: {interval: 1s}
collectors:
  app: {targets: ["%s", "%[6]s"], labels: {app: app}}
alerts:
  rules:
    - name: high_error_rate
      condition: error_rate > 5
      duration: 3s
      severity: critical
      labels: {app: app}
      summary: More than 5%% of requests fail
escalation:
  response_times: {critical: 20s, high: 40s, medium: 1m, low: 2m}
  levels:
    - {name: support, notify: [support-team]}
    - {name: development, notify: [development-team]}
    - {name: architecture, notify: [architecture-team]}
receivers:
  - {name: support-team, webhook: {url: "http://%[4]s/support", secret: demo-secret}}
  - {name: development-team, webhook: {url: "http://%[4]s/development", secret: demo-secret}}
  - {name: architecture-team, webhook: {url: "http://%[4]s/architecture", secret: demo-secret}}
backup:
  schedule: "* * * * *"
  retention: 1d
  storage: local
rollback:
  webhook: {url: "http://%[5]s/rollback", secret: demo-secret}
  when: {severity: critical, app: app}
  window: 10m
  cooldown: 10s
`

func (d *demoRun) serve(h http.Handler) (string, error) {
	l, err := listenLocal()
	if err != nil {
		return "", err
	}
	go func() { _ = http.Serve(l, h) }()
	return l.Addr().String(), nil
}

// receive prints what the webhook receiver gets.
func (d *demoRun) receive(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Status   string                               `json:"status"`
		Alerts   []struct{ Labels map[string]string } `json:"alerts"`
		Incident struct {
			ID        string `json:"id"`
			Kind      string `json:"kind"`
			LevelName string `json:"levelName"`
			Priority  string `json:"priority"`
		} `json:"incident"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := ""
	if len(p.Alerts) > 0 {
		name = p.Alerts[0].Labels["alertname"]
	}
	d.say("  %s team ← %s %s (level %s, priority %s, webhook-id %s)",
		strings.TrimPrefix(r.URL.Path, "/"), strings.ToUpper(p.Incident.Kind), name, p.Incident.LevelName, p.Incident.Priority, r.Header.Get("webhook-id"))
	w.WriteHeader(http.StatusNoContent)
}

// rollbackCall prints what the deploy controller stand-in gets.
func (d *demoRun) rollbackCall(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Service         string `json:"service"`
		BadVersion      string `json:"bad_version"`
		PreviousVersion string `json:"previous_version"`
		IncidentID      string `json:"incident_id"`
		Reason          string `json:"reason"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(body, &p)
	d.say("  deploy controller ← ROLLBACK %s %s → %s (incident %s, idempotency key %s, reason: %s)",
		p.Service, p.BadVersion, p.PreviousVersion, p.IncidentID, r.Header.Get("webhook-id"), p.Reason)
	w.WriteHeader(http.StatusAccepted)
}

func (d *demoRun) waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// call sends a request to vigil as the demo user.
func (d *demoRun) call(method, path, body string) (*http.Response, error) {
	req, err := http.NewRequest(method, d.vigil+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return http.DefaultClient.Do(req)
}

func (d *demoRun) get(path string) error {
	resp, err := d.call(http.MethodGet, path, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

func (d *demoRun) post(path, body string, out any) error {
	resp, err := d.call(http.MethodPost, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

type demoIncident struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Level int    `json:"level"`
}

func (d *demoRun) incidents(path string) []demoIncident {
	resp, err := d.call(http.MethodGet, path, "")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil
	}
	var list []demoIncident
	if err := json.Unmarshal(env.Data, &list); err == nil {
		return list
	}
	var one demoIncident
	if err := json.Unmarshal(env.Data, &one); err == nil && one.ID != "" {
		return []demoIncident{one}
	}
	return nil
}

func (d *demoRun) openIncident() string {
	for _, inc := range d.incidents("/api/v1/incidents?state=triggered") {
		return inc.ID
	}
	return ""
}

func (d *demoRun) incidentLevel(id string) int {
	for _, inc := range d.incidents("/api/v1/incidents/" + id) {
		return inc.Level
	}
	return -1
}

func (d *demoRun) incidentState(id string) string {
	for _, inc := range d.incidents("/api/v1/incidents/" + id) {
		return inc.State
	}
	return ""
}
