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
	if v, ok, err := m.kv.Get(keyWatchStart); err != nil {
		return nil, fmt.Errorf("backup: reading the watch start: %w", err)
	} else if ok {
		if m.watchStart, err = time.Parse(time.RFC3339Nano, string(v)); err != nil {
			return nil, fmt.Errorf("backup: the watch start %q: %w", v, err)
		}
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m, nil
}

// load reads the last success, the last failure and the failure count
// from the KV: a store shared by gateways has those another gateway
// recorded too. Call it with mtx held (or before m is shared).
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
	m.lastSuccess, m.lastFailure, m.failures = lastSuccess, lastFailure, failures
	return nil
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
	now := m.now().UTC()
	if err := m.kv.Put(keyWatchStart, []byte(now.Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("backup: storing the watch start: %w", err)
	}
	m.watchStart = now
	return nil
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
	// Another gateway sharing the store may have recorded since.
	if err := m.load(); err != nil {
		return Backup{}, err
	}
	v, err := json.Marshal(b)
	if err != nil {
		return Backup{}, fmt.Errorf("backup: encoding: %w", err)
	}
	all, err := m.kv.List(keyBackup)
	if err != nil {
		return Backup{}, fmt.Errorf("backup: listing backups: %w", err)
	}
	key := fmt.Sprintf("%s%020d/%020d", keyBackup, b.Time.UnixNano(), len(all))
	for {
		if _, taken := all[key]; !taken {
			break
		}
		key += "+"
	}
	if err := m.kv.Put(key, v); err != nil {
		return Backup{}, fmt.Errorf("backup: storing: %w", err)
	}
	if b.OK {
		if m.lastSuccess == nil || !b.Time.Before(m.lastSuccess.Time) {
			if err := m.kv.Put(keyLastSuccess, v); err != nil {
				return Backup{}, fmt.Errorf("backup: storing the last success: %w", err)
			}
			m.lastSuccess = &b
		}
	} else {
		if err := m.kv.Put(keyFailures, []byte(strconv.FormatInt(m.failures+1, 10))); err != nil {
			return Backup{}, fmt.Errorf("backup: storing the failure count: %w", err)
		}
		m.failures++
		if m.lastFailure == nil || !b.Time.Before(m.lastFailure.Time) {
			if err := m.kv.Put(keyLastFailure, v); err != nil {
				return Backup{}, fmt.Errorf("backup: storing the last failure: %w", err)
			}
			m.lastFailure = &b
		}
	}
	// Trim the oldest: keys sort by time.
	keys := make([]string, 0, len(all)+1)
	for k := range all {
		keys = append(keys, k)
	}
	keys = append(keys, key)
	slices.Sort(keys)
	for _, k := range keys[:max(0, len(keys)-m.keep)] {
		if err := m.kv.Delete(k); err != nil {
			m.logger.Warn("cannot trim an old backup record", "key", k, "err", err)
		}
	}
	m.logger.Info("backup recorded", "time", b.Time, "ok", b.OK, "size", b.Size, "location", b.Location)
	return b, nil
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
