package storage

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestOpenSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	opts := &Options{Dir: dir, Retention: 6 * time.Hour}

	db, err := Open(opts, discard(), prometheus.NewRegistry())
	require.NoError(t, err)

	lset := labels.FromStrings("__name__", "up", "app", "app", "environment", "test", "service", "checkout")
	now := time.Now().UnixMilli()
	app := db.AppenderV2(context.Background())
	for i := range 10 {
		_, err := app.Append(0, lset, 0, now+int64(i)*1000, float64(i), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.NoError(t, db.Close())

	db, err = Open(opts, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	got := querySamples(t, db, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.Len(t, got, 1)
	require.Equal(t, lset.String(), got[0].lset)
	require.Len(t, got[0].values, 10)
	require.Equal(t, 9.0, got[0].values[9])
}

func TestOpenSecondOpenFailsOnLock(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(&Options{Dir: dir}, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	_, err = Open(&Options{Dir: dir}, discard(), prometheus.NewRegistry())
	require.Error(t, err)
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), dir)
	require.Contains(t, err.Error(), filepath.Join(dir, "lock"))
}

func TestOpenBadDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	readOnly := filepath.Join(base, "read-only")
	require.NoError(t, os.Mkdir(readOnly, 0o500))

	tests := []struct {
		name    string
		opts    *Options
		skip    bool
		wantErr []string
	}{
		{name: "no options", opts: nil, wantErr: []string{"no data directory"}},
		{name: "empty dir", opts: &Options{}, wantErr: []string{"no data directory"}},
		{name: "under a file", opts: &Options{Dir: filepath.Join(file, "data")},
			wantErr: []string{filepath.Join(file, "data"), "create data directory", "not a directory"}},
		{name: "dir is a file", opts: &Options{Dir: file},
			wantErr: []string{file, "create data directory"}},
		{name: "read-only dir", opts: &Options{Dir: readOnly}, skip: os.Geteuid() == 0,
			wantErr: []string{readOnly, "not writable", "permission denied"}},
		{name: "negative retention", opts: &Options{Dir: base, Retention: -time.Hour},
			wantErr: []string{base, "negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("root writes to read-only directories")
			}
			db, err := Open(tt.opts, discard(), prometheus.NewRegistry())
			if db != nil {
				require.NoError(t, db.Close())
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestDBOptions(t *testing.T) {
	tests := []struct {
		retention          time.Duration
		wantMin, wantMax   time.Duration
		wantRetentionMilli int64
	}{
		{retention: 24 * time.Hour, wantMin: 2 * time.Hour, wantMax: 2*time.Hour + 24*time.Minute},
		{retention: 15 * 24 * time.Hour, wantMin: 2 * time.Hour, wantMax: 36 * time.Hour},
		{retention: 12 * time.Hour, wantMin: time.Hour, wantMax: time.Hour + 12*time.Minute},
		{retention: 6 * time.Hour, wantMin: 30 * time.Minute, wantMax: 36 * time.Minute},
		{retention: time.Hour, wantMin: 15 * time.Minute, wantMax: 15 * time.Minute},
		{retention: 2 * 365 * 24 * time.Hour, wantMin: 2 * time.Hour, wantMax: 31 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.retention.String(), func(t *testing.T) {
			o := dbOptions(tt.retention)
			require.Equal(t, tt.retention.Milliseconds(), o.RetentionDuration)
			require.Equal(t, tt.wantMin.Milliseconds(), o.MinBlockDuration)
			require.Equal(t, tt.wantMax.Milliseconds(), o.MaxBlockDuration)
			require.Equal(t, "snappy", o.WALCompression)
		})
	}
}

type series struct {
	lset   string
	values []float64
}

func querySamples(t *testing.T, db *tsdb.DB, ms ...*labels.Matcher) []series {
	t.Helper()
	q, err := db.Querier(0, time.Now().Add(time.Hour).UnixMilli())
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, ms...)
	var out []series
	for ss.Next() {
		s := series{lset: ss.At().Labels().String()}
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			s.values = append(s.values, v)
		}
		require.NoError(t, it.Err())
		out = append(out, s)
	}
	require.NoError(t, ss.Err())
	return out
}
