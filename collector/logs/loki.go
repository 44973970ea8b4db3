package logs

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/grafana/loki-client-go/loki"
	"github.com/grafana/loki-client-go/pkg/backoff"
	"github.com/grafana/loki-client-go/pkg/labelutil"
	"github.com/grafana/loki-client-go/pkg/urlutil"
	"github.com/prometheus/common/model"

	"github.com/vigil-sh/vigil/config"
)

// lokiEntry is one line on its way to Loki.
type lokiEntry struct {
	labels model.LabelSet
	time   time.Time
	line   string
}

// shipper hands lines to a loki-client-go Client from one goroutine.
//
// What is buffered, and what a Loki outage costs: loki-client-go reads
// entries from an unbuffered channel in a single goroutine that also sends
// the batches, so while it retries a batch (429, 5xx or a connection error,
// with exponential backoff from LokiMinBackoff to LokiMaxBackoff, at most
// LokiMaxRetries times: by default 0.5 s doubling to 5 m, 10 tries, about
// 8.5 minutes) it takes no new entry, Client.Handle blocks, and so does
// vigil's reading of every log: the log files themselves are the buffer and
// positions do not move. In memory there is at most one batch being retried
// (collectors.loki.batch_size, default 1 MiB) plus the lines of one read
// chunk per log (at most 256 KiB) waiting to be handed over. The rotated
// output files and the recent-lines buffer wait too, so nothing is written
// to them that Loki will not also get.
//
// Lines are lost from Loki only when (a) a batch exhausts its retries: the
// client drops it and counts it in promtail_dropped_entries_total (on the
// default registry, where the client registers its metrics), then reading
// resumes; (b) vigil exits while Loki is down and the client cannot flush
// within Options.StopTimeout: the batch being retried and the batch being
// built are lost, because the client does not acknowledge entries and
// positions therefore advance when a line is handed over, not when Loki
// stores it; (c) vigil is killed: the same two batches. Lines the app writes
// to a file that is renamed away while reading is paused are still read
// (rotated files are followed by inode); a file deleted while paused is read
// through its open descriptor if it was already open.
type shipper struct {
	client *loki.Client
	logger *slog.Logger
	push   *pushTracker
	in     chan shipment
	stop   chan struct{}
	done   chan struct{}
	onShip func(n int)
}

// shipment is a chunk of one log's lines.
type shipment struct {
	stats   *logStats
	entries []lokiEntry
}

// lokiSettings are the knobs of the client that are not in the config file.
type lokiSettings struct {
	minBackoff, maxBackoff time.Duration
	maxRetries             int
	timeout                time.Duration
}

// newShipper starts a Loki client for cfg with service and environment as
// external labels.
func newShipper(cfg *config.Config, set lokiSettings, logger *slog.Logger, onShip func(int)) (*shipper, error) {
	lc := cfg.Collectors.Loki
	u, err := url.Parse(lc.URL)
	if err != nil {
		return nil, fmt.Errorf("collectors.loki.url %q: %w", lc.URL, err)
	}
	external := model.LabelSet{}
	if cfg.Service != "" {
		external["service"] = model.LabelValue(cfg.Service)
	}
	if cfg.Environment != "" {
		external["environment"] = model.LabelValue(cfg.Environment)
	}
	clientCfg := loki.Config{
		URL:       urlutil.URLValue{URL: u},
		BatchWait: time.Duration(lc.BatchWait),
		BatchSize: int(lc.BatchSize),
		BackoffConfig: backoff.BackoffConfig{
			MinBackoff: set.minBackoff,
			MaxBackoff: set.maxBackoff,
			MaxRetries: set.maxRetries,
		},
		ExternalLabels: labelutil.LabelSet{LabelSet: external},
		Timeout:        set.timeout,
		TenantID:       lc.TenantID,
	}
	if clientCfg.BatchWait <= 0 {
		clientCfg.BatchWait = loki.BatchWait
	}
	if clientCfg.BatchSize <= 0 {
		clientCfg.BatchSize = loki.BatchSize
	}
	redact := newRedactor(u, lc.TenantID)
	push := newPushTracker(u.Host, redact)
	if push.sent == nil {
		logger.Warn("loki-client-go's sent and dropped counters were not found; the log status cannot tell whether pushes succeed")
	}
	client, err := loki.NewWithLogger(clientCfg, kitLogger{l: logger, redact: redact, onPushError: push.failed})
	if err != nil {
		return nil, fmt.Errorf("loki client for %s: %w", redact.safeURL, err)
	}
	s := &shipper{
		client: client,
		logger: logger,
		push:   push,
		in:     make(chan shipment),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		onShip: onShip,
	}
	go s.run()
	return s, nil
}

func (s *shipper) run() {
	defer close(s.done)
	// Count the flushed batch's outcome too.
	defer func() { s.push.check(time.Now()) }()
	// Stop flushes the batch being built; it returns once that batch is
	// sent or has exhausted its retries.
	defer s.client.Stop()
	tick := time.NewTicker(pushCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.push.check(time.Now())
		case sh := <-s.in:
			s.push.handing(sh.stats, len(sh.entries))
			for _, e := range sh.entries {
				// Handle never fails: it blocks until the client's loop
				// takes the entry.
				_ = s.client.Handle(e.labels, e.time, e.line)
			}
			s.onShip(len(sh.entries))
		}
	}
}

// ship hands a log's entries to the client; it returns ctx's error, having
// handed nothing, when ctx ends first.
func (s *shipper) ship(ctx context.Context, stats *logStats, entries []lokiEntry) error {
	select {
	case s.in <- shipment{stats: stats, entries: entries}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops taking lines, lets the client flush, and waits up to timeout.
// It reports whether the client finished in time.
func (s *shipper) close(timeout time.Duration) bool {
	close(s.stop)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.done:
		return true
	case <-t.C:
		s.logger.Error("Loki client did not flush in time; lines in its current batch may be lost", "timeout", timeout)
		return false
	}
}

// kitLogger passes loki-client-go's go-kit log lines to slog, without the
// URL's credentials, and tells onPushError about failed pushes: the client
// logs each failed attempt (and a batch it cannot encode) and reports it in
// no other way.
type kitLogger struct {
	l           *slog.Logger
	redact      *redactor
	onPushError func(error)
}

// Log implements go-kit's log.Logger.
func (k kitLogger) Log(keyvals ...any) error {
	lvl := slog.LevelInfo
	msg := "loki client"
	var pushErr error
	attrs := make([]any, 0, len(keyvals))
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		val := keyvals[i+1]
		switch key {
		case "level":
			switch fmt.Sprint(val) {
			case "debug":
				lvl = slog.LevelDebug
			case "warn":
				lvl = slog.LevelWarn
			case "error":
				lvl = slog.LevelError
			}
		case "msg":
			msg = fmt.Sprint(val)
		case "error", "err":
			err, ok := val.(error)
			if !ok {
				err = fmt.Errorf("%v", val)
			}
			pushErr = err
			attrs = append(attrs, key, k.redact.error(err))
		default:
			attrs = append(attrs, key, val)
		}
	}
	// "error sending batch, will retry", "final error sending batch",
	// "error encoding batch" in the pinned version.
	if pushErr != nil && k.onPushError != nil &&
		(strings.Contains(msg, "sending batch") || strings.Contains(msg, "encoding batch")) {
		k.onPushError(pushErr)
	}
	k.l.Log(context.Background(), lvl, msg, attrs...)
	return nil
}
