package storage

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// receiver is a remote-write endpoint on 127.0.0.1 that decodes Prometheus's
// snappy protobuf WriteRequest and keeps every sample; while failing is set
// it answers 503 (a recoverable error: the sender retries).
type receiver struct {
	*httptest.Server
	failing atomic.Bool
	mtx     sync.Mutex
	samples map[string][]sample
}

type sample struct {
	T int64
	V float64
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{samples: map[string][]sample{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.failing.Load() {
			http.Error(w, "backend is down", http.StatusServiceUnavailable)
			return
		}
		req, err := remote.DecodeWriteRequest(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mtx.Lock()
		defer rc.mtx.Unlock()
		for _, ts := range req.Timeseries {
			ls := labels.NewScratchBuilder(len(ts.Labels))
			for _, l := range ts.Labels {
				ls.Add(l.Name, l.Value)
			}
			key := ls.Labels().String()
			for _, s := range ts.Samples {
				rc.samples[key] = append(rc.samples[key], sample{s.Timestamp, s.Value})
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) get(series string) []sample {
	rc.mtx.Lock()
	defer rc.mtx.Unlock()
	return append([]sample(nil), rc.samples[series]...)
}

func (rc *receiver) all() map[string][]sample {
	rc.mtx.Lock()
	defer rc.mtx.Unlock()
	return maps.Clone(rc.samples)
}

func remoteConfig(t *testing.T, endpoint string) *config.Config {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	rw := promconfig.DefaultRemoteWriteConfig
	rw.Name = "backend"
	rw.URL = &commoncfg.URL{URL: u}
	rw.QueueConfig.BatchSendDeadline = model.Duration(50 * time.Millisecond)
	rw.QueueConfig.MinBackoff = model.Duration(10 * time.Millisecond)
	rw.QueueConfig.MaxBackoff = model.Duration(100 * time.Millisecond)
	rw.MetadataConfig.Send = false
	return &config.Config{
		Global:      config.GlobalConfig{ExternalLabels: map[string]string{"pod": "checkout-0", "replica": "a"}},
		RemoteWrite: []config.RemoteWriteConfig{{RemoteWriteConfig: rw}},
	}
}

// TestRemoteSendsFromTheWAL appends through the fanout as vigil does and
// checks that the receiver gets every sample with the external labels, also
// those appended while it answered 503, and that Status tells the queue's
// state and last error.
func TestRemoteSendsFromTheWAL(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	db, err := Open(&Options{Dir: dir, Retention: time.Hour}, nil, reg)
	require.NoError(t, err)
	defer db.Close()
	r := NewRemote(dir, nil, nil, reg)
	defer r.Close()
	db.SetWriteNotified(r)
	rc := newReceiver(t)
	require.NoError(t, r.ApplyConfig(remoteConfig(t, rc.URL)))
	fan := promstorage.NewFanout(nil, db, r)

	// The queue sends the samples it reads from the WAL whose timestamps
	// are after its start; these are all a minute ahead.
	start := time.Now().Add(time.Minute).UnixMilli()
	var want []sample
	appendSamples := func(from, n int) {
		app := fan.Appender(context.Background())
		for i := from; i < from+n; i++ {
			s := sample{start + int64(i)*1000, float64(i)}
			_, err := app.Append(0, labels.FromStrings("__name__", "cpu_usage", "app", "checkout"), s.T, s.V)
			require.NoError(t, err)
			want = append(want, s)
		}
		require.NoError(t, app.Commit())
	}
	const series = `{__name__="cpu_usage", app="checkout", pod="checkout-0", replica="a"}`
	appendSamples(0, 10)
	// Notify as the TSDB does on every write: the queue may have started
	// after the first one.
	require.Eventually(t, func() bool { r.Notify(); return len(rc.get(series)) == 10 }, 30*time.Second, 20*time.Millisecond,
		"got %v", rc.all())

	st := r.Status()
	require.Len(t, st, 1)
	require.Equal(t, "backend", st[0].Name)
	require.Equal(t, rc.URL, st[0].URL)
	require.Equal(t, 10.0, st[0].SamplesSent)
	// Prometheus keeps the newest sent timestamp in whole seconds.
	require.Equal(t, time.UnixMilli(start+9000).UTC().Truncate(time.Second), st[0].LastSend)
	require.GreaterOrEqual(t, st[0].Shards, 1.0)
	require.Empty(t, st[0].LastError)

	// The backend goes down: what is appended meanwhile arrives afterwards.
	rc.failing.Store(true)
	appendSamples(10, 20)
	require.Eventually(t, func() bool { return r.Status()[0].LastError != "" }, 30*time.Second, 20*time.Millisecond)
	st = r.Status()
	require.Contains(t, st[0].LastError, "503")
	require.False(t, st[0].LastErrorTime.IsZero())
	require.Greater(t, st[0].SamplesRetried, 0.0)
	rc.failing.Store(false)
	require.Eventually(t, func() bool { r.Notify(); return len(rc.get(series)) == 30 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, want, rc.get(series), "every sample, in order, once")
	// Sent counts every attempt, retries included, as Prometheus does.
	sent := r.Status()[0].SamplesSent
	require.GreaterOrEqual(t, sent, 30.0)
	require.Equal(t, sent, testutil.ToFloat64(samplesTotal(t, reg)))

	// A reload without remote_write stops the queue.
	require.NoError(t, r.ApplyConfig(&config.Config{}))
	require.Empty(t, r.Status())
}

// samplesTotal finds prometheus_remote_storage_samples_total on reg, to show
// the queue's metrics are on the registry vigil serves.
func samplesTotal(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "prometheus_remote_storage_samples_total" {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 {
				return mf.GetMetric()[0].GetCounter().GetValue()
			})
		}
	}
	t.Fatal("prometheus_remote_storage_samples_total is not on the registry")
	return nil
}

func TestPromConfigCarriesExternalLabels(t *testing.T) {
	cfg := remoteConfig(t, "http://127.0.0.1:1/api/v1/write")
	pc := PromConfig(cfg)
	require.Equal(t, labels.FromStrings("pod", "checkout-0", "replica", "a"), pc.GlobalConfig.ExternalLabels)
	require.Len(t, pc.RemoteWriteConfigs, 1)
	require.Equal(t, "backend", pc.RemoteWriteConfigs[0].Name)
	require.Empty(t, PromConfig(&config.Config{}).RemoteWriteConfigs)
	cfg.Global.ExternalLabels["node"] = ""
	require.Equal(t, labels.FromStrings("pod", "checkout-0", "replica", "a"), PromConfig(cfg).GlobalConfig.ExternalLabels, "empty means unset")
}

func TestEndpointHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://mimir.example/api/v1/push?token=abc", "https://mimir.example"},
		{"http://127.0.0.1:9090/api/v1/write", "http://127.0.0.1:9090"},
		{"", ""},
	} {
		require.Equal(t, tc.want, endpointHost(tc.in), tc.in)
	}
}

// TestRemoteBadReloadKeepsQueues applies a config whose second entry
// Prometheus cannot build a client for (a CA file that is no certificate):
// the apply fails, the running queue stays tracked, and applying the good
// config again (the next reload) neither panics on metrics registered twice
// nor leaves a queue running that Close does not stop.
func TestRemoteBadReloadKeepsQueues(t *testing.T) {
	rc := newReceiver(t)
	dir := t.TempDir()
	db, err := Open(&Options{Dir: dir}, nil, nil)
	require.NoError(t, err)
	defer db.Close()
	r := NewRemote(dir, nil, nil, prometheus.NewRegistry())
	good := remoteConfig(t, rc.URL)
	require.NoError(t, r.ApplyConfig(good))

	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("not a certificate"), 0o600))
	bad := remoteConfig(t, rc.URL)
	second := remoteConfig(t, rc.URL+"/other").RemoteWrite[0]
	second.Name = "other"
	second.HTTPClientConfig.TLSConfig.CAFile = ca
	bad.RemoteWrite = append(bad.RemoteWrite, second)
	require.Error(t, r.ApplyConfig(bad))
	require.Len(t, r.Status(), 1)

	require.NotPanics(t, func() { require.NoError(t, r.ApplyConfig(good)) })
	require.Len(t, r.Status(), 1)
	require.NoError(t, r.Close())
	require.Empty(t, r.Status(), "every queue stops at Close")
}

// TestRemoteKeepsURLSecrets sends to an endpoint whose URL carries a
// password and a query token and which drops every connection: neither
// appears in vigil's log (Prometheus logs each queue's full URL) nor in the
// last error that /ready shows (the transport's error names the URL with
// its path and query).
func TestRemoteKeepsURLSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	dir := t.TempDir()
	db, err := Open(&Options{Dir: dir, Retention: time.Hour}, nil, nil)
	require.NoError(t, err)
	defer db.Close()
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := NewRemote(dir, nil, logger, prometheus.NewRegistry())
	defer r.Close()
	db.SetWriteNotified(r)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	u.User = url.UserPassword("vigil", "pw-SECRET")
	u.Path, u.RawQuery = "/push", "token=Q-SECRET"
	require.NoError(t, r.ApplyConfig(remoteConfig(t, u.String())))

	fan := promstorage.NewFanout(nil, db, r)
	app := fan.Appender(context.Background())
	_, err = app.Append(0, labels.FromStrings("__name__", "up"), time.Now().Add(time.Minute).UnixMilli(), 1)
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.Eventually(t, func() bool { r.Notify(); return r.Status()[0].LastError != "" }, 30*time.Second, 20*time.Millisecond)

	st := r.Status()[0]
	require.Equal(t, srv.URL, st.URL)
	require.Contains(t, st.LastError, srv.URL)
	for _, secret := range []string{"pw-SECRET", "Q-SECRET", "/push"} {
		require.NotContains(t, st.LastError, secret)
		require.NotContains(t, logs.String(), secret)
	}
}

// lockedBuffer is a bytes.Buffer for a log written from many goroutines.
type lockedBuffer struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.String()
}
