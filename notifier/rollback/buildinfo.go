package rollback

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
// reads the live versions, picks the new one (pickVersion) and hands it to
// ObserveBuildInfo. It returns when ctx is done.
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
		live, err := liveBuildVersions(ctx, q, s.app, s.versionLabel, m.now())
		if err != nil {
			m.logger.Debug("reading the app's build info", "err", err)
			continue
		}
		version, err := m.pickVersion(live)
		if err != nil {
			m.logger.Warn("reading the deploy history", "err", err)
			continue
		}
		if d, err := m.ObserveBuildInfo("", "", version); err != nil {
			m.logger.Warn("recording a deploy seen in the app's build info", "err", err)
		} else if d != nil {
			m.logger.Info("deploy seen in the app's build info", "version", d.Version, "previous", d.PreviousVersion)
		}
	}
}

// liveVersion is a version of the app with a live *_build_info series.
type liveVersion struct {
	version string
	// last is the newest sample's time, in ms.
	last int64
}

// pickVersion chooses the version to hand to ObserveBuildInfo from the live
// ones. With one, it is that one. While several run side by side (a canary,
// blue-green or a rolling deploy), taking the newest sample would flap
// between them at every scrape; so the version last seen stays unless a
// live one was never deployed nor seen before, which is the new one.
// Without a seen version among them, the newest sample wins.
func (m *Manager) pickVersion(live []liveVersion) (string, error) {
	switch len(live) {
	case 0:
		return "", nil
	case 1:
		return live[0].version, nil
	}
	newest := live[0]
	for _, l := range live[1:] {
		if l.last > newest.last {
			newest = l
		}
	}
	s := m.settings()
	b, ok, err := m.kv.Get(pairKey(keySeen, s.service, s.environment))
	if err != nil {
		return "", err
	}
	seen := string(b)
	if !ok || !slices.ContainsFunc(live, func(l liveVersion) bool { return l.version == seen }) {
		return newest.version, nil
	}
	hist, err := m.Deploys(0)
	if err != nil {
		return "", err
	}
	known := map[string]bool{seen: true}
	for _, d := range hist {
		if d.Service == s.service && d.Environment == s.environment {
			known[d.Version], known[d.PreviousVersion] = true, true
		}
	}
	for _, l := range live {
		if !known[l.version] {
			return l.version, nil
		}
	}
	return seen, nil
}

// liveBuildVersions returns the values of label on the app's *_build_info
// series that have a live sample (no stale marker after it).
func liveBuildVersions(ctx context.Context, q storage.Queryable, app, label string, now time.Time) ([]liveVersion, error) {
	if label == "" {
		label = "version"
	}
	maxt := now.UnixMilli()
	querier, err := q.Querier(maxt-buildInfoLookback.Milliseconds(), maxt)
	if err != nil {
		return nil, fmt.Errorf("querier: %w", err)
	}
	defer querier.Close()
	set := querier.Select(ctx, false, nil,
		labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+_build_info"),
		labels.MustNewMatcher(labels.MatchEqual, "app", app),
		labels.MustNewMatcher(labels.MatchNotEqual, label, ""),
	)
	byVersion := map[string]int64{}
	var it chunkenc.Iterator
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
		if v := series.Labels().Get(label); last >= 0 && last >= byVersion[v] {
			byVersion[v] = last
		}
	}
	out := make([]liveVersion, 0, len(byVersion))
	for _, v := range slices.Sorted(maps.Keys(byVersion)) {
		out = append(out, liveVersion{version: v, last: byVersion[v]})
	}
	return out, set.Err()
}
