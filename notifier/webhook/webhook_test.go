package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

const testSecret = "s3cret-signing-value"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testMessage(kind notifier.Kind) *notifier.Message {
	m := &notifier.Message{
		DeliveryID:  "dlv_01HZX",
		Kind:        kind,
		Level:       1,
		LevelName:   "development",
		Service:     "checkout",
		ExternalURL: "http://vigil.example:9090",
		CreatedAt:   t0.Add(time.Minute),
		Incident: notifier.Incident{
			ID:          "inc-42",
			Fingerprint: "a1b2c3",
			State:       notifier.StateTriggered,
			Priority:    notifier.PriorityCritical,
			Level:       1,
			Alert: notifier.Alert{
				Name:         "high_cpu",
				Fingerprint:  "a1b2c3",
				Labels:       map[string]string{"alertname": "high_cpu", "severity": "critical", "app": "app"},
				Annotations:  map[string]string{"summary": "CPU above 80%"},
				Value:        93.5,
				ActiveAt:     t0,
				FiredAt:      t0.Add(5 * time.Minute),
				GeneratorURL: "http://vigil.example:9090/graph?g0.expr=cpu_usage",
			},
			NextDeadline: t0.Add(2 * time.Hour),
			CreatedAt:    t0.Add(5 * time.Minute),
		},
	}
	if kind == notifier.KindResolved {
		m.Incident.State = notifier.StateResolved
		m.Incident.Alert.ResolvedAt = t0.Add(time.Hour)
		m.Incident.NextDeadline = time.Time{}
	}
	return m
}

// request is what a test receiver saw.
type request struct {
	header http.Header
	body   []byte
}

// recorder is a webhook endpoint that answers with the statuses it is given,
// in turn, then 200.
type recorder struct {
	mtx      sync.Mutex
	reqs     []request
	statuses []int
	headers  http.Header
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mtx.Lock()
	rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: body})
	status := http.StatusOK
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	for k, v := range rc.headers {
		w.Header()[k] = v
	}
	rc.mtx.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write([]byte("status " + strconv.Itoa(status)))
}

func (rc *recorder) requests() []request {
	rc.mtx.Lock()
	defer rc.mtx.Unlock()
	return append([]request(nil), rc.reqs...)
}

func newTestReceiver(t *testing.T, url string, opts ...Option) *Receiver {
	t.Helper()
	r, err := New("ops", &config.WebhookConfig{URL: url, Secret: config.Secret(testSecret)}, opts...)
	require.NoError(t, err)
	return r
}

// amV4 is Alertmanager's version 4 webhook message as its documentation
// describes it; amcompat_test.go checks the same against Alertmanager's own
// template.Data.
type amV4 struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

// incidentPart is vigil's addition as a receiver that knows vigil reads it.
type incidentPart struct {
	Incident struct {
		ID        string    `json:"id"`
		State     string    `json:"state"`
		Level     int       `json:"level"`
		LevelName string    `json:"levelName"`
		Priority  string    `json:"priority"`
		Deadline  time.Time `json:"deadline"`
		Kind      string    `json:"kind"`
		URL       string    `json:"url"`
	} `json:"incident"`
}

func TestNotifyPayloadAndSignature(t *testing.T) {
	for _, tc := range []struct {
		kind       notifier.Kind
		wantStatus string
	}{
		{notifier.KindFiring, "firing"},
		{notifier.KindEscalation, "firing"},
		{notifier.KindAcknowledged, "firing"},
		{notifier.KindResolved, "resolved"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			rc := &recorder{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			sendTime := t0.Add(3 * time.Hour)
			r := newTestReceiver(t, srv.URL+"/hook", WithClock(func() time.Time { return sendTime }))
			m := testMessage(tc.kind)

			retry, err := r.Notify(context.Background(), m)
			require.NoError(t, err)
			require.False(t, retry)

			reqs := rc.requests()
			require.Len(t, reqs, 1)
			h, body := reqs[0].header, reqs[0].body
			require.Equal(t, "application/json", h.Get("Content-Type"))
			require.Equal(t, m.DeliveryID, h.Get("webhook-id"))
			require.Equal(t, strconv.FormatInt(sendTime.Unix(), 10), h.Get("webhook-timestamp"), "timestamp is the send time, not the message's")
			require.True(t, verify(t, []byte(testSecret), h, body), "signature must verify independently")
			require.NotContains(t, string(body), testSecret)

			var am amV4
			require.NoError(t, json.Unmarshal(body, &am))
			require.Equal(t, "4", am.Version)
			require.Equal(t, tc.wantStatus, am.Status)
			require.Equal(t, "ops", am.Receiver)
			require.NotEmpty(t, am.GroupKey)
			require.Equal(t, "http://vigil.example:9090", am.ExternalURL)
			require.Equal(t, map[string]string{"alertname": "high_cpu"}, am.GroupLabels)
			require.Equal(t, "critical", am.CommonLabels["severity"])
			require.Equal(t, "CPU above 80%", am.CommonAnnotations["summary"])
			require.Len(t, am.Alerts, 1)
			a := am.Alerts[0]
			require.Equal(t, tc.wantStatus, a.Status)
			require.Equal(t, "a1b2c3", a.Fingerprint)
			require.True(t, a.StartsAt.Equal(t0))
			require.Equal(t, m.Incident.Alert.GeneratorURL, a.GeneratorURL)
			if tc.kind == notifier.KindResolved {
				require.True(t, a.EndsAt.Equal(t0.Add(time.Hour)))
			} else {
				require.True(t, a.EndsAt.IsZero())
			}

			var inc incidentPart
			require.NoError(t, json.Unmarshal(body, &inc))
			require.Equal(t, "inc-42", inc.Incident.ID)
			require.Equal(t, string(m.Incident.State), inc.Incident.State)
			require.Equal(t, 1, inc.Incident.Level)
			require.Equal(t, "development", inc.Incident.LevelName)
			require.Equal(t, "critical", inc.Incident.Priority)
			require.Equal(t, string(tc.kind), inc.Incident.Kind)
			require.True(t, inc.Incident.Deadline.Equal(m.Incident.NextDeadline))
			require.Equal(t, "http://vigil.example:9090/api/v1/incidents/inc-42", inc.Incident.URL)
		})
	}
}

func TestNotifyRetriesKeepWebhookID(t *testing.T) {
	rc := &recorder{statuses: []int{500, 502, 503}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	now := t0
	r := newTestReceiver(t, srv.URL, WithClock(func() time.Time { return now }))
	m := testMessage(notifier.KindFiring)

	// Drive the retries as the delivery queue does: Notify again while it
	// says retry.
	var attempts int
	for {
		attempts++
		require.LessOrEqual(t, attempts, 10)
		retry, err := r.Notify(context.Background(), m)
		if err == nil {
			break
		}
		require.True(t, retry, "a 5xx is worth retrying")
		var se *StatusError
		require.ErrorAs(t, err, &se)
		require.GreaterOrEqual(t, se.StatusCode(), 500)
		now = now.Add(30 * time.Second)
	}
	require.Equal(t, 4, attempts)

	reqs := rc.requests()
	require.Len(t, reqs, 4)
	for i, req := range reqs {
		require.Equal(t, m.DeliveryID, req.header.Get("webhook-id"), "attempt %d", i)
		require.Equal(t, strconv.FormatInt(t0.Add(time.Duration(i)*30*time.Second).Unix(), 10), req.header.Get("webhook-timestamp"), "attempt %d is stamped when sent", i)
		require.True(t, verify(t, []byte(testSecret), req.header, req.body), "attempt %d", i)
		require.Equal(t, string(reqs[0].body), string(req.body), "the body is the same on every attempt")
	}
}

func TestNotifyStatuses(t *testing.T) {
	now := t0
	for name, tc := range map[string]struct {
		status     int
		retryAfter string
		wantErr    bool
		wantRetry  bool
		wantAfter  time.Duration // -1: not a RetryAfter
	}{
		"200":                {status: 200, wantAfter: -1},
		"204":                {status: 204, wantAfter: -1},
		"400":                {status: 400, wantErr: true, wantAfter: -1},
		"401":                {status: 401, wantErr: true, wantAfter: -1},
		"404":                {status: 404, wantErr: true, wantAfter: -1},
		"302 not followed":   {status: 302, wantErr: true, wantAfter: -1},
		"500":                {status: 500, wantErr: true, wantRetry: true, wantAfter: -1},
		"503":                {status: 503, wantErr: true, wantRetry: true, wantAfter: -1},
		"429 seconds":        {status: 429, retryAfter: "2", wantErr: true, wantRetry: true, wantAfter: 2 * time.Second},
		"429 date":           {status: 429, retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat), wantErr: true, wantRetry: true, wantAfter: 90 * time.Second},
		"429 date in past":   {status: 429, retryAfter: now.Add(-time.Minute).Format(http.TimeFormat), wantErr: true, wantRetry: true, wantAfter: 0},
		"429 without header": {status: 429, wantErr: true, wantRetry: true, wantAfter: -1},
		"429 garbage header": {status: 429, retryAfter: "soon", wantErr: true, wantRetry: true, wantAfter: -1},
	} {
		t.Run(name, func(t *testing.T) {
			rc := &recorder{statuses: []int{tc.status}, headers: http.Header{}}
			if tc.retryAfter != "" {
				rc.headers.Set("Retry-After", tc.retryAfter)
			}
			if tc.status == 302 {
				rc.headers.Set("Location", "/elsewhere")
			}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			r := newTestReceiver(t, srv.URL, WithClock(func() time.Time { return now }))

			retry, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
			require.Equal(t, tc.wantRetry, retry)
			require.Len(t, rc.requests(), 1, "redirects are not followed")
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.status, se.StatusCode())
			require.Contains(t, err.Error(), "status "+strconv.Itoa(tc.status))
			var ra *notifier.RetryAfter
			if tc.wantAfter < 0 {
				require.False(t, errors.As(err, &ra), "no RetryAfter expected")
				return
			}
			require.ErrorAs(t, err, &ra)
			require.Equal(t, tc.wantAfter, ra.After)
		})
	}
}

func TestNotifyNetworkErrors(t *testing.T) {
	// A closed server: connection refused.
	srv := httptest.NewServer(http.NotFoundHandler())
	closedURL := srv.URL + "/services/T000/B000/tokenInPath?key=tokenInQuery"
	srv.Close()

	// A server that never answers within the configured timeout.
	// The handler reads the body first: only then does the server notice the
	// client hanging up. release frees it in any case before Close.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	for name, tc := range map[string]struct {
		url     string
		timeout time.Duration
	}{
		"refused": {url: closedURL},
		"timeout": {url: hang.URL + "/tokenInPath", timeout: 50 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := New("ops", &config.WebhookConfig{
				URL:     tc.url,
				Secret:  config.Secret(testSecret),
				Timeout: config.Duration(tc.timeout),
			})
			require.NoError(t, err)
			retry, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
			require.Error(t, err)
			require.True(t, retry, "network errors are worth retrying")
			require.NotContains(t, err.Error(), testSecret)
			require.NotContains(t, err.Error(), "tokenInPath", "the URL may carry a token")
			require.NotContains(t, err.Error(), "tokenInQuery")
		})
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad request", http.StatusBadRequest)
	}))
	defer srv.Close()
	r := newTestReceiver(t, srv.URL)
	_, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
	require.Error(t, err)
	require.NotContains(t, err.Error(), testSecret)

	// A bad whsec_ secret is refused at New, without echoing it.
	_, err = New("ops", &config.WebhookConfig{URL: srv.URL, Secret: "whsec_!!not-base64!!"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "!!not-base64!!")
}

func TestNewValidates(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg     *config.WebhookConfig
		wantErr string
	}{
		"nil":       {cfg: nil, wantErr: "no config"},
		"relative":  {cfg: &config.WebhookConfig{URL: "/hook"}, wantErr: "absolute"},
		"ftp":       {cfg: &config.WebhookConfig{URL: "ftp://host/hook"}, wantErr: "absolute"},
		"bad url":   {cfg: &config.WebhookConfig{URL: "http://host/%zz?token=abc123"}, wantErr: "bad url"},
		"good":      {cfg: &config.WebhookConfig{URL: "https://hooks.example/ops"}},
		"no secret": {cfg: &config.WebhookConfig{URL: "http://127.0.0.1:1/x"}},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := New("ops", tc.cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, DefaultTimeout, r.timeout)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "abc123")
		})
	}
}

func TestUnsignedWithoutSecret(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r, err := New("ops", &config.WebhookConfig{URL: srv.URL})
	require.NoError(t, err)
	_, err = r.Notify(context.Background(), testMessage(notifier.KindFiring))
	require.NoError(t, err)
	h := rc.requests()[0].header
	require.Equal(t, "dlv_01HZX", h.Get("webhook-id"))
	require.Empty(t, h.Get("webhook-signature"))
}

// BenchmarkNotify measures signed deliveries to a local receiver over
// keep-alive connections (the receiver side of the ≥1,000 deliveries/s target;
// the store is not involved).
func BenchmarkNotify(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	r, err := New("ops", &config.WebhookConfig{URL: srv.URL, Secret: config.Secret(testSecret)})
	require.NoError(b, err)
	m := testMessage(notifier.KindFiring)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Notify(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

func TestRegistererCountsRequests(t *testing.T) {
	rc := &recorder{statuses: []int{500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	a := newTestReceiver(t, srv.URL, WithRegisterer(reg))
	b, err := New("other", &config.WebhookConfig{URL: srv.URL}, WithRegisterer(reg))
	require.NoError(t, err)
	_, _ = a.Notify(context.Background(), testMessage(notifier.KindFiring))
	_, _ = a.Notify(context.Background(), testMessage(notifier.KindFiring))
	_, _ = b.Notify(context.Background(), testMessage(notifier.KindFiring))
	require.Equal(t, 3, testutil.CollectAndCount(reg, "vigil_webhook_request_duration_seconds"), "one series per receiver and code")
}

// An incident of a group sends its first members as Alertmanager sends a
// group: one alert each, the rest counted as truncated, the labels they
// share as the common ones.
func TestPayloadOfAGroup(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	inc := notifier.Incident{ID: "i1", State: notifier.StateTriggered, Alert: notifier.Alert{
		Name: "high_cpu", Labels: map[string]string{"alertname": "high_cpu", "pod": "p0"},
		Annotations: map[string]string{"summary": "CPU"},
	}}
	for i := range 7 {
		mb := notifier.Member{Fingerprint: fmt.Sprintf("fp%d", i), State: notifier.MemberFiring, ActiveAt: t0,
			Labels: map[string]string{"alertname": "high_cpu", "pod": fmt.Sprintf("p%d", i)}}
		if i == 1 {
			mb.State, mb.ResolvedAt = notifier.MemberResolved, t0.Add(time.Minute)
		}
		inc.Members = append(inc.Members, mb)
	}
	p := newPayload("ops", &notifier.Message{Kind: notifier.KindFiring, Incident: inc})
	require.Len(t, p.Alerts, notifier.MemberSample)
	require.Equal(t, uint64(2), p.TruncatedAlerts)
	require.Equal(t, map[string]string{"alertname": "high_cpu"}, p.CommonLabels)
	require.Equal(t, 7, p.Incident.Members)
	require.Equal(t, 6, p.Incident.MembersFiring)
	require.Equal(t, "p1", p.Alerts[1].Labels["pod"])
	require.Equal(t, StatusResolved, p.Alerts[1].Status)
	require.Equal(t, t0.Add(time.Minute), p.Alerts[1].EndsAt)
	require.Equal(t, StatusFiring, p.Alerts[0].Status)
}
