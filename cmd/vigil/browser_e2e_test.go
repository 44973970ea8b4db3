package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
)

// Tokens of the browser test's users.
const (
	devToken    = "vgl_browser-test-developer"
	viewerToken = "vgl_browser-test-viewer"
)

// chromiumPath finds Debian's Chromium, or VIGIL_CHROMIUM. make test
// installs the package when it is missing (scripts/test.sh).
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("VIGIL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("VIGIL_SKIP_BROWSER") == "1" {
		t.Skip("VIGIL_SKIP_BROWSER=1 and no Chromium")
	}
	t.Fatal("Chromium is not installed: `make test` installs Debian's package (apt-get install chromium); " +
		"or set VIGIL_CHROMIUM to a Chromium binary, or VIGIL_SKIP_BROWSER=1 to skip this test")
	return ""
}

// newChromium starts a headless Chromium with a fresh profile and returns
// its allocator context. The flags keep it off the network: this machine
// refuses every connection outside loopback.
func newChromium(t *testing.T) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	// Start the browser now, so that later contexts are tabs of it.
	require.NoError(t, chromedp.Do(browser), "starting Chromium")
	return browser
}

// newProfile opens a tab in its own browser context: cookies are not shared
// with other profiles.
func newProfile(t *testing.T, browser context.Context) context.Context {
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return ctx
}

// signInBrowser opens page (a URL of the operator page) and signs a profile
// in on the sign-in form it shows.
func signInBrowser(t *testing.T, ctx context.Context, page, token string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", token),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#incidents"),
	))
}

// count is the number of elements the selector matches.
func count(t *testing.T, ctx context.Context, selector string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", selector)))
	require.NoError(t, err)
	return n
}

// incidentState reads an incident through the API with the admin token.
func (p *vigilProc) incidentState(id string) (state, by string) {
	p.t.Helper()
	resp, err := http.Get(p.url("/api/v1/incidents/" + id))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	require.Equal(p.t, http.StatusOK, resp.StatusCode)
	var body struct {
		Data struct {
			State          string `json:"state"`
			AcknowledgedBy string `json:"acknowledgedBy"`
		} `json:"data"`
	}
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Data.State, body.Data.AcknowledgedBy
}

// Long content for the browser test: what operators' configs and deploy
// tools really send, which must not push the page sideways on a phone.
var (
	longAlert  = "checkout_payment_gateway_upstream_latency_budget_exhausted_for_european_customers"
	longURL    = "https://runbooks.example.com/checkout/payment-gateway/upstream-latency-budget-exhausted?region=eu-west-1&team=payments"
	longPath   = "/metrics/checkout-payment-gateway-upstream-exporter-with-a-path-that-goes-on-and-on"
	manyLabels = []string{
		"runbook: " + strconv.Quote(longURL), `team: "payments-and-checkout-platform"`, `region: "eu-west-1"`,
		`zone: "eu-west-1a"`, `cluster: "production-blue"`, `namespace: "checkout-payment-gateway"`,
		`pod: "checkout-payment-gateway-7f9c6d5b8-x2x9q"`, `owner: "someone.with.a.long.name@example.com"`,
		`tier: "frontend"`, `shard: "0042"`,
	}
)

// incidentOf is the id of an open or resolved incident of an alert, or "".
func (p *vigilProc) incidentOf(alert string) string {
	p.t.Helper()
	resp, err := http.Get(p.url("/api/v1/incidents"))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			ID    string `json:"id"`
			Alert struct {
				Name string `json:"name"`
			} `json:"alert"`
		} `json:"data"`
	}
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&body))
	for _, inc := range body.Data {
		if inc.Alert.Name == alert {
			return inc.ID
		}
	}
	return ""
}

// TestOperatorPageInBrowser is the browser test: in headless
// Chromium, a viewer sees the firing alert's incident without an Acknowledge
// button and a forged acknowledgement from its session is refused; a
// developer signs in, acknowledges it, and both the page and
// GET /api/v1/incidents/:id show it acknowledged. It leaves screenshots in
// docs/screenshots/.
func TestOperatorPageInBrowser(t *testing.T) {
	browser := newChromium(t)

	app := newGaugeApp(t, 95)
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	appLogs := filepath.Join(dir, "applogs")
	require.NoError(t, os.MkdirAll(appLogs, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(appLogs, "app.log"),
		[]byte(`{"level":"error","msg":"upstream timeout"}`+"\n"+`{"level":"info","msg":"request served"}`+"\n"), 0o644))
	cfg := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
collectors:
  app:
    targets: ["%[3]s", "127.0.0.1:1"]
    path: %[9]s
    labels: {app: app, %[10]s}
  logs:
    - {name: app, paths: ["%[8]s/*.log"], labels: {app: app}}
alerts:
  rules:
    - name: high_cpu
      condition: cpu_usage > 80
      duration: 1s
      severity: critical
      labels: {app: app}
      annotations: {summary: "CPU above 80%% on the checkout app"}
    - name: %[11]s
      condition: cpu_usage > 80
      duration: 1s
      severity: low
      labels: {app: app}
      annotations: {summary: "See %[12]s"}
escalation:
  levels:
    - {name: support, notify: [l1]}
    - {name: development, notify: [l2]}
receivers:
  - {name: l1, webhook: {url: "%[4]s/l1", secret: s1}}
  - {name: l2, webhook: {url: "%[4]s/l2", secret: s1}}
users:
  - {name: e2e, role: admin, tokens: [%[7]q]}
  - {name: dev, role: developer, tokens: [%[5]q]}
  - {name: vic, role: viewer, tokens: [%[6]q]}
`, filepath.Join(dir, "data"), addr, app.hostPort(), hooks.URL, auth.Hash(devToken), auth.Hash(viewerToken), auth.Hash(e2eToken), appLogs,
		longPath, strings.Join(manyLabels, ", "), longAlert, longURL)), 0o644))
	v := startVigil(t, cfg, addr)
	v.postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.4.2","environment":"production"}`)
	// Long content in every table, to see that none of it pushes the page
	// sideways on a phone.
	v.postJSON("/api/v1/deploys", fmt.Sprintf(`{"service":"checkout","version":"1.4.3-rc.1+build.20261202.sha.%s","environment":"production","by":%q}`,
		strings.Repeat("0123456789abcdef", 3), longURL))
	resp, err := http.Post(v.url("/api/v1/silences"), "application/json", strings.NewReader(fmt.Sprintf(`{"matchers":"{alertname=\"%s\", runbook=\"%s\"}","duration":"2h","comment":%q}`,
		longAlert, longURL, "muted while "+longURL+" is rebuilt")))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "adding the silence")

	var id, longID string
	require.Eventually(t, func() bool {
		id, longID = v.incidentOf("high_cpu"), v.incidentOf(longAlert)
		return id != "" && longID != "" && len(hooks.accepted("/l1")) > 0
	}, 30*time.Second, 100*time.Millisecond, "the alerts opened no incidents")
	// The long-named incident, resolved, fills the Recently resolved table.
	v.postJSON("/api/v1/incidents/"+longID+"/resolve", `{"comment":"done"}`)
	base := "http://" + addr
	card := "#incident-" + id

	// The viewer sees the incident, no buttons, and cannot forge an
	// acknowledgement even with its own session's CSRF token.
	viewer := newProfile(t, browser)
	signInBrowser(t, viewer, base+"/", viewerToken)
	require.NoError(t, chromedp.Do(viewer, chromedp.WaitVisible(card)))
	text, err := chromedp.Run(viewer, chromedp.Text(card))
	require.NoError(t, err)
	require.Contains(t, text, "high_cpu")
	require.Contains(t, text, "triggered")
	require.Contains(t, text, "L1 support")
	require.Contains(t, text, "95%", "the value is rounded and has its unit")
	// The card draws the expression over the last hour, threshold included.
	require.Equal(t, 1, count(t, viewer, card+" svg.graph"), "the incident has a graph")
	// A fresh vigil has seconds of data: a dot at "now", or a short line.
	require.Positive(t, count(t, viewer, card+" svg.graph path.series, "+card+" svg.graph circle.dot"), "the graph has the incident's series")
	require.Equal(t, 1, count(t, viewer, card+" svg.graph line.threshold"), "the graph has the threshold")
	// The description is for screen readers: not rendered, so read its text.
	desc, err := chromedp.Run(viewer, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%q).textContent", card+" svg.graph desc")))
	require.NoError(t, err)
	require.Contains(t, desc, "Threshold 80%")
	require.Equal(t, 0, count(t, viewer, "button.ack"), "a viewer's page has no Acknowledge button")
	require.Equal(t, 0, count(t, viewer, "button.resolve"), "a viewer's page has no Resolve button")
	status, err := chromedp.Run(viewer, chromedp.Evaluate[int](fmt.Sprintf(`(async () => {
		const csrf = document.querySelector('input[name=csrf]').value;
		const r = await fetch('/ui/incidents/%s/ack', {method: 'POST', credentials: 'same-origin',
			headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=' + encodeURIComponent(csrf)});
		return r.status;
	})()`, id), chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status, "a viewer's forged acknowledgement")
	state, _ := v.incidentState(id)
	require.Equal(t, "triggered", state, "the forged request changed the incident")

	// The developer acknowledges it from the page.
	dev := newProfile(t, browser)
	// The developer follows a link to the incident, as a Slack message
	// carries, and lands on it after signing in.
	signInBrowser(t, dev, base+"/#incident-"+id, devToken)
	here, err := chromedp.Run(dev, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(here, "/#incident-"+id), "after sign-in the browser is at %s", here)
	require.NoError(t, chromedp.Do(dev,
		chromedp.WaitVisible(card+" button.ack"),
		chromedp.SendKeys(card+" input[name=comment]", "on it"),
		chromedp.Click(card+" button.ack"),
		chromedp.WaitVisible("#notice"),
	))
	notice, err := chromedp.Run(dev, chromedp.Text("#notice"))
	require.NoError(t, err)
	require.Contains(t, notice, "acknowledged")
	acked, err := chromedp.Run(dev, chromedp.Text(card+" .acked"))
	require.NoError(t, err)
	require.Contains(t, acked, "by dev")
	notes, err := chromedp.Run(dev, chromedp.Text(card+" ul.notes"))
	require.NoError(t, err)
	require.Contains(t, notes, "dev: on it", "the comment typed with the acknowledgement is shown")
	cardText, err := chromedp.Run(dev, chromedp.Text(card+" .state"))
	require.NoError(t, err)
	require.Equal(t, "acknowledged", cardText)
	require.Equal(t, 0, count(t, dev, card+" button.ack"), "an acknowledged incident has no Acknowledge button")
	logsText, err := chromedp.Run(dev, chromedp.Text("#logs"))
	require.NoError(t, err)
	require.Contains(t, logsText, "app.log", "the page shows the log being followed")

	state, by := v.incidentState(id)
	require.Equal(t, "acknowledged", state)
	require.Equal(t, "dev", by)

	// Screenshots for the docs: a desk and a phone.
	shots := filepath.Join("..", "..", "docs", "screenshots")
	require.NoError(t, os.MkdirAll(shots, 0o755))
	png, err := chromedp.Run(dev, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(shots, "operator-page.png"), png, 0o644))
	require.NoError(t, chromedp.Do(dev,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(card),
	))
	width, err := chromedp.Run(dev, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	require.NoError(t, err)
	require.LessOrEqual(t, width, 390, "the page scrolls sideways on a phone")
	// Nor does any box on it: each section, table and scrolling box shows
	// all of its content within the phone's width.
	for _, sel := range []string{"#incidents", "#silences", "#alerts", "#deploys", "#collectors", "#logs", "#resolved"} {
		require.Equal(t, 1, count(t, dev, sel), "the phone's page has %s, with content", sel)
	}
	wide, err := chromedp.Run(dev, chromedp.Evaluate[[]string](`[...document.querySelectorAll(
		'main section, main table, main .scroll, main article, main svg')].flatMap(e => {
		const r = e.getBoundingClientRect();
		const name = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.closest('section') ? ' in #' + e.closest('section').id : '');
		return (e.scrollWidth > e.clientWidth + 1 || r.right > 390 || r.left < 0) ?
			[name + ': ' + Math.round(r.left) + '..' + Math.round(r.right) + ', content ' + e.scrollWidth + ' in ' + e.clientWidth] : [];
	})`))
	require.NoError(t, err)
	require.Empty(t, wide, "boxes wider than a 390 px phone")
	require.Greater(t, count(t, dev, "#alerts td.labels span"), 10, "the seeded labels are on the page")
	png, err = chromedp.Run(dev, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(shots, "operator-page-phone.png"), png, 0o644))
}
