package rollback

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// buildInfoLookback is how far back the newest *_build_info sample is looked
// for: a little more than a scrape interval would do, but a slow target
// should not make the version disappear.
const buildInfoLookback = 5 * time.Minute

// WatchBuildInfo records a deploy whenever the version label of the app's
// *_build_info metric changes, as scraped into q: every scrape interval it
// reads the newest version and hands it to ObserveBuildInfo. It returns when
// ctx is done.
func (m *Manager) WatchBuildInfo(ctx context.Context, q storage.Queryable) error {
	for {
		s := m.settings()
		every := s.interval
		if every <= 0 {
			every = 15 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
		if s.app == "" {
			continue
		}
		version, err := newestBuildVersion(ctx, q, s.app, m.now())
		if err != nil {
			m.logger.Debug("reading the app's build info", "err", err)
			continue
		}
		if d, err := m.ObserveBuildInfo("", "", version); err != nil {
			m.logger.Warn("recording a deploy seen in the app's build info", "err", err)
		} else if d != nil {
			m.logger.Info("deploy seen in the app's build info", "version", d.Version, "previous", d.PreviousVersion)
		}
	}
}

// newestBuildVersion returns the version label of the app's *_build_info
// series with the newest live sample; "" when there is none.
func newestBuildVersion(ctx context.Context, q storage.Queryable, app string, now time.Time) (string, error) {
	maxt := now.UnixMilli()
	querier, err := q.Querier(maxt-buildInfoLookback.Milliseconds(), maxt)
	if err != nil {
		return "", fmt.Errorf("querier: %w", err)
	}
	defer querier.Close()
	set := querier.Select(ctx, false, nil,
		labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+_build_info"),
		labels.MustNewMatcher(labels.MatchEqual, "app", app),
		labels.MustNewMatcher(labels.MatchNotEqual, "version", ""),
	)
	var (
		version string
		newest  int64 = -1
		it      chunkenc.Iterator
	)
	for set.Next() {
		series := set.At()
		it = series.Iterator(it)
		var last int64 = -1
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			if value.IsStaleNaN(v) {
				last = -1 // the target went away
				continue
			}
			last = t
		}
		if last > newest {
			newest, version = last, series.Labels().Get("version")
		}
	}
	return version, set.Err()
}
