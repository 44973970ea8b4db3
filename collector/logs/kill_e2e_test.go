package logs

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/stretchr/testify/require"
)

// pushLog is a Loki push endpoint on 127.0.0.1 that keeps every push it
// stored, in order, as the lines it carried. It answers after delay, so a
// kill often lands while a push is in flight.
type pushLog struct {
	srv   *http.Server
	url   string
	delay time.Duration
	// arrived receives a value when a push was stored (if none is waiting).
	arrived chan struct{}

	mtx    sync.Mutex
	pushes [][]string
	errs   []string
}

func newPushLog(t *testing.T, delay time.Duration) *pushLog {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &pushLog{delay: delay, arrived: make(chan struct{}, 1), url: "http://" + ln.Addr().String() + "/loki/api/v1/push"}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

func (p *pushLog) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err == nil && req.Header.Get("Content-Type") != "application/x-protobuf" {
		err = fmt.Errorf("content type %q", req.Header.Get("Content-Type"))
	}
	var raw []byte
	if err == nil {
		raw, err = snappy.Decode(nil, body)
	}
	var pr push.PushRequest
	if err == nil {
		err = pr.Unmarshal(raw)
	}
	if err != nil {
		p.mtx.Lock()
		p.errs = append(p.errs, err.Error())
		p.mtx.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var lines []string
	for _, s := range pr.Streams {
		for _, e := range s.Entries {
			lines = append(lines, e.Line)
		}
	}
	// Stored before the answer, as Loki does: a kill before the answer
	// arrives leaves Loki holding lines vigil did not see acknowledged.
	p.mtx.Lock()
	p.pushes = append(p.pushes, lines)
	p.mtx.Unlock()
	select {
	case p.arrived <- struct{}{}:
	default:
	}
	time.Sleep(p.delay)
	w.WriteHeader(http.StatusNoContent)
}

func (p *pushLog) count() int {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	return len(p.pushes)
}

// buildVigil builds cmd/vigil with the caller's GOFLAGS (tags or none).
func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/vigil")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Run(), "building vigil")
	return bin
}

// TestKill9LosesNoLogLine runs the real binary tailing a log written at
// about 250 lines/s to a Loki push receiver, kills it with SIGKILL and
// starts it again: every other kill at a random moment, the others while
// Loki holds a push it has not answered. Loki must end up with every line;
// a line may arrive twice only if it was in the last push Loki stored
// before a kill (vigil had not recorded that push's answer). The rotated
// output file must hold every line too.
//
// VIGIL_LOGS_KILL_TRIALS sets the number of kills (default 5).
func TestKill9LosesNoLogLine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary")
	}
	trials := 5
	if v := os.Getenv("VIGIL_LOGS_KILL_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		trials = n
	}
	bin := buildVigil(t)
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out", "app.log")
	require.NoError(t, os.MkdirAll(src, 0o755))
	rcv := newPushLog(t, 150*time.Millisecond)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cfgFile := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(`service: checkout
environment: development
data_dir: %s
server: {listen: "%s"}
logging: {level: warn, format: text, output: stderr}
collectors:
  self: {enabled: false}
  logs:
    - {name: app, paths: ["%s/*.log"], file: %s, maxSize: 1MB, maxFiles: 50, labels: {app: shop}}
  loki: {url: "%s"}
`, filepath.Join(dir, "data"), addr, src, out, rcv.url)), 0o644))

	// The app: about 250 lines/s, in small bursts as a busy service writes.
	var written atomic.Int64
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		f, err := os.OpenFile(filepath.Join(src, "app.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-stopWriter:
				return
			case <-tick.C:
			}
			var b []byte
			for k := 0; k < 5; k++ {
				b = fmt.Appendf(b, "%s\n", lineText(i))
				i++
			}
			if _, err := f.Write(b); err != nil {
				panic(err)
			}
			written.Store(int64(i))
		}
	}()

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", cfgFile)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	// allowed[line] is how many times a line may arrive beyond the first.
	allowed := map[string]int{}
	for trial := 0; trial < trials; trial++ {
		before := rcv.count()
		cmd := start()
		deadline := time.Now().Add(30 * time.Second)
		for rcv.count() == before {
			require.True(t, time.Now().Before(deadline), "trial %d: no push after start", trial)
			time.Sleep(10 * time.Millisecond)
		}
		if trial%2 == 1 {
			// Kill while Loki holds a push it has not answered yet: its
			// lines come again, and only they.
			select {
			case <-rcv.arrived:
			default:
			}
			select {
			case <-rcv.arrived:
			case <-time.After(10 * time.Second):
				t.Fatalf("trial %d: no second push", trial)
			}
		} else {
			time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		// A request the kernel had already taken is still handled.
		time.Sleep(300 * time.Millisecond)
		rcv.mtx.Lock()
		if n := len(rcv.pushes); n > before {
			for _, l := range rcv.pushes[n-1] {
				allowed[l]++
			}
		}
		rcv.mtx.Unlock()
	}

	// A last run, stopped cleanly once every line written is in Loki.
	cmd := start()
	time.Sleep(time.Second)
	close(stopWriter)
	<-writerDone
	n := int(written.Load())
	received := func() map[string]int {
		rcv.mtx.Lock()
		defer rcv.mtx.Unlock()
		got := map[string]int{}
		for _, p := range rcv.pushes {
			for _, l := range p {
				got[l]++
			}
		}
		return got
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(received()) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())

	got := received()
	var missing []int
	dups, unexplained := 0, 0
	for i := 0; i < n; i++ {
		c := got[lineText(i)]
		if c == 0 {
			missing = append(missing, i)
		}
		if c > 1 {
			dups += c - 1
			if c-1 > allowed[lineText(i)] {
				unexplained++
			}
		}
	}
	rcv.mtx.Lock()
	require.Empty(t, rcv.errs)
	pushes := len(rcv.pushes)
	rcv.mtx.Unlock()
	t.Logf("%d kills, %d lines written, %d pushes, %d lines repeated (all from the last push before a kill: %v)",
		trials, n, pushes, dups, unexplained == 0)
	require.Empty(t, missing, "lines Loki never got")
	require.Zero(t, unexplained, "lines repeated that were not in the last push before a kill")
	require.Len(t, got, n, "lines Loki got that were never written")

	outLines := outputLines(t, out)
	var outMissing []int
	outDups := 0
	for i := 0; i < n; i++ {
		c := outLines[lineText(i)]
		if c == 0 {
			outMissing = append(outMissing, i)
		}
		outDups += max(c-1, 0)
	}
	t.Logf("output file: %d lines repeated", outDups)
	require.Empty(t, outMissing, "lines missing from the output file")
}
