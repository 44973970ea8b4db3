package logs

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// lokiReceiver is a Loki push endpoint for tests: it decodes each push with
// Loki's own types and records the lines. While failures > 0 it answers
// 500 and counts down.
type lokiReceiver struct {
	srv      *httptest.Server
	failures atomic.Int64
	failed   atomic.Int64
	discard  bool // accept without decoding or recording (benchmarks)

	mtx     sync.Mutex
	lines   map[string]int
	total   int
	streams map[string]bool
	tenants map[string]bool
	auth    map[string]bool // "user:password" of each push's basic auth
	errs    []string
}

func newLokiReceiver(tb testing.TB) *lokiReceiver {
	r := &lokiReceiver{lines: map[string]int{}, streams: map[string]bool{}, tenants: map[string]bool{}, auth: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.srv.Close)
	return r
}

func (r *lokiReceiver) url() string { return r.srv.URL + "/loki/api/v1/push" }

func (r *lokiReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.failures.Add(-1) >= 0 {
		r.failed.Add(1)
		http.Error(w, "ingester unavailable", http.StatusInternalServerError)
		return
	}
	if r.discard {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	fail := func(msg string) {
		r.mtx.Lock()
		r.errs = append(r.errs, msg)
		r.mtx.Unlock()
		http.Error(w, msg, http.StatusBadRequest)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail("content type " + ct)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		fail("snappy: " + err.Error())
		return
	}
	var pr push.PushRequest
	if err := pr.Unmarshal(raw); err != nil {
		fail("protobuf: " + err.Error())
		return
	}
	r.mtx.Lock()
	r.tenants[req.Header.Get("X-Scope-OrgID")] = true
	if u, p, ok := req.BasicAuth(); ok {
		r.auth[u+":"+p] = true
	}
	for _, s := range pr.Streams {
		r.streams[s.Labels] = true
		for _, e := range s.Entries {
			r.lines[e.Line]++
			r.total++
		}
	}
	r.mtx.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// received returns how many lines arrived (with repeats) and a copy of the
// per-line counts.
func (r *lokiReceiver) received() (int, map[string]int) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	out := make(map[string]int, len(r.lines))
	for k, v := range r.lines {
		out[k] = v
	}
	return r.total, out
}
