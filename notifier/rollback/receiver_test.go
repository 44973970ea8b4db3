package rollback

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// manualMessage returns a manager pointed at url and a rollback message.
func manualMessage(t *testing.T, clk *clock, cfg *config.Config) (*Manager, *notifier.Message) {
	t.Helper()
	m := newManager(t, notifier.NewMemKV(), clk, cfg)
	_, err := m.RecordDeploy(Deploy{Version: "1.0.0"})
	require.NoError(t, err)
	msg, _, err := m.Manual(context.Background(), "test", "alice")
	require.NoError(t, err)
	require.NotNil(t, msg)
	return m, msg
}

func TestReceiverRetriesKeepTheDeliveryID(t *testing.T) {
	raw := []byte("raw signing key bytes")
	for name, tc := range map[string]struct {
		secret string
		key    []byte
	}{
		"plain secret":  {testSecret, []byte(testSecret)},
		"whsec_ secret": {"whsec_" + base64.StdEncoding.EncodeToString(raw), raw},
	} {
		t.Run(name, func(t *testing.T) {
			ctl := newController(t, tc.key, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusOK)
			clk := newClock(t0)
			cfg := testConfig(ctl.srv.URL + "/rollback")
			cfg.Rollback.Webhook.Secret = config.Secret(tc.secret)
			m, msg := manualMessage(t, clk, cfg)

			for i, wantRetry := range []bool{true, true, false} {
				clk.Add(10 * time.Second)
				retry, err := m.Receiver().Notify(context.Background(), msg)
				require.Equal(t, wantRetry, retry, "attempt %d", i)
				if wantRetry {
					var sc notifier.StatusCoder
					require.ErrorAs(t, err, &sc)
					require.GreaterOrEqual(t, sc.StatusCode(), 500)
				} else {
					require.NoError(t, err)
				}
			}
			calls := ctl.Calls()
			require.Len(t, calls, 3)
			for i, c := range calls {
				require.True(t, c.verified, "attempt %d must verify", i)
				require.Equal(t, msg.DeliveryID, c.header.Get("Webhook-Id"))
				require.Equal(t, msg.DeliveryID, c.header.Get("Idempotency-Key"))
				// Each attempt is signed afresh with its own timestamp.
				require.Equal(t, strconv.FormatInt(t0.Add(time.Duration(i+1)*10*time.Second).Unix(), 10), c.header.Get("Webhook-Timestamp"))
				require.Equal(t, msg.Payload, c.body)
			}
		})
	}
}

func TestReceiverStatuses(t *testing.T) {
	httpDate := t0.Add(2 * time.Minute).Add(30 * time.Second).Format(http.TimeFormat)
	for name, tc := range map[string]struct {
		status     int
		retryAfter string
		wantRetry  bool
		wantErr    bool
		wantAfter  time.Duration // for 429
		// noAfter: a 429 without a readable Retry-After is retried on the
		// queue's own backoff, as a plain retryable error.
		noAfter bool
	}{
		"200":                  {status: 200},
		"202":                  {status: 202},
		"204":                  {status: 204},
		"302 is not followed":  {status: 302, wantErr: true},
		"400":                  {status: 400, wantErr: true},
		"401":                  {status: 401, wantErr: true},
		"409":                  {status: 409, wantErr: true},
		"500":                  {status: 500, wantRetry: true, wantErr: true},
		"504":                  {status: 504, wantRetry: true, wantErr: true},
		"429 seconds":          {status: 429, retryAfter: "7", wantRetry: true, wantErr: true, wantAfter: 7 * time.Second},
		"429 date":             {status: 429, retryAfter: httpDate, wantRetry: true, wantErr: true, wantAfter: 30 * time.Second},
		"429 no header":        {status: 429, wantRetry: true, wantErr: true, noAfter: true},
		"429 unreadable":       {status: 429, retryAfter: "soon", wantRetry: true, wantErr: true, noAfter: true},
		"429 date in the past": {status: 429, retryAfter: t0.Format(http.TimeFormat), wantRetry: true, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			ctl := newController(t, []byte(testSecret), tc.status)
			if tc.retryAfter != "" {
				ctl.header.Set("Retry-After", tc.retryAfter)
			}
			if tc.status == 302 {
				ctl.header.Set("Location", "/elsewhere")
			}
			clk := newClock(t0.Add(2 * time.Minute))
			m, msg := manualMessage(t, clk, testConfig(ctl.srv.URL))
			retry, err := m.Receiver().Notify(context.Background(), msg)
			require.Equal(t, tc.wantRetry, retry)
			require.Len(t, ctl.Calls(), 1, "exactly one request per attempt")
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			var se *StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.status, se.StatusCode())
			var ra *notifier.RetryAfter
			if tc.status == http.StatusTooManyRequests && !tc.noAfter {
				require.ErrorAs(t, err, &ra)
				require.Equal(t, tc.wantAfter, ra.After)
			} else {
				require.False(t, errors.As(err, &ra))
			}
		})
	}
}

func TestReceiverNetworkFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		m, msg := manualMessage(t, newClock(t0), testConfig(url))
		retry, err := m.Receiver().Notify(context.Background(), msg)
		require.Error(t, err)
		require.True(t, retry)
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		cfg := testConfig(srv.URL)
		cfg.Rollback.Webhook.Timeout = config.Duration(20 * time.Millisecond)
		m, msg := manualMessage(t, newClock(t0), cfg)
		retry, err := m.Receiver().Notify(context.Background(), msg)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, retry)
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctl := newController(t, []byte(testSecret))
		m, msg := manualMessage(t, newClock(t0), testConfig(ctl.srv.URL))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		retry, err := m.Receiver().Notify(ctx, msg)
		require.ErrorIs(t, err, context.Canceled)
		require.True(t, retry)
	})
}

func TestReceiverRejects(t *testing.T) {
	ctl := newController(t, []byte(testSecret))
	clk := newClock(t0)
	m, msg := manualMessage(t, clk, testConfig(ctl.srv.URL))
	for name, tc := range map[string]struct {
		mutate func(*notifier.Message)
		cfg    *config.Config
	}{
		"another kind": {mutate: func(m *notifier.Message) { m.Kind = notifier.KindFiring }},
		"no payload":   {mutate: func(m *notifier.Message) { m.Payload = nil }},
		"not configured": {cfg: func() *config.Config {
			c := testConfig("")
			c.Rollback.Webhook = nil
			return c
		}()},
	} {
		t.Run(name, func(t *testing.T) {
			mm := *msg
			if tc.mutate != nil {
				tc.mutate(&mm)
			}
			mgr := m
			if tc.cfg != nil {
				mgr = newManager(t, notifier.NewMemKV(), clk, tc.cfg)
			}
			retry, err := mgr.Receiver().Notify(context.Background(), &mm)
			require.Error(t, err)
			require.False(t, retry)
		})
	}
	require.Empty(t, ctl.Calls())
}

func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	const (
		password = "pa55-in-userinfo"
		token    = "t0ken-in-query"
	)
	secrets := []string{testSecret, password, token}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ctl := newController(t, []byte(testSecret), http.StatusBadRequest, http.StatusInternalServerError, http.StatusTooManyRequests)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	withCreds := func(base string) string {
		return strings.Replace(base, "http://", "http://deployer:"+password+"@", 1) + "/rollback?token=" + token
	}

	clk := newClock(t0)
	var errs []error
	for _, u := range []string{withCreds(ctl.srv.URL), withCreds(ctl.srv.URL), withCreds(ctl.srv.URL), withCreds(closed.URL), "http://127.0.0.1:1/%zz?token=" + token} {
		m, err := New(&Options{KV: notifier.NewMemKV(), Clock: clk.Now}, logger, prometheus.NewRegistry())
		require.NoError(t, err)
		cfg := testConfig(u)
		if err := m.ApplyConfig(cfg); err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = m.RecordDeploy(Deploy{Version: "1.0.0"})
		require.NoError(t, err)
		msg, _, err := m.Manual(context.Background(), "test", "alice")
		require.NoError(t, err)
		_, err = m.Receiver().Notify(context.Background(), msg)
		require.Error(t, err)
		errs = append(errs, err)
		// A second manual rollback is refused with the cooldown error.
		_, _, err = m.Manual(context.Background(), "again", "alice")
		require.ErrorIs(t, err, ErrCooldown)
		errs = append(errs, err)
	}
	// A whsec_ secret that is not base64 fails to sign without showing it.
	cfg := testConfig(ctl.srv.URL)
	cfg.Rollback.Webhook.Secret = "whsec_" + testSecret + "!!"
	m, msg := manualMessage(t, clk, cfg)
	_, err := m.Receiver().Notify(context.Background(), msg)
	require.Error(t, err)
	errs = append(errs, err)

	require.Len(t, errs, 10)
	for _, err := range errs {
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s)
		}
	}
	require.NotEmpty(t, logs.String())
	for _, s := range secrets {
		require.NotContains(t, logs.String(), s)
	}
	require.Len(t, ctl.Calls(), 3)
	for _, c := range ctl.Calls() {
		require.True(t, c.verified)
	}
}
