package collector

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/stretchr/testify/require"

	vstorage "github.com/vigil-sh/vigil/storage"
)

// TestBatchingAppenderBoundsSeriesRecords appends one scrape of 12,000 new
// series through the scrape manager's appendable and reads the WAL back:
// no series record holds more than newSeriesPerCommit series (the buffers
// the TSDB keeps are as large as its largest record), every sample is
// stored, series the scrape cache knows (ref != 0) do not count, and a
// rollback drops only what came after the last batch's commit.
func TestBatchingAppenderBoundsSeriesRecords(t *testing.T) {
	dir := t.TempDir()
	db, err := vstorage.Open(&vstorage.Options{Dir: dir}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	appendable := batchingAppendable{AppendableV2: db, perCommit: newSeriesPerCommit}
	series := func(i int) labels.Labels {
		return labels.FromStrings("__name__", "x", "i", strconv.Itoa(i))
	}

	const n = 12_000
	refs := make([]storage.SeriesRef, n)
	app := appendable.AppenderV2(ctx)
	for i := range n {
		refs[i], err = app.Append(0, series(i), 0, 1000, float64(i), nil, nil, storage.AOptions{})
		require.NoError(t, err)
		require.NotZero(t, refs[i])
	}
	require.NoError(t, app.Commit())

	// Known series do not count: 12,000 of them in the next scrape commit
	// once, and a rollback drops them all.
	app = appendable.AppenderV2(ctx)
	for i := range n {
		_, err := app.Append(refs[i], series(i), 0, 2000, 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Rollback())

	// 6,000 new series and a rollback: the first 5,000 were committed.
	app = appendable.AppenderV2(ctx)
	for i := n; i < n+6000; i++ {
		_, err := app.Append(0, series(i), 0, 3000, 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Rollback())

	q, err := db.Querier(0, 10_000)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
	var stored, at2000, at3000 int
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			switch ts, _ := it.At(); ts {
			case 1000:
				stored++
			case 2000:
				at2000++
			case 3000:
				at3000++
			}
		}
	}
	require.NoError(t, set.Err())
	require.Equal(t, n, stored, "every sample of the batched scrape is stored")
	require.Zero(t, at2000, "the rolled-back scrape of known series left samples")
	require.Equal(t, newSeriesPerCommit, at3000, "the batch committed before the rollback")

	// The WAL's series records: none larger than one batch.
	require.NoError(t, db.Close())
	sr, err := wlog.NewSegmentsReader(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	defer sr.Close()
	r := wlog.NewReader(sr)
	var dec record.Decoder
	var records, total, largest int
	for r.Next() {
		if dec.Type(r.Record()) != record.Series {
			continue
		}
		s, err := dec.Series(r.Record(), nil)
		require.NoError(t, err)
		records++
		total += len(s)
		largest = max(largest, len(s))
	}
	require.NoError(t, r.Err())
	require.Equal(t, n+6000, total)
	require.Equal(t, newSeriesPerCommit, largest)
	require.Equal(t, 5, records, "12,000 new series in 3 records, 6,000 in 2")
}

// failingAppendable hands out appenders whose first Commit fails.
type failingAppendable struct {
	opened, committed, failed int
}

func (f *failingAppendable) AppenderV2(context.Context) storage.AppenderV2 {
	f.opened++
	return &failingAppender{f: f}
}

type failingAppender struct {
	f       *failingAppendable
	samples int
}

func (a *failingAppender) Append(_ storage.SeriesRef, _ labels.Labels, _, _ int64, _ float64,
	_ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions,
) (storage.SeriesRef, error) {
	a.samples++
	return 1, nil
}

func (a *failingAppender) Commit() error {
	if a.f.failed == 0 {
		a.f.failed++
		return errors.New("disk full")
	}
	a.f.committed += a.samples
	return nil
}

func (a *failingAppender) Rollback() error { return nil }

// A batch commit that fails is reported by the Append that triggered it,
// and the appends after it go to a fresh appender, not the spent one.
func TestBatchingAppenderCommitFailure(t *testing.T) {
	to := &failingAppendable{}
	app := batchingAppendable{AppendableV2: to, perCommit: 2}.AppenderV2(context.Background())
	add := func(i int) error {
		_, err := app.Append(0, labels.FromStrings("__name__", "x", "i", strconv.Itoa(i)), 0, 1000, 1, nil, nil, storage.AOptions{})
		return err
	}
	require.NoError(t, add(0))
	err := add(1)
	require.ErrorContains(t, err, "commit a batch of 2 new series: disk full")
	require.Equal(t, 2, to.opened, "a fresh appender after the failed commit")
	require.NoError(t, add(2))
	require.NoError(t, app.Commit())
	require.Equal(t, 1, to.committed, "only the sample after the failure is committed")
}
