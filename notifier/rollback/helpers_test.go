package rollback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

const testSecret = "s3cr3t-rollback-signing-key"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable fake clock.
type clock struct {
	mtx sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	c.now = t
}

func (c *clock) Add(d time.Duration) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	c.now = c.now.Add(d)
}

// call is one request the deploy controller stand-in received.
type call struct {
	header   http.Header
	body     []byte
	verified bool
}

// controller stands in for the deploy controller: it checks the Standard
// Webhooks signature with its own HMAC, records every call and answers with
// the scripted statuses in turn (200 once they run out).
type controller struct {
	srv    *httptest.Server
	key    []byte
	mtx    sync.Mutex
	calls  []call
	status []int
	header http.Header // extra response headers
}

func newController(t testing.TB, key []byte, status ...int) *controller {
	c := &controller{key: key, status: status, header: http.Header{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *controller) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.mtx.Lock()
	c.calls = append(c.calls, call{header: r.Header.Clone(), body: body, verified: verifySignature(c.key, r.Header, body)})
	code := http.StatusOK
	if len(c.status) > 0 {
		code, c.status = c.status[0], c.status[1:]
	}
	for k, v := range c.header {
		w.Header()[k] = v
	}
	c.mtx.Unlock()
	w.WriteHeader(code)
	_, _ = io.WriteString(w, http.StatusText(code))
}

func (c *controller) Calls() []call {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	return append([]call(nil), c.calls...)
}

// verifySignature is an independent Standard Webhooks check: HMAC-SHA256 of
// "id.timestamp.body", base64, "v1," prefix, any of the space-separated
// signatures.
func verifySignature(key []byte, h http.Header, body []byte) bool {
	id, ts := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp")
	if id == "" || ts == "" {
		return false
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte("."))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("Webhook-Signature")) {
		if v, ok := strings.CutPrefix(sig, "v1,"); ok && hmac.Equal([]byte(v), []byte(want)) {
			return true
		}
	}
	return false
}

func testConfig(url string) *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: config.EnvProduction,
		Rollback: config.RollbackConfig{
			Webhook:  &config.WebhookConfig{URL: url, Secret: testSecret, Timeout: config.Duration(5 * time.Second)},
			When:     map[string]string{"severity": "critical", "app": "app"},
			Window:   config.Duration(30 * time.Minute),
			Cooldown: config.Duration(time.Hour),
		},
	}
}

func newManager(t *testing.T, kv notifier.KV, clk *clock, cfg *config.Config) *Manager {
	t.Helper()
	m, err := New(&Options{KV: kv, Clock: clk.Now, ExternalURL: "https://vigil.example/"},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(cfg))
	return m
}

func incident(id string, activeAt time.Time, labels map[string]string) *notifier.Incident {
	return &notifier.Incident{
		ID:          id,
		Fingerprint: "fp-" + id,
		State:       notifier.StateTriggered,
		Priority:    notifier.PriorityCritical,
		Level:       0,
		CreatedAt:   activeAt.Add(5 * time.Minute),
		Alert: notifier.Alert{
			Name:        "high_error_rate",
			Fingerprint: "fp-" + id,
			Labels:      labels,
			Annotations: map[string]string{"summary": "error rate above 5%"},
			Value:       12.5,
			ActiveAt:    activeAt,
			FiredAt:     activeAt.Add(5 * time.Minute),
		},
	}
}

func criticalApp() map[string]string {
	return map[string]string{"alertname": "high_error_rate", "severity": "critical", "app": "app", "service": "checkout"}
}

func decisionCount(m *Manager, d string) float64 {
	return testutil.ToFloat64(m.decisions.WithLabelValues(d))
}
