package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"

	"github.com/vigil-sh/vigil/config"
)

// Defaults of the Loki client, as Promtail and loki-client-go have them.
const (
	defaultBatchWait   = time.Second
	defaultBatchSize   = 1 << 20
	defaultMinBackoff  = 500 * time.Millisecond
	defaultMaxBackoff  = 5 * time.Minute
	defaultMaxRetries  = 10
	defaultPushTimeout = 10 * time.Second
	// maxErrorBody is how much of a failed push's response goes into the
	// error; Loki's messages are one line.
	maxErrorBody = 1024
)

// shipment is a chunk of one log's lines on its way to Loki, with what to
// do once Loki has stored them. entries may be empty (every line of the
// chunk was below the log's level): the chunk's position still moves in
// order with the others.
type shipment struct {
	stats   *logStats
	log     string
	stream  string // the stream's labels, {app="shop", ...}
	entries []push.Entry
	bytes   int
	// done is called once, from the sending goroutine: with true after the
	// push holding the entries succeeded or was given up (dropped, counted),
	// with false when the client stopped before either (the lines were not
	// sent and their position does not move).
	done func(acked bool)
}

// batch is what one push request carries.
type batch struct {
	req     push.PushRequest
	streams map[string]int // labels -> index in req.Streams
	bytes   int
	parts   []*shipment
	// lost is set when Loki refused the batch or it ran out of retries.
	lost bool
}

func (b *batch) add(sh *shipment) {
	b.parts = append(b.parts, sh)
	if len(sh.entries) == 0 {
		return
	}
	i, ok := b.streams[sh.stream]
	if !ok {
		i = len(b.req.Streams)
		b.streams[sh.stream] = i
		b.req.Streams = append(b.req.Streams, push.Stream{Labels: sh.stream})
	}
	b.req.Streams[i].Entries = append(b.req.Streams[i].Entries, sh.entries...)
	b.bytes += sh.bytes
}

// pushSettings are the knobs of the client that are not in the config file.
type pushSettings struct {
	minBackoff, maxBackoff time.Duration
	maxRetries             int
	timeout                time.Duration
}

// shipper is vigil's Loki client. It batches the lines handed to it (by
// size, collectors.loki.batch_size, and age, batch_wait), pushes each batch
// as a snappy-compressed protobuf PushRequest (Loki's own types), retries
// with exponential backoff on a network error, 429 or 5xx, and tells every
// chunk of lines in the batch, in the order they were handed over, once Loki
// answered 2xx: that is what moves a file's position (see positions). After
// the positions were saved it takes the next batch, so a kill -9 repeats at
// most the one batch whose answer it had not yet recorded.
//
// Memory: one batch is being built while at most one is being pushed; a
// tailer handing over lines blocks while both are taken, so during a Loki
// outage the log files themselves are the buffer. A batch that fails with
// another 4xx (Loki refused it: too old, too long, bad labels), or that
// exhausts its retries (by default 0.5 s doubling to 5 m, 10 tries, about
// 8.5 minutes) is dropped: counted as dropped per log, its positions move on.
type shipper struct {
	url    *url.URL // without user information
	user   *url.Userinfo
	tenant string
	hc     *http.Client
	set    pushSettings
	size   int
	wait   time.Duration
	logger *slog.Logger
	redact *redactor
	m      *metrics
	// persist saves the positions after a push moved them.
	persist func()

	in      chan *shipment
	batches chan *batch
	stop    chan struct{}
	abort   context.CancelFunc
	ctx     context.Context
	done    chan struct{}
	once    sync.Once

	lastErr atomic.Pointer[string]
}

// newShipper returns a client for cfg's collectors.loki; start starts it.
func newShipper(cfg *config.Config, set pushSettings, m *metrics, persist func(), logger *slog.Logger) (*shipper, error) {
	lc := cfg.Collectors.Loki
	u, err := url.Parse(lc.URL)
	if err != nil {
		return nil, fmt.Errorf("collectors.loki.url %q: %w", lc.URL, err)
	}
	redact := newRedactor(u, lc.TenantID)
	clean := *u
	clean.User = nil
	s := &shipper{
		url:     &clean,
		user:    u.User,
		tenant:  lc.TenantID,
		hc:      &http.Client{Timeout: set.timeout},
		set:     set,
		size:    int(lc.BatchSize),
		wait:    time.Duration(lc.BatchWait),
		logger:  logger,
		redact:  redact,
		m:       m,
		persist: persist,
		in:      make(chan *shipment),
		batches: make(chan *batch),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.size <= 0 {
		s.size = defaultBatchSize
	}
	if s.wait <= 0 {
		s.wait = defaultBatchWait
	}
	s.ctx, s.abort = context.WithCancel(context.Background())
	go s.batchLoop()
	go s.sendLoop()
	return s, nil
}

// streamLabels is the label set of a log's stream: the log's own labels
// with service and environment.
func streamLabels(cfg *config.Config, own model.LabelSet) string {
	ls := own.Clone()
	if cfg.Service != "" {
		ls["service"] = model.LabelValue(cfg.Service)
	}
	if cfg.Environment != "" {
		ls["environment"] = model.LabelValue(cfg.Environment)
	}
	return ls.String()
}

// ship hands a chunk over; it returns ctx's error, having handed nothing,
// when ctx ends (or the client stops) first.
func (s *shipper) ship(ctx context.Context, sh *shipment) error {
	select {
	case s.in <- sh:
		s.m.shipped.Add(float64(len(sh.entries)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return errors.New("loki client stopped")
	}
}

// batchLoop builds batches and hands them to sendLoop when full or old.
func (s *shipper) batchLoop() {
	defer close(s.batches)
	var (
		cur   *batch
		timer *time.Timer
		tick  <-chan time.Time
	)
	flush := func() {
		if timer != nil {
			timer.Stop()
		}
		tick = nil
		b := cur
		cur = nil
		s.batches <- b // sendLoop always drains
	}
	for {
		select {
		case sh := <-s.in:
			if cur != nil && len(sh.entries) > 0 && cur.bytes > 0 && cur.bytes+sh.bytes > s.size {
				flush()
			}
			if cur == nil {
				cur = &batch{streams: map[string]int{}}
				timer = time.NewTimer(s.wait)
				tick = timer.C
			}
			cur.add(sh)
			if cur.bytes >= s.size {
				flush()
			}
		case <-tick:
			flush()
		case <-s.stop:
			if cur != nil {
				flush()
			}
			return
		}
	}
}

// sendLoop pushes batches one at a time, in order.
func (s *shipper) sendLoop() {
	defer close(s.done)
	for b := range s.batches {
		s.send(b)
	}
}

// send pushes b until it succeeds, is dropped or the client is aborted, and
// resolves its shipments.
func (s *shipper) send(b *batch) {
	// Once aborted, nothing more is acknowledged: a later chunk of a file
	// must not move its position past lines that were not sent.
	acked := s.ctx.Err() == nil
	if acked && len(b.req.Streams) > 0 {
		acked = s.pushWithRetries(b)
	}
	for _, sh := range b.parts {
		if acked {
			n := uint64(len(sh.entries))
			if b.lost {
				sh.stats.failed.Add(n)
				s.m.lokiDropped.WithLabelValues(sh.log).Add(float64(n))
			} else if n > 0 {
				sh.stats.sent.Add(n)
				sh.stats.lastPush.Store(time.Now().UnixNano())
				s.m.lokiSent.WithLabelValues(sh.log).Add(float64(n))
			}
		}
		sh.done(acked)
	}
	if acked && s.persist != nil {
		s.persist()
	}
}

// pushWithRetries reports whether b is resolved (stored, or dropped: then
// b.lost is set); false means the client was aborted first.
func (s *shipper) pushWithRetries(b *batch) bool {
	body, err := b.req.Marshal()
	if err != nil {
		// Strings and timestamps always encode; kept for safety.
		s.fail(fmt.Errorf("encoding push: %w", err))
		b.lost = true
		return true
	}
	body = snappy.Encode(nil, body)
	backoff := s.set.minBackoff
	for attempt := 1; ; attempt++ {
		retry, err := s.push(body)
		if err == nil {
			s.lastErr.Store(nil)
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
		s.fail(err)
		if !retry || attempt >= s.set.maxRetries {
			s.logger.Error("dropping lines Loki did not take", "lines", b.lines(), "attempts", attempt, "err", s.redact.error(err))
			b.lost = true
			return true
		}
		s.m.lokiRetries.Inc()
		s.logger.Warn("push to Loki failed; retrying", "attempt", attempt, "backoff", backoff, "err", s.redact.error(err))
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return false
		}
		backoff = min(backoff*2, s.set.maxBackoff)
	}
}

func (b *batch) lines() int {
	n := 0
	for _, st := range b.req.Streams {
		n += len(st.Entries)
	}
	return n
}

func (s *shipper) fail(err error) {
	msg := s.redact.error(err)
	s.lastErr.Store(&msg)
	s.m.lokiFailures.Inc()
}

// push sends one request. retry says whether a failure may pass.
func (s *shipper) push(body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.url.String(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "vigil/"+version.Version)
	if s.tenant != "" {
		req.Header.Set("X-Scope-OrgID", s.tenant)
	}
	if s.user != nil {
		pass, _ := s.user.Password()
		req.SetBasicAuth(s.user.Username(), pass)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("server returned HTTP status %s: %s", resp.Status, bytes.TrimSpace(msg))
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, err
}

// lastError is the last push error, "" once a later push succeeded.
func (s *shipper) lastError() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// close stops taking lines and lets the client push what it holds, for at
// most timeout; then it aborts the push in progress: those lines are not
// acknowledged, so their positions stay and they are read again at the next
// start. It reports whether everything was pushed in time.
func (s *shipper) close(timeout time.Duration) bool {
	s.once.Do(func() { close(s.stop) })
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.done:
		s.abort()
		return true
	case <-t.C:
	}
	s.logger.Error("Loki did not take the last lines in time; they stay unacknowledged and are sent again at the next start", "timeout", timeout)
	s.abort()
	<-s.done
	return false
}
