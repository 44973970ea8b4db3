// Package storage opens vigil's embedded Prometheus TSDB with settings for a
// small sidecar: short retention, compressed WAL, small in-memory footprint;
// and runs Prometheus's remote write on it (remote.go).
package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/compression"
)

// DefaultRetention is how long samples are kept when Options.Retention is 0.
const DefaultRetention = 24 * time.Hour

// ErrLocked means another process (or another Open in this one) holds the
// data directory's lock file.
var ErrLocked = errors.New("data directory is in use by another process")

// Options say where the TSDB lives and how long it keeps samples.
type Options struct {
	// Dir is the data directory; it is created if missing.
	Dir string
	// Retention is how long samples are kept; 0 means DefaultRetention.
	Retention time.Duration
}

// Open opens (creating if needed) the TSDB in opts.Dir. The caller closes it,
// after everything that appends to it has stopped.
func Open(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*tsdb.DB, error) {
	if opts == nil || opts.Dir == "" {
		return nil, errors.New("open TSDB: no data directory given")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := opts.Dir
	retention := opts.Retention
	switch {
	case retention < 0:
		return nil, fmt.Errorf("open TSDB in %q: retention %s is negative", dir, retention)
	case retention == 0:
		retention = DefaultRetention
	}
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("open TSDB in %q: %w", dir, err)
	}

	db, err := tsdb.Open(dir, logger, reg, dbOptions(retention), nil)
	if err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open TSDB in %q: %w (lock file %s is held): %w",
				dir, ErrLocked, filepath.Join(dir, "lock"), err)
		}
		return nil, fmt.Errorf("open TSDB in %q: %w", dir, err)
	}
	logger.Info("TSDB opened", "dir", dir, "retention", retention.String())
	return db, nil
}

// checkDir creates dir and proves it writable, so that a bad data_dir is
// reported by name before the TSDB starts creating its own files in it.
func checkDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".vigil-write-test-*")
	if err != nil {
		return fmt.Errorf("data directory is not writable: %w", err)
	}
	name := f.Name()
	errClose := f.Close()
	errRemove := os.Remove(name)
	if err := errors.Join(errClose, errRemove); err != nil {
		return fmt.Errorf("data directory is not writable: %w", err)
	}
	return nil
}

// dbOptions are the TSDB settings for a sidecar that keeps hours, not weeks,
// of a few thousand series.
func dbOptions(retention time.Duration) *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.RetentionDuration = retention.Milliseconds()

	// The head holds up to 1.5 block ranges of samples before it is written
	// out; a short retention needs short blocks so that the head stays small
	// and retention deletes data in small steps. Prometheus's 2h is kept from
	// 24h of retention up.
	minBlock := blockDuration(retention)
	o.MinBlockDuration = minBlock.Milliseconds()
	// Compacted blocks span at most a tenth of the retention (Prometheus's
	// own rule), so whole blocks expire close to the retention time.
	maxBlock := min(max(retention/10, minBlock), 31*24*time.Hour)
	o.MaxBlockDuration = maxBlock.Milliseconds()

	// Snappy halves the WAL for little CPU; zstd would save more disk for
	// more CPU, the wrong trade next to the app being monitored.
	o.WALCompression = compression.Snappy
	// Segments are deleted whole at checkpoints; 32 MiB segments (Prometheus:
	// 128 MiB) give disk space back sooner on a small volume.
	o.WALSegmentSize = 32 << 20

	// The series map is split into stripes to spread lock contention; each
	// stripe costs two maps and a padded lock whether used or not. 16k
	// stripes are for millions of series; 1k keeps several MB off the idle
	// footprint and is plenty for one scrape loop and one rule evaluator.
	o.StripeSize = 1 << 10
	// The head chunk write buffer (4 MiB by default) only batches writes of
	// full chunks to the mmapped files; a sidecar fills it slowly.
	o.HeadChunksWriteBufferSize = 4 * chunks.MinWriteBufferSize

	// Isolation keeps a query from seeing part of a commit in progress; it
	// costs a ring of append IDs on every series (8.5 MB of heap at 100,000
	// series, issue 14) and a watermark check on every read. vigil's
	// readers are its own rules, which evaluate rates and sums over
	// windows of many scrapes: a scrape half-applied while a rule reads
	// moves a result by at most one sample's share of the window, for one
	// evaluation, and alerts wait out their `for`. The scrape appender
	// already commits a target's first scrape in parts
	// (collector/batch.go).
	o.IsolationDisabled = true

	// Exemplars, out-of-order ingestion and memory snapshots stay off (the
	// defaults): vigil neither stores exemplars nor accepts backfills, and a
	// WAL replay of a few thousand series takes well under a second.
	o.EnableExemplarStorage = false
	o.OutOfOrderTimeWindow = 0
	o.EnableMemorySnapshotOnShutdown = false
	return o
}

// blockDuration is the largest of 2h, 1h, 30m and 15m that is at most a
// twelfth of the retention, so at least a dozen blocks make up the retention.
func blockDuration(retention time.Duration) time.Duration {
	for _, d := range []time.Duration{2 * time.Hour, time.Hour, 30 * time.Minute} {
		if d <= retention/12 {
			return d
		}
	}
	return 15 * time.Minute
}
