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
)

// LogStatus is the state of one log's pipeline, for the operator page.
// The Loki fields are vigil's own Loki client's counts: a line counts as
// sent when Loki answered 2xx to the push holding it.
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
	// LokiFailed is how many of the log's lines were dropped since start:
	// Loki refused their push, or it failed every retry.
	LokiFailed uint64
	// LokiError is the last error of a push attempt (retried or final), ""
	// once a later push succeeded. The client is shared by every log and
	// sends their lines in order, one batch at a time: while it fails, no
	// log's lines reach Loki, so the error is the same for every shipped
	// log. Credentials in the URL, its query and the tenant ID are removed
	// from it.
	LokiError string
	// LastPush is when a push holding lines of this log succeeded.
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
		lokiErr = sh.lastError()
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
// client; the tailer and the Loki client update it.
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
