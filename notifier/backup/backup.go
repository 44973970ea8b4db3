// Package backup records the backups a backup job reports (POST
// /api/v1/backups) in the notifier's KV and exports them as metrics, which
// vigil's own DR watch rules (config/drwatch.go: backup_missed,
// rpo_at_risk) read.
package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// DefaultKeep is how many backups the Manager keeps in its KV.
const DefaultKeep = 100

// maxAhead is how far in the future a backup's time may be: clocks differ.
const maxAhead = 5 * time.Minute

// KV keys.
const (
	keyBackup      = "backup/"      // backup/<unix ns, 20 digits>/<seq, 20 digits> → Backup
	keyLastSuccess = "last_success" // → Backup, survives trimming
	keyLastFailure = "last_failure" // → Backup, survives trimming
	keyFailures    = "failures"     // → count of failed backups ever recorded
	keyWatchStart  = "watch_start"  // → RFC 3339 time a backup block was first configured
	keySeq         = "seq"          // → last sequence number given to a record
)

// ErrInvalid is returned for a backup that cannot be recorded.
var ErrInvalid = errors.New("invalid backup")

// Backup is one run of the backup job.
type Backup struct {
	// Time is when the backup finished (or failed).
	Time time.Time `json:"time"`
	// Size is the backup's size in bytes.
	Size int64 `json:"size"`
	// OK is false for a failed backup; true when the request leaves it out.
	OK bool `json:"ok"`
	// Location is where the backup went (an S3 URL, a path).
	Location string `json:"location,omitempty"`
	// Error says why a failed backup failed.
	Error string `json:"error,omitempty"`
	// By is who recorded it.
	By string `json:"by,omitempty"`
}

// UnmarshalJSON makes ok default to true and accepts "at" for time and
// "size_bytes" for size.
func (b *Backup) UnmarshalJSON(data []byte) error {
	type plain Backup
	var v struct {
		plain
		OK        *bool     `json:"ok"`
		At        time.Time `json:"at"`
		SizeBytes *int64    `json:"size_bytes"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = Backup(v.plain)
	b.OK = v.OK == nil || *v.OK
	if b.Time.IsZero() {
		b.Time = v.At
	}
	if v.SizeBytes != nil && b.Size == 0 {
		b.Size = *v.SizeBytes
	}
	return nil
}

// Options configure the Manager.
type Options struct {
	// KV keeps the backups; required.
	KV notifier.KV
	// Clock returns the time; time.Now when nil.
	Clock func() time.Time
	// Keep is how many backups to keep; DefaultKeep when 0.
	Keep int
}

var (
	lastSuccessDesc = prometheus.NewDesc(config.BackupLastSuccessMetric,
		"Unix time of the newest successful backup recorded (POST /api/v1/backups); absent before the first.", nil, nil)
	lastSizeDesc = prometheus.NewDesc("vigil_backup_last_size_bytes",
		"Size of the newest successful backup recorded.", nil, nil)
	lastFailureDesc = prometheus.NewDesc("vigil_backup_last_failure_timestamp_seconds",
		"Unix time of the newest failed backup recorded; absent before the first.", nil, nil)
	failuresDesc = prometheus.NewDesc("vigil_backup_failures_total",
		"Failed backups recorded (ok: false), kept across restarts.", nil, nil)
	watchStartDesc = prometheus.NewDesc(config.BackupWatchStartMetric,
		"Unix time vigil first had a backup block configured: backup_missed counts from here before the first backup.", nil, nil)
)

// Manager records backups. Its methods are safe for concurrent use.
type Manager struct {
	kv     notifier.KV
	now    func() time.Time
	keep   int
	logger *slog.Logger

	mtx         sync.Mutex
	lastSuccess *Backup
	lastFailure *Backup
	failures    int64
	watchStart  time.Time
}

// New returns a Manager with the state its KV holds; its metrics go on reg
// when it is not nil.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if opts == nil || opts.KV == nil {
		return nil, errors.New("backup: Options.KV is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{kv: opts.KV, now: opts.Clock, keep: opts.Keep, logger: logger}
	if m.now == nil {
		m.now = time.Now
	}
	if m.keep <= 0 {
		m.keep = DefaultKeep
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m, nil
}

// load reads the last success, the last failure, the failure count and the
// watch start from the KV: a store shared by gateways has those another
// gateway recorded too. Call it with mtx held (or before m is shared).
func (m *Manager) load() error {
	lastSuccess, err := m.getBackup(keyLastSuccess)
	if err != nil {
		return err
	}
	lastFailure, err := m.getBackup(keyLastFailure)
	if err != nil {
		return err
	}
	var failures int64
	if v, ok, err := m.kv.Get(keyFailures); err != nil {
		return fmt.Errorf("backup: reading the failure count: %w", err)
	} else if ok {
		if failures, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return fmt.Errorf("backup: the failure count %q: %w", v, err)
		}
	}
	watchStart, err := m.getWatchStart()
	if err != nil {
		return err
	}
	m.lastSuccess, m.lastFailure, m.failures, m.watchStart = lastSuccess, lastFailure, failures, watchStart
	return nil
}

func (m *Manager) getWatchStart() (time.Time, error) {
	v, ok, err := m.kv.Get(keyWatchStart)
	if err != nil {
		return time.Time{}, fmt.Errorf("backup: reading the watch start: %w", err)
	}
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("backup: the watch start %q: %w", v, err)
	}
	return t, nil
}

func (m *Manager) getBackup(key string) (*Backup, error) {
	v, ok, err := m.kv.Get(key)
	if err != nil {
		return nil, fmt.Errorf("backup: reading %s: %w", key, err)
	}
	if !ok {
		return nil, nil
	}
	var b Backup
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("backup: decoding %s: %w", key, err)
	}
	return &b, nil
}

// ApplyConfig starts the watch the first time a config has a backup
// block: before any backup is recorded, backup_missed counts from then.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	if cfg.Backup == nil && (cfg.DisasterRecovery == nil || cfg.DisasterRecovery.Backup == nil) {
		return nil
	}
	m.mtx.Lock()
	defer m.mtx.Unlock()
	if !m.watchStart.IsZero() {
		return nil
	}
	// Of two gateways configured at once, the first to store it wins and
	// the other takes its start.
	now := m.now().UTC()
	put, err := notifier.Swap(m.kv, keyWatchStart, nil, []byte(now.Format(time.RFC3339Nano)))
	if err != nil {
		return fmt.Errorf("backup: storing the watch start: %w", err)
	}
	if put {
		m.watchStart = now
		return nil
	}
	m.watchStart, err = m.getWatchStart()
	return err
}

// Record stores a backup: Time defaults to now. A successful backup newer
// than the last one becomes the last success; a failure is counted.
func (m *Manager) Record(b Backup) (Backup, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	now := m.now()
	if b.Time.IsZero() {
		b.Time = now
	}
	b.Time = b.Time.UTC()
	if b.Time.After(now.Add(maxAhead)) {
		return Backup{}, fmt.Errorf("%w: time %s is in the future", ErrInvalid, b.Time.Format(time.RFC3339))
	}
	if b.Size < 0 {
		return Backup{}, fmt.Errorf("%w: size %d is negative", ErrInvalid, b.Size)
	}
	b.Location = strings.TrimSpace(b.Location)
	v, err := json.Marshal(b)
	if err != nil {
		return Backup{}, fmt.Errorf("backup: encoding: %w", err)
	}
	// Gateways sharing the store record at the same time: the sequence
	// number makes each record's key its own, and every write below is
	// one atomic step rather than a read and a write.
	key, err := m.putRecord(b.Time, v)
	if err != nil {
		return Backup{}, err
	}
	if b.OK {
		if err := m.putNewest(keyLastSuccess, b, v); err != nil {
			return Backup{}, err
		}
	} else {
		if _, err := notifier.Incr(m.kv, keyFailures, 1); err != nil {
			return Backup{}, fmt.Errorf("backup: counting the failure: %w", err)
		}
		if err := m.putNewest(keyLastFailure, b, v); err != nil {
			return Backup{}, err
		}
	}
	all, err := m.kv.List(keyBackup)
	if err != nil {
		return Backup{}, fmt.Errorf("backup: listing backups: %w", err)
	}
	// Trim the oldest: keys sort by time.
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys[:max(0, len(keys)-m.keep)] {
		if err := m.kv.Delete(k); err != nil {
			m.logger.Warn("cannot trim an old backup record", "key", k, "err", err)
		}
	}
	m.logger.Info("backup recorded", "key", key, "time", b.Time, "ok", b.OK, "size", b.Size, "location", b.Location)
	return b, nil
}

// putRecord stores a backup's record under a key of its own: the time, then
// a sequence number that no other record, from this gateway or another,
// gets. Records of older versions numbered by count; a key taken by one of
// those is skipped.
func (m *Manager) putRecord(at time.Time, v []byte) (string, error) {
	for range notifier.ModifyAttempts {
		seq, err := notifier.Incr(m.kv, keySeq, 1)
		if err != nil {
			return "", fmt.Errorf("backup: numbering the record: %w", err)
		}
		key := fmt.Sprintf("%s%020d/%020d", keyBackup, at.UnixNano(), seq)
		put, err := notifier.Swap(m.kv, key, nil, v)
		if err != nil {
			return "", fmt.Errorf("backup: storing: %w", err)
		}
		if put {
			return key, nil
		}
	}
	return "", fmt.Errorf("backup: storing: no free key after %d tries", notifier.ModifyAttempts)
}

// putNewest makes b (encoded as v) the backup at key unless the one there
// is newer. Of two gateways writing at once, the newer backup stays.
func (m *Manager) putNewest(key string, b Backup, v []byte) error {
	_, err := notifier.Modify(m.kv, key, func(cur []byte) ([]byte, bool, error) {
		if cur != nil {
			var last Backup
			if err := json.Unmarshal(cur, &last); err != nil {
				return nil, false, fmt.Errorf("decoding: %w", err)
			}
			if b.Time.Before(last.Time) {
				return nil, false, nil
			}
		}
		return v, true, nil
	})
	if err != nil {
		return fmt.Errorf("backup: storing %s: %w", key, err)
	}
	return nil
}

// Backups returns the recorded backups, newest first, at most limit (all
// when limit <= 0).
func (m *Manager) Backups(limit int) ([]Backup, error) {
	all, err := m.kv.List(keyBackup)
	if err != nil {
		return nil, fmt.Errorf("backup: listing backups: %w", err)
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]Backup, 0, len(keys))
	for _, k := range keys {
		var b Backup
		if err := json.Unmarshal(all[k], &b); err != nil {
			return nil, fmt.Errorf("backup: decoding %s: %w", k, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- lastSuccessDesc
	ch <- lastSizeDesc
	ch <- lastFailureDesc
	ch <- failuresDesc
	ch <- watchStartDesc
}

// Collect implements prometheus.Collector.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	// Another gateway sharing the store may have recorded since; on an
	// error the values last read stand.
	if err := m.load(); err != nil {
		m.logger.Warn("cannot read the backup records", "err", err)
	}
	ts := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	if b := m.lastSuccess; b != nil {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, ts(b.Time))
		ch <- prometheus.MustNewConstMetric(lastSizeDesc, prometheus.GaugeValue, float64(b.Size))
	}
	if b := m.lastFailure; b != nil {
		ch <- prometheus.MustNewConstMetric(lastFailureDesc, prometheus.GaugeValue, ts(b.Time))
	}
	ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(m.failures))
	if !m.watchStart.IsZero() {
		ch <- prometheus.MustNewConstMetric(watchStartDesc, prometheus.GaugeValue, ts(m.watchStart))
	}
}
