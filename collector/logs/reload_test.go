package logs

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hungLoki is a Loki stand-in whose pushes wait until release, then go to
// rcv. entered receives once a push is waiting.
type hungLoki struct {
	srv     *httptest.Server
	rcv     *lokiReceiver
	entered chan struct{}
	hang    chan struct{}
	once    sync.Once
}

func newHungLoki(t *testing.T) *hungLoki {
	h := &hungLoki{rcv: newLokiReceiver(t), entered: make(chan struct{}, 1), hang: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		select {
		case <-h.hang:
		case <-req.Context().Done():
			return
		}
		h.rcv.serve(w, req)
	}))
	t.Cleanup(h.srv.Close)
	// Runs before srv.Close: Close waits for the handlers.
	t.Cleanup(h.release)
	return h
}

func (h *hungLoki) url() string { return h.srv.URL + "/loki/api/v1/push" }

func (h *hungLoki) release() { h.once.Do(func() { close(h.hang) }) }

// within fails the test unless ch delivers before the hang guard; the
// guard only turns a hang into a failure, no outcome depends on it.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// merged adds up the lines two receivers got.
func merged(a, b *lokiReceiver) map[string]int {
	_, la := a.received()
	_, lb := b.received()
	for k, v := range lb {
		la[k] += v
	}
	return la
}

// TestReloadWhileLokiHangs: a reload that moves the logs to another Loki
// while the old one holds a push returns at once, and Status answers while
// the old client is still waiting for that push (before, the reload held
// the manager's lock until the old client flushed, up to StopTimeout).
// The new tailers start only once the old client is done, where its
// acknowledgements end: every line reaches one Loki or the other exactly
// once, and the output file exactly once.
func TestReloadWhileLokiHangs(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	oldLoki, newLoki := newHungLoki(t), newLokiReceiver(t)
	opts := testOptions(filepath.Join(dir, "data"))
	// Long enough that the old client is not aborted during the test.
	opts.StopTimeout = 30 * time.Second
	r := start(t, opts, testConfig(src, out, oldLoki.url()))
	a := filepath.Join(src, "a.log")

	appendLines(t, a, 0, 100)
	within(t, "a push to the old Loki", oldLoki.entered)
	r.m.mtx.Lock()
	old := r.m.shipper
	r.m.mtx.Unlock()

	applied := make(chan error, 1)
	go func() { applied <- r.m.ApplyConfig(testConfig(src, out, newLoki.url())) }()
	within(t, "the old client to be closed", old.stop)
	statuses := make(chan []LogStatus, 1)
	go func() { statuses <- r.m.Status() }()
	var st []LogStatus
	select {
	case st = <-statuses:
	case <-old.done:
		t.Fatal("Status waited for the old Loki client to flush")
	}
	select {
	case err := <-applied:
		require.NoError(t, err)
	case <-old.done:
		t.Fatal("ApplyConfig waited for the old Loki client to flush")
	}
	select {
	case <-old.done:
		t.Fatal("the old client finished although its push still hangs")
	default:
	}
	require.Len(t, st, 1)
	require.True(t, st[0].Loki)
	require.Empty(t, st[0].LokiError)

	// Lines written while the old client drains wait for it.
	appendLines(t, a, 100, 150)
	total, _ := newLoki.received()
	require.Zero(t, total, "a tailer started before the old client was done")

	oldLoki.release()
	within(t, "the old client to finish", old.done)
	eventually(t, "150 lines at the two Lokis", func() bool { return len(merged(oldLoki.rcv, newLoki)) >= 150 })
	eventually(t, "150 lines in the output file", func() bool { return len(outputLines(t, out)) >= 150 })
	r.stop(t)
	oldTotal, _ := oldLoki.rcv.received()
	require.Positive(t, oldTotal, "the old Loki got the push it held")
	requireExactlyOnce(t, "Loki", merged(oldLoki.rcv, newLoki), 150)
	requireExactlyOnce(t, "output file", outputLines(t, out), 150)
}

// TestReloadWhileLokiFails: the old Loki answers 503 to every push; the
// reload gives up on it after StopTimeout, and the lines it never took go
// to the new Loki, exactly once, without being written twice.
func TestReloadWhileLokiFails(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	oldLoki, newLoki := newLokiReceiver(t), newLokiReceiver(t)
	oldLoki.failures.Store(1 << 40)
	opts := testOptions(filepath.Join(dir, "data"))
	opts.StopTimeout = 300 * time.Millisecond
	opts.LokiMaxRetries = 1 << 20 // never dropped: only the abort ends the push
	r := start(t, opts, testConfig(src, out, oldLoki.url()))
	a := filepath.Join(src, "a.log")

	appendLines(t, a, 0, 100)
	eventually(t, "a failed push", func() bool { return oldLoki.failed.Load() > 0 })
	require.NoError(t, r.m.ApplyConfig(testConfig(src, out, newLoki.url())))
	appendLines(t, a, 100, 150)
	waitReceived(t, newLoki, 150)
	eventually(t, "150 lines in the output file", func() bool { return len(outputLines(t, out)) >= 150 })
	r.stop(t)
	total, _ := oldLoki.received()
	require.Zero(t, total)
	_, lines := newLoki.received()
	requireExactlyOnce(t, "Loki", lines, 150)
	requireExactlyOnce(t, "output file", outputLines(t, out), 150)
}

// TestStopWhileOldLokiDrains: Run stopped while a Loki client replaced by a
// reload still holds lines waits for it, and saves the positions its last
// answers moved.
func TestStopWhileOldLokiDrains(t *testing.T) {
	dir := t.TempDir()
	src, dataDir := filepath.Join(dir, "src"), filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(src, 0o755))
	oldLoki, newLoki := newHungLoki(t), newLokiReceiver(t)
	opts := testOptions(dataDir)
	opts.StopTimeout = 30 * time.Second
	r := start(t, opts, testConfig(src, "", oldLoki.url()))
	a := filepath.Join(src, "a.log")
	appendLines(t, a, 0, 100)
	size := fileSize(t, a)
	within(t, "a push to the old Loki", oldLoki.entered)
	r.m.mtx.Lock()
	old := r.m.shipper
	r.m.mtx.Unlock()
	require.NoError(t, r.m.ApplyConfig(testConfig(src, "", newLoki.url())))

	r.cancel()
	r.cancel = nil
	oldLoki.release()
	require.NoError(t, within(t, "Run to return", r.done))
	select {
	case <-old.done:
	default:
		t.Fatal("Run returned before the old Loki client was done")
	}
	require.Equal(t, size, savedPosition(t, dataDir, a).Offset, "the old client's last answers are saved")
	_, lines := oldLoki.rcv.received()
	requireExactlyOnce(t, "old Loki", lines, 100)
	total, _ := newLoki.received()
	require.Zero(t, total)
}
