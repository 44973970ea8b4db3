package logs

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// LogStatus is the state of one log's pipeline, for the operator page.
//
// The Loki fields come from loki-client-go, which reports no result per
// push to its caller. It counts the lines of each batch it sent or dropped
// in its own counters (promtail_sent_entries_total and
// promtail_dropped_entries_total, per Loki host) and logs every failed
// attempt through the logger vigil gives it. vigil reads those two counters
// and attributes their growth to logs in the order it handed lines over:
// the client sends batches one at a time, in that order. Two clients
// pushing to the same host at once (for a moment after a reload that
// changed collectors.loki but not its host) share those counters, so for
// that moment the counts may run ahead.
type LogStatus struct {
	// Name is the configured log name.
	Name string
	// Files are the files currently followed, by path, sorted. A rotated
	// file still being read to its end under a name the globs no longer
	// match is not listed: its old path now names the new file.
	Files []string
	// Lines is how many lines were read since vigil started.
	Lines uint64
	// LastLine is when the last line was read; zero if none yet.
	LastLine time.Time
	// File is the rotated output file, "" if not configured.
	File string
	// FileError is the last error writing File, "" if none or if a later
	// write succeeded.
	FileError string
	// Loki reports whether the log is shipped to Loki; the other Loki
	// fields are zero when it is not.
	Loki bool
	// LokiSent is how many of the log's lines Loki accepted since start.
	LokiSent uint64
	// LokiFailed is how many of the log's lines the Loki client dropped
	// after its retries since start.
	LokiFailed uint64
	// LokiError is the last error of a push attempt (retried or final) of
	// the Loki client, "" once the client has counted a later successful
	// push. The client is shared by every log and sends their lines in
	// order, one batch at a time: while it fails, no log's lines reach
	// Loki, so the error is the same for every shipped log. Credentials in
	// the URL, its query and the tenant ID are removed from it.
	LokiError string
	// LastPush is when vigil saw the Loki client count a successful push
	// holding lines of this log. vigil looks every second and on every
	// call of Status, so it can be up to a second late.
	LastPush time.Time
}

// Status returns the state of every configured log, sorted by name. It
// reads only what is in memory and may be called at any time, from any
// goroutine.
func (m *Manager) Status() []LogStatus {
	type entry struct {
		spec  logSpec
		stats *logStats
	}
	m.mtx.Lock()
	entries := make([]entry, 0, len(m.specs))
	for name, spec := range m.specs {
		entries = append(entries, entry{spec: spec, stats: m.stats[name]})
	}
	sh := m.shipper
	m.mtx.Unlock()

	lokiErr := ""
	if sh != nil {
		lokiErr = sh.push.check(time.Now())
	}
	out := make([]LogStatus, 0, len(entries))
	for _, e := range entries {
		st := e.stats
		ls := LogStatus{
			Name:     e.spec.name,
			Files:    st.followed(),
			Lines:    st.lines.Load(),
			LastLine: unixNano(st.lastLine.Load()),
			File:     e.spec.file,
		}
		if fe := st.fileErr.Load(); fe != nil && fe.file == e.spec.file && e.spec.file != "" {
			ls.FileError = fe.msg
		}
		if sh != nil {
			ls.Loki = true
			ls.LokiSent = st.sent.Load()
			ls.LokiFailed = st.failed.Load()
			ls.LokiError = lokiErr
			ls.LastPush = unixNano(st.lastPush.Load())
		}
		out = append(out, ls)
	}
	slices.SortFunc(out, func(a, b LogStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// logStats is what Status reports about one log. It belongs to the
// Manager, so it outlives restarts of the log's tailer and of the Loki
// client; the tailer and the shipper update it.
type logStats struct {
	lines    atomic.Uint64
	lastLine atomic.Int64 // unix nanoseconds, 0 before the first line
	sent     atomic.Uint64
	failed   atomic.Uint64
	lastPush atomic.Int64 // unix nanoseconds, 0 before the first push
	fileErr  atomic.Pointer[fileError]

	mtx   sync.Mutex
	files []string
}

// fileError is the last failed write of an output file; it names the file
// so an error of a file no longer configured is not reported.
type fileError struct {
	file, msg string
}

// setFiles records the paths followed, sorted.
func (s *logStats) setFiles(paths []string) {
	slices.Sort(paths)
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if !slices.Equal(s.files, paths) {
		s.files = paths
	}
}

// followed returns a copy of the paths followed.
func (s *logStats) followed() []string {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return slices.Clone(s.files)
}

// outputWritten records the outcome of a write to file.
func (s *logStats) outputWritten(file string, err error) {
	if err != nil {
		s.fileErr.Store(&fileError{file: file, msg: err.Error()})
		return
	}
	if s.fileErr.Load() != nil {
		s.fileErr.Store(nil)
	}
}

// pushCheckInterval is how often a shipper reads the Loki client's
// counters when nothing else asks.
const pushCheckInterval = time.Second

// pushTracker turns what loki-client-go counts and logs into per-log push
// results.
//
// The client takes lines one at a time in the order the shipper hands them
// over, puts them into batches in that order and sends one batch at a time
// from one goroutine, adding the batch's lines to its sent counter on
// success or, after its last retry, to its dropped counter. So the growth of
// those two counters is always the oldest lines handed over and not yet
// counted. The order between the two is known too: the client logs a
// failure (the tracker settles then) just before it counts a dropped batch,
// and counts nothing else in between, so between two settles a drop, if
// any, comes before every success. A batch the client cannot encode is
// counted nowhere; its lines would stay queued and shift the per-log split
// of later counts (encoding a protobuf of valid strings does not fail).
type pushTracker struct {
	sent, dropped prometheus.Counter // nil when the client's counters were not found
	redact        *redactor

	mtx         sync.Mutex
	lastSent    float64
	lastDropped float64
	queue       []handedRun // oldest first
	lastErr     string
}

// handedRun is n consecutive lines of one log handed to the client.
type handedRun struct {
	stats *logStats
	n     uint64
}

// errNoPushCounters is LokiError when vigil cannot see push results.
const errNoPushCounters = "push results unknown: loki-client-go's sent and dropped counters were not found"

func newPushTracker(host string, redact *redactor) *pushTracker {
	t := &pushTracker{redact: redact}
	sent, dropped := lokiClientCounters()
	if sent == nil || dropped == nil {
		t.lastErr = errNoPushCounters
		return t
	}
	t.sent, t.dropped = sent.WithLabelValues(host), dropped.WithLabelValues(host)
	t.lastSent, t.lastDropped = counterValue(t.sent), counterValue(t.dropped)
	return t
}

// handing records that n lines of a log are about to be handed to the
// client. It must be called before the client can see them, so a batch
// holding them is never counted before they are queued.
func (t *pushTracker) handing(stats *logStats, n int) {
	if t.sent == nil || n == 0 {
		return
	}
	t.mtx.Lock()
	defer t.mtx.Unlock()
	if last := len(t.queue) - 1; last >= 0 && t.queue[last].stats == stats {
		t.queue[last].n += uint64(n)
		return
	}
	t.queue = append(t.queue, handedRun{stats: stats, n: uint64(n)})
}

// check settles what the client counted since the last settle and returns
// the current push error.
func (t *pushTracker) check(now time.Time) string {
	t.mtx.Lock()
	defer t.mtx.Unlock()
	t.settleLocked(now)
	return t.lastErr
}

// failed records a failed push attempt the client logged. The client calls
// it from its sending goroutine, before it counts the batch as dropped.
func (t *pushTracker) failed(err error) {
	t.mtx.Lock()
	defer t.mtx.Unlock()
	t.settleLocked(time.Now())
	if t.sent == nil {
		return
	}
	t.lastErr = t.redact.error(err)
}

func (t *pushTracker) settleLocked(now time.Time) {
	if t.sent == nil {
		return
	}
	// Sent first: a drop counted after this read still comes before the
	// successes counted by it (see pushTracker), and only successes can be
	// counted between the two reads, since a drop is logged first and its
	// log waits for t.mtx.
	sent, dropped := counterValue(t.sent), counterValue(t.dropped)
	droppedN, sentN := delta(dropped, t.lastDropped), delta(sent, t.lastSent)
	t.lastSent, t.lastDropped = sent, dropped
	t.take(droppedN, func(s *logStats, n uint64) { s.failed.Add(n) })
	t.take(sentN, func(s *logStats, n uint64) {
		s.sent.Add(n)
		s.lastPush.Store(now.UnixNano())
	})
	if sentN > 0 {
		t.lastErr = ""
	}
}

// take attributes the n oldest queued lines. More than are queued can only
// be another client's lines on the same host; they are ignored.
func (t *pushTracker) take(n uint64, f func(*logStats, uint64)) {
	for n > 0 && len(t.queue) > 0 {
		r := &t.queue[0]
		k := min(n, r.n)
		f(r.stats, k)
		n -= k
		r.n -= k
		if r.n == 0 {
			t.queue[0] = handedRun{}
			t.queue = t.queue[1:]
		}
	}
}

func delta(now, before float64) uint64 {
	if now <= before {
		return 0
	}
	return uint64(now - before)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// lokiMetricsRegisterer is where loki-client-go registered its metrics in
// its init, which ran before this package's.
var lokiMetricsRegisterer = prometheus.DefaultRegisterer

var lokiCounters struct {
	once          sync.Once
	sent, dropped *prometheus.CounterVec
}

// lokiClientCounters returns loki-client-go's sent and dropped entry
// counters, nil when they cannot be found. The client keeps them in
// unexported variables; registering a collector with the same name, help
// and labels makes the registry return the one it holds
// (prometheus.AlreadyRegisteredError) and changes nothing.
func lokiClientCounters() (sent, dropped *prometheus.CounterVec) {
	lokiCounters.once.Do(func() {
		lokiCounters.sent = existingCounterVec("promtail_sent_entries_total",
			"Number of log entries sent to the ingester.")
		lokiCounters.dropped = existingCounterVec("promtail_dropped_entries_total",
			"Number of log entries dropped because failed to be sent to the ingester after all retries.")
	})
	return lokiCounters.sent, lokiCounters.dropped
}

func existingCounterVec(name, help string) *prometheus.CounterVec {
	probe := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"host"})
	err := lokiMetricsRegisterer.Register(probe)
	if err == nil {
		// The client no longer registers it: take the probe back out.
		lokiMetricsRegisterer.Unregister(probe)
		return nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if cv, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return cv
		}
	}
	return nil
}

// maxErrorLen bounds LokiError; Loki's messages are one line.
const maxErrorLen = 512

// minSecretLen is the shortest secret removed from free text; shorter ones
// would garble the message. The URL itself is rebuilt without its
// credentials and query whatever their length.
const minSecretLen = 4

// redactor removes the Loki URL's credentials and query and the tenant ID
// (sent as a header) from the client's errors.
type redactor struct {
	url     string // the URL as the client puts it in errors
	safeURL string
	secrets []string
}

func newRedactor(u *url.URL, tenant string) *redactor {
	r := &redactor{url: u.String(), safeURL: safeURL(u)}
	add := func(s string) {
		if len(s) >= minSecretLen {
			r.secrets = append(r.secrets, s)
		}
	}
	if u.User != nil {
		add(u.User.Username())
		p, _ := u.User.Password()
		add(p)
	}
	add(u.RawQuery)
	for _, kv := range strings.Split(u.RawQuery, "&") {
		_, v, _ := strings.Cut(kv, "=")
		add(v)
		if dec, err := url.QueryUnescape(v); err == nil {
			add(dec)
		}
	}
	add(tenant)
	// Longest first, so a secret holding another is removed whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// safeURL is u without user information, query and fragment.
func safeURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// error returns err's message without the secrets, at most maxErrorLen
// bytes long.
func (r *redactor) error(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		// net/http hides only the password of the URL it names.
		u := "<url>"
		if p, perr := url.Parse(ue.URL); perr == nil {
			u = safeURL(p)
		}
		msg = fmt.Sprintf("%s %q: %v", ue.Op, u, ue.Err)
	}
	if r.url != r.safeURL {
		msg = strings.ReplaceAll(msg, r.url, r.safeURL)
	}
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, "REDACTED")
	}
	if len(msg) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}
