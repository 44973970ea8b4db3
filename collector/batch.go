package collector

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// newSeriesPerCommit is how many series new to the scrape cache one TSDB
// commit takes before the scrape's appender commits and goes on in a fresh
// one.
//
// The TSDB writes all the series a commit creates as one WAL record, and
// keeps the buffers that record was encoded and snappy-compressed in for
// the rest of its life (the head's byte pool and the WAL's compression
// buffer never shrink). The first scrape of a target of 100,000 series
// makes a 15 MB record, so about 32 MB of the heap (320 bytes a series)
// stay held for a record written once. Committing every 5,000 new series
// bounds that record, and the buffers, near 1 MB, the size of the samples
// record every scrape writes anyway. Scrapes that add fewer series (every
// scrape after the first of a steady target) commit once, as before.
const newSeriesPerCommit = 5000

// batchingAppendable hands the scrape manager appenders that commit every
// newSeriesPerCommit new series (see there).
type batchingAppendable struct {
	storage.AppendableV2
	perCommit int
}

func (b batchingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &batchingAppender{ctx: ctx, to: b.AppendableV2, app: b.AppendableV2.AppenderV2(ctx), perCommit: b.perCommit}
}

// batchingAppender counts the series the scrape cache did not know (ref 0)
// and commits when they reach perCommit. A scrape that fails after such a
// commit keeps the samples committed before it (Prometheus would discard
// the whole scrape); the scrape's later samples are rolled back as usual.
type batchingAppender struct {
	ctx       context.Context
	to        storage.AppendableV2
	app       storage.AppenderV2
	perCommit int
	newSeries int
}

func (a *batchingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64,
	h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions,
) (storage.SeriesRef, error) {
	got, err := a.app.Append(ref, ls, st, t, v, h, fh, opts)
	if err != nil || ref != 0 {
		return got, err
	}
	if a.newSeries++; a.newSeries < a.perCommit {
		return got, nil
	}
	a.newSeries = 0
	err = a.app.Commit()
	a.app = a.to.AppenderV2(a.ctx)
	if err != nil {
		return got, fmt.Errorf("commit a batch of %d new series: %w", a.perCommit, err)
	}
	return got, nil
}

func (a *batchingAppender) Commit() error   { return a.app.Commit() }
func (a *batchingAppender) Rollback() error { return a.app.Rollback() }
