package main

import (
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"

	"github.com/vigil-sh/vigil/rules"
)

// queryLookback is the query engine's LookbackDelta (see serveWith): how far
// back an instant query reads a sample.
const queryLookback = 5 * time.Minute

// freshRules tells the notifier's restart reconcile (notifier.LocalRules)
// when the rules have evaluated on samples scraped after vigil started.
//
// A target's first scrape after the start is committed once its second
// one has begun: Prometheus reports a scrape (LastScrape) just before it
// commits the samples, and a target's scrapes run one after the other. A
// group's evaluation saw those samples when it began after that was
// observed and its query time is past their timestamps. With no target at
// all, or targets that never report, the start is past the query lookback
// after lookback, so that no sample from before the restart can be read.
type freshRules struct {
	scrape      *scrape.Manager
	rules       *rules.Manager
	start       time.Time
	lookback    time.Duration
	expectRules bool

	mtx sync.Mutex
	// first is each target's first scrape after the start.
	first map[string]time.Time
	// scrapedAt is when every target was seen with a committed scrape;
	// newest is the newest of those scrapes' timestamps.
	scrapedAt, newest time.Time
	fresh             bool
}

func newFreshRules(sm *scrape.Manager, rm *rules.Manager, start time.Time, lookback time.Duration, expectRules bool) *freshRules {
	return &freshRules{scrape: sm, rules: rm, start: start, lookback: lookback, expectRules: expectRules,
		first: map[string]time.Time{}}
}

// Fresh implements notifier.LocalRules.
func (f *freshRules) Fresh() bool {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.fresh {
		return true
	}
	now := time.Now()
	if f.scrapedAt.IsZero() && !f.scraped(now) {
		return false
	}
	groups := f.rules.RuleGroups()
	if len(groups) == 0 && f.expectRules && now.Sub(f.start) < f.lookback {
		return false // the rules are not loaded yet
	}
	for _, g := range groups {
		if !g.HasAlertingRules() {
			continue
		}
		if g.GetLastEvaluation().Before(f.scrapedAt) || g.GetLastEvalTimestamp().Add(-g.QueryOffset()).Before(f.newest) {
			return false
		}
	}
	f.fresh = true
	return true
}

// scraped reports whether every active target has a committed scrape from
// after the start, and notes when.
func (f *freshRules) scraped(now time.Time) bool {
	if now.Sub(f.start) >= f.lookback {
		f.scrapedAt, f.newest = now, f.start.Add(f.lookback)
		return true
	}
	n, done := 0, true
	var newest time.Time
	for job, targets := range f.scrape.TargetsActive() {
		for _, t := range targets {
			n++
			key := job + "\x00" + t.String()
			last := t.LastScrape()
			first, ok := f.first[key]
			switch {
			case !ok && !last.Before(f.start):
				f.first[key] = last
				done = false
			case !ok || !last.After(first):
				done = false
			case first.After(newest):
				newest = first
			}
		}
	}
	if n == 0 || !done {
		return false
	}
	f.scrapedAt, f.newest = now, newest
	return true
}

// ForEachActiveAlert implements notifier.LocalRules.
func (f *freshRules) ForEachActiveAlert(fn func(labels.Labels, promrules.AlertState)) {
	for _, r := range f.rules.AlertingRules() {
		r.ForEachActiveAlert(func(a *promrules.Alert) {
			if a.State == promrules.StatePending || a.State == promrules.StateFiring {
				fn(a.Labels, a.State)
			}
		})
	}
}

// OverLimit implements notifier.LocalRules.
func (f *freshRules) OverLimit(alertname string) bool { return f.rules.OverLimit(alertname) }
