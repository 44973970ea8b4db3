package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

const testToken = "xoxb-test-token-value"

// call is one Web API call the fake Slack saw.
type call struct {
	method  string
	channel string
	ts      string
	text    string
	blocks  slack.Blocks
}

// fakeSlack records chat.postMessage and chat.update on a slacktest server.
// slacktest's own chat.postMessage only forwards posts to an RTM websocket
// (and blocks without one) and it has no chat.update, so both are installed
// through slacktest's Binder; the rest of the server is slacktest's.
type fakeSlack struct {
	mtx   sync.Mutex
	calls []call
	next  int
	// fail, when set, answers a call instead of the default handler.
	fail func(w http.ResponseWriter, method string) bool
	srv  *slacktest.Server
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	fs := &fakeSlack{}
	fs.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", fs.handle("chat.postMessage"))
		c.Handle("/chat.update", fs.handle("chat.update"))
	})
	fs.srv.Start()
	t.Cleanup(fs.srv.Stop)
	return fs
}

func (fs *fakeSlack) handle(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fs.mtx.Lock()
		defer fs.mtx.Unlock()
		if fs.fail != nil && fs.fail(w, method) {
			return
		}
		c := call{method: method, channel: r.PostForm.Get("channel"), ts: r.PostForm.Get("ts"), text: r.PostForm.Get("text")}
		if b := r.PostForm.Get("blocks"); b != "" {
			if err := json.Unmarshal([]byte(b), &c.blocks); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		if method == "chat.postMessage" {
			fs.next++
			// Slack answers with the channel id, not the name posted to.
			c.channel = "C" + strings.ToUpper(strings.TrimPrefix(c.channel, "#"))
			c.ts = fmt.Sprintf("1700000000.%06d", fs.next)
		}
		fs.calls = append(fs.calls, c)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": c.channel, "ts": c.ts, "text": c.text})
	}
}

func (fs *fakeSlack) recorded() []call {
	fs.mtx.Lock()
	defer fs.mtx.Unlock()
	return append([]call(nil), fs.calls...)
}

func (fs *fakeSlack) setFail(f func(w http.ResponseWriter, method string) bool) {
	fs.mtx.Lock()
	defer fs.mtx.Unlock()
	fs.fail = f
}

func newTestReceiver(t *testing.T, apiURL, channel string, kv notifier.KV) *Receiver {
	t.Helper()
	r, err := New("slack-"+channel, &config.SlackConfig{Token: testToken, Channel: channel, APIURL: apiURL}, kv, nil)
	require.NoError(t, err)
	return r
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testMessage(kind notifier.Kind) *notifier.Message {
	m := &notifier.Message{
		DeliveryID:  "dlv-1",
		Kind:        kind,
		Level:       0,
		LevelName:   "support",
		ExternalURL: "http://vigil.example:9090/",
		CreatedAt:   t0,
		Incident: notifier.Incident{
			ID:       "inc-42",
			State:    notifier.StateTriggered,
			Priority: notifier.PriorityCritical,
			Alert: notifier.Alert{
				Name:   "high_cpu",
				Labels: map[string]string{"alertname": "high_cpu", "severity": "critical", "app": "app"},
				Annotations: map[string]string{
					"summary":     "CPU above 80% <for real>",
					"description": "cpu_usage is 93.5",
					"runbook_url": "https://runbooks.example/high_cpu",
					"dashboard":   "https://grafana.example/d/app",
				},
				Value: 93.5,
			},
			NextDeadline: t0.Add(time.Hour),
		},
	}
	switch kind {
	case notifier.KindEscalation:
		m.Level, m.LevelName = 1, "development"
	case notifier.KindAcknowledged:
		m.Incident.State = notifier.StateAcknowledged
		m.Incident.AcknowledgedBy = "alice"
		m.Incident.NextDeadline = time.Time{}
	case notifier.KindResolved:
		m.Incident.State = notifier.StateResolved
		m.Incident.AcknowledgedBy = "alice"
		m.Incident.ResolvedBy = "bob"
		m.Incident.NextDeadline = time.Time{}
	}
	return m
}

// buttons returns action id → value of the message's buttons.
func buttons(blocks slack.Blocks) map[string]string {
	out := map[string]string{}
	for _, b := range blocks.BlockSet {
		ab, ok := b.(*slack.ActionBlock)
		if !ok {
			continue
		}
		for _, e := range ab.Elements.ElementSet {
			if btn, ok := e.(*slack.ButtonBlockElement); ok {
				out[btn.ActionID] = btn.Value
			}
		}
	}
	return out
}

// allText is every text of the message, for containment checks.
func allText(t *testing.T, blocks slack.Blocks) string {
	t.Helper()
	b, err := json.Marshal(blocks)
	require.NoError(t, err)
	return string(b)
}

func TestPostThenUpdate(t *testing.T) {
	fs := newFakeSlack(t)
	kv := notifier.NewMemKV()
	support := newTestReceiver(t, fs.srv.GetAPIURL(), "#support", kv)
	dev := newTestReceiver(t, fs.srv.GetAPIURL(), "#dev", kv)
	ctx := context.Background()

	notify := func(r *Receiver, kind notifier.Kind) {
		t.Helper()
		retry, err := r.Notify(ctx, testMessage(kind))
		require.NoError(t, err)
		require.False(t, retry)
	}

	// Level 1: a new message in the level's channel, with both buttons.
	notify(support, notifier.KindFiring)
	calls := fs.recorded()
	require.Len(t, calls, 1)
	posted := calls[0]
	require.Equal(t, "chat.postMessage", posted.method)
	require.Equal(t, "CSUPPORT", posted.channel)
	require.Equal(t, map[string]string{ActionAck: "inc-42", ActionResolve: "inc-42"}, buttons(posted.blocks))
	require.IsType(t, &slack.HeaderBlock{}, posted.blocks.BlockSet[0])
	require.Equal(t, "high_cpu", posted.blocks.BlockSet[0].(*slack.HeaderBlock).Text.Text)
	text := allText(t, posted.blocks)
	for _, want := range []string{
		"critical", "support", "triggered", "93.5", "app=app",
		"CPU above 80% \\u0026lt;for real\\u0026gt;", "cpu_usage is 93.5",
		"https://runbooks.example/high_cpu|Runbook", "https://grafana.example/d/app|Dashboard",
		"http://vigil.example:9090/#incident-inc-42|Incident inc-42",
	} {
		require.Contains(t, text, want)
	}
	require.Contains(t, posted.text, "high_cpu")

	// Level 2 is another channel: its own new message.
	notify(dev, notifier.KindEscalation)
	calls = fs.recorded()
	require.Len(t, calls, 2)
	require.Equal(t, "chat.postMessage", calls[1].method)
	require.Equal(t, "CDEV", calls[1].channel)

	// The same channel again (repeat): the message is updated, not reposted.
	notify(support, notifier.KindRepeat)
	calls = fs.recorded()
	require.Len(t, calls, 3)
	require.Equal(t, "chat.update", calls[2].method)
	require.Equal(t, posted.channel, calls[2].channel)
	require.Equal(t, posted.ts, calls[2].ts)

	// Ack: same message (same ts), state shown, only Resolve left.
	notify(support, notifier.KindAcknowledged)
	calls = fs.recorded()
	require.Len(t, calls, 4)
	upd := calls[3]
	require.Equal(t, "chat.update", upd.method)
	require.Equal(t, posted.channel, upd.channel)
	require.Equal(t, posted.ts, upd.ts)
	require.Contains(t, allText(t, upd.blocks), "acknowledged")
	require.Contains(t, allText(t, upd.blocks), "Acknowledged by alice")
	require.Equal(t, map[string]string{ActionResolve: "inc-42"}, buttons(upd.blocks))

	// Resolve: both channels' messages updated, buttons gone.
	notify(support, notifier.KindResolved)
	notify(dev, notifier.KindResolved)
	calls = fs.recorded()
	require.Len(t, calls, 6)
	for _, c := range calls[4:] {
		require.Equal(t, "chat.update", c.method)
		require.Empty(t, buttons(c.blocks))
		require.Contains(t, allText(t, c.blocks), "Resolved by bob")
	}
	require.Equal(t, posted.ts, calls[4].ts)
	require.Equal(t, calls[1].ts, calls[5].ts)
}

func TestUpdateOfDeletedMessagePostsAgain(t *testing.T) {
	fs := newFakeSlack(t)
	r := newTestReceiver(t, fs.srv.GetAPIURL(), "#support", notifier.NewMemKV())
	_, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
	require.NoError(t, err)

	fs.setFail(func(w http.ResponseWriter, method string) bool {
		if method != "chat.update" {
			return false
		}
		_, _ = w.Write([]byte(`{"ok":false,"error":"message_not_found"}`))
		return true
	})
	retry, err := r.Notify(context.Background(), testMessage(notifier.KindAcknowledged))
	require.NoError(t, err)
	require.False(t, retry)
	calls := fs.recorded()
	require.Len(t, calls, 2)
	require.Equal(t, "chat.postMessage", calls[1].method)
}

func TestRateLimited(t *testing.T) {
	fs := newFakeSlack(t)
	fs.setFail(func(w http.ResponseWriter, method string) bool {
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	r := newTestReceiver(t, fs.srv.GetAPIURL(), "#support", notifier.NewMemKV())
	retry, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
	require.True(t, retry)
	var ra *notifier.RetryAfter
	require.ErrorAs(t, err, &ra)
	require.Equal(t, 2*time.Second, ra.After)

	// After the wait (the queue's job), the retry goes through.
	fs.setFail(nil)
	retry, err = r.Notify(context.Background(), testMessage(notifier.KindFiring))
	require.NoError(t, err)
	require.False(t, retry)
	require.Len(t, fs.recorded(), 1)
}

func TestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		answer    func(w http.ResponseWriter)
		wantRetry bool
	}{
		"invalid_auth":      {answer: slackError("invalid_auth")},
		"channel_not_found": {answer: slackError("channel_not_found")},
		"not_in_channel":    {answer: slackError("not_in_channel")},
		"internal_error":    {answer: slackError("internal_error"), wantRetry: true},
		"500": {answer: func(w http.ResponseWriter) {
			http.Error(w, "<html>oops</html>", http.StatusInternalServerError)
		}, wantRetry: true},
		"503": {answer: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}, wantRetry: true},
		"400": {answer: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			fs := newFakeSlack(t)
			fs.setFail(func(w http.ResponseWriter, _ string) bool { tc.answer(w); return true })
			kv := notifier.NewMemKV()
			r := newTestReceiver(t, fs.srv.GetAPIURL(), "#support", kv)
			retry, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
			require.Error(t, err)
			require.Equal(t, tc.wantRetry, retry)
			require.NotContains(t, err.Error(), testToken)
			stored, _ := kv.List("")
			require.Empty(t, stored, "nothing is stored for a failed post")
		})
	}

	t.Run("network", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		r := newTestReceiver(t, srv.URL, "#support", notifier.NewMemKV())
		retry, err := r.Notify(context.Background(), testMessage(notifier.KindFiring))
		require.Error(t, err)
		require.True(t, retry)
		require.NotContains(t, err.Error(), testToken)
	})
}

func slackError(code string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
	}
}

func TestNewValidates(t *testing.T) {
	kv := notifier.NewMemKV()
	for name, tc := range map[string]struct {
		cfg     *config.SlackConfig
		kv      notifier.KV
		wantErr string
	}{
		"nil":        {cfg: nil, kv: kv, wantErr: "no config"},
		"no token":   {cfg: &config.SlackConfig{Channel: "#x"}, kv: kv, wantErr: "no token"},
		"no channel": {cfg: &config.SlackConfig{Token: testToken}, kv: kv, wantErr: "no channel"},
		"no kv":      {cfg: &config.SlackConfig{Token: testToken, Channel: "#x"}, wantErr: "no store"},
		"good":       {cfg: &config.SlackConfig{Token: testToken, Channel: "#x"}, kv: kv},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New("s", tc.cfg, tc.kv, nil)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestRollbackKindRefused(t *testing.T) {
	r := newTestReceiver(t, "http://127.0.0.1:1/", "#support", notifier.NewMemKV())
	retry, err := r.Notify(context.Background(), testMessage(notifier.KindRollback))
	require.Error(t, err)
	require.False(t, retry)
}
