package rules

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// DeadRule is a rule input that has matched no series for at least
// alerts.absent_after: the rule cannot fire (or record) while it stays so.
// It is pint's "series absent" check, done on the live data.
type DeadRule struct {
	// File is the rule's source: a rule file, or the config file's
	// "#alerts" identifier for its seed rules.
	File string `json:"file"`
	// Group and Rule name the rule; Rule is the alert name or the
	// recorded metric.
	Group string `json:"group"`
	Rule  string `json:"rule"`
	// Selector is the input that matches nothing, with the scoping vigil
	// added (network_usage{app="infrastructure",...}).
	Selector string `json:"selector"`
	// Since is when the selector last matched a series, or when vigil
	// began watching the rule if it never did.
	Since time.Time `json:"since"`
}

// limitErrPrefix starts the error Prometheus's rules give a rule whose
// evaluation produced more series or alerts than its group's limit.
const limitErrPrefix = "exceeded limit of"

// healthKey names one input selector of one rule.
type healthKey struct {
	file, group, rule, selector string
}

// selectorState is what the health check knows about one input selector.
type selectorState struct {
	matchers []*labels.Matcher
	lastSeen time.Time // last check that found a series, or when watching began
	absent   bool      // reported as dead (and logged once)
	checked  bool      // seen by the latest check, else dropped
}

// health finds rules that cannot work: input selectors that match no
// series (dead rules) and evaluations cut by the group limit. It logs each
// once and exports both as metrics.
type health struct {
	logger    *slog.Logger
	queryable storage.Queryable
	now       func() time.Time

	mtx         sync.Mutex
	absentAfter time.Duration
	inputs      map[healthKey]*selectorState
	limited     map[[3]string]bool // file, group, rule over the limit, logged
	groups      func() []*promrules.Group
	// onLimitCleared is called (without blocking) with the group and
	// name of a rule the check found back under its limit.
	onLimitCleared func(group, rule string)

	absentDesc, limitDesc *prometheus.Desc
}

func newHealth(q storage.Queryable, groups func() []*promrules.Group, now func() time.Time, logger *slog.Logger) *health {
	return &health{
		logger:    logger,
		queryable: q,
		now:       now,
		groups:    groups,
		inputs:    map[healthKey]*selectorState{},
		limited:   map[[3]string]bool{},
		absentDesc: prometheus.NewDesc("vigil_rule_inputs_absent",
			"1 when this input selector of the rule has matched no series for alerts.absent_after (the rule cannot fire), else 0.",
			[]string{"rule_group", "rule", "selector"}, nil),
		limitDesc: prometheus.NewDesc("vigil_rule_limit_exceeded",
			"1 when the rule's last evaluation produced more series or alerts than alerts.limit (or its group's limit) and was dropped, else 0.",
			[]string{"rule_group", "rule"}, nil),
	}
}

// setAbsentAfter applies alerts.absent_after; 0 turns the check off.
func (h *health) setAbsentAfter(d time.Duration) {
	h.mtx.Lock()
	defer h.mtx.Unlock()
	h.absentAfter = d
	if d <= 0 {
		clear(h.inputs)
	}
}

// interval is how long to wait for the next check: every, at most a
// quarter of absent_after (so a dead rule is reported within 1.25 times
// absent_after), at least a second.
func (h *health) interval(every time.Duration) time.Duration {
	h.mtx.Lock()
	defer h.mtx.Unlock()
	if h.absentAfter > 0 {
		return min(every, max(h.absentAfter/4, time.Second))
	}
	return every
}

// check looks at every loaded rule once: which input selectors matched a
// series within the last absent_after, which rules hit their limit.
// A selector is reported only after absent_after without a series since
// vigil began watching its rule, so the minutes after a start or a reload,
// before the first scrapes, report nothing.
func (h *health) check(ctx context.Context) {
	now := h.now()
	groups := h.groups()

	h.mtx.Lock()
	defer h.mtx.Unlock()
	h.checkLimits(groups)
	if h.absentAfter <= 0 {
		return
	}
	for _, s := range h.inputs {
		s.checked = false
	}
	q, err := h.queryable.Querier(now.Add(-h.absentAfter).UnixMilli(), now.UnixMilli())
	if err != nil {
		h.logger.Warn("cannot check rule inputs", "err", err)
		return
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: now.Add(-h.absentAfter).UnixMilli(), End: now.UnixMilli(), Func: "series"}
	// found is whether each selector matched a series in this check: many
	// rules share a selector (up{job="..."}), which is queried once.
	found := map[string]bool{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			for sel, ms := range inputSelectors(r.Query()) {
				k := healthKey{g.File(), g.Name(), r.Name(), sel}
				s, ok := h.inputs[k]
				if !ok {
					s = &selectorState{matchers: ms, lastSeen: now}
					h.inputs[k] = s
				}
				s.checked = true
				seen, ok := found[sel]
				if !ok {
					ss := q.Select(ctx, false, hints, ms...)
					if seen = ss.Next(); !seen {
						if err := ss.Err(); err != nil {
							h.logger.Warn("cannot check rule inputs", "rule", r.Name(), "selector", sel, "err", err)
							continue
						}
					}
					found[sel] = seen
				}
				if seen {
					s.lastSeen = now
				}
				switch dead := now.Sub(s.lastSeen) >= h.absentAfter; {
				case dead && !s.absent:
					h.logger.Warn("rule input matches no series: the rule cannot fire until it does",
						"rule_group", g.Name(), "rule", r.Name(), "selector", sel, "file", g.File(),
						"since", s.lastSeen.UTC().Format(time.RFC3339), "absent_after", h.absentAfter)
				case !dead && s.absent:
					h.logger.Info("rule input matches series again", "rule_group", g.Name(), "rule", r.Name(), "selector", sel)
				}
				s.absent = now.Sub(s.lastSeen) >= h.absentAfter
			}
		}
	}
	for k, s := range h.inputs {
		if !s.checked {
			delete(h.inputs, k) // the rule is gone or changed
		}
	}
}

// checkLimits logs once each rule whose evaluation the group limit cut.
func (h *health) checkLimits(groups []*promrules.Group) {
	seen := map[[3]string]bool{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			k := [3]string{g.File(), g.Name(), r.Name()}
			if !isLimitErr(r.LastError()) {
				continue
			}
			seen[k] = true
			if !h.limited[k] {
				h.logger.Error("rule produced more than its limit: this evaluation wrote nothing and its alerts are dropped",
					"rule_group", g.Name(), "rule", r.Name(), "limit", g.Limit(), "err", r.LastError())
			}
		}
	}
	for k := range h.limited {
		if !seen[k] {
			h.logger.Info("rule is back under its limit", "rule_group", k[1], "rule", k[2])
			if h.onLimitCleared != nil {
				h.onLimitCleared(k[1], k[2])
			}
		}
	}
	h.limited = seen
}

// overLimit reports whether an alerting rule of this name failed its last
// evaluation on its limit.
func (h *health) overLimit(name string) bool {
	for _, g := range h.groups() {
		for _, r := range g.Rules() {
			if _, ok := r.(*promrules.AlertingRule); ok && r.Name() == name && isLimitErr(r.LastError()) {
				return true
			}
		}
	}
	return false
}

func isLimitErr(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), limitErrPrefix)
}

// dead returns the dead rule inputs, by file, group, rule and selector.
func (h *health) dead() []DeadRule {
	h.mtx.Lock()
	defer h.mtx.Unlock()
	var out []DeadRule
	for k, s := range h.inputs {
		if s.absent {
			out = append(out, DeadRule{File: k.file, Group: k.group, Rule: k.rule, Selector: k.selector, Since: s.lastSeen})
		}
	}
	slices.SortFunc(out, func(a, b DeadRule) int {
		return strings.Compare(a.File+"\x00"+a.Group+"\x00"+a.Rule+"\x00"+a.Selector, b.File+"\x00"+b.Group+"\x00"+b.Rule+"\x00"+b.Selector)
	})
	return out
}

// Describe implements prometheus.Collector.
func (h *health) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.absentDesc
	ch <- h.limitDesc
}

// Collect implements prometheus.Collector. The limit state is read from
// the rules at scrape time; the absent state is the latest check's.
func (h *health) Collect(ch chan<- prometheus.Metric) {
	// Rules of one name in one group (a warning and a critical threshold)
	// or in groups of one name in two files share a series: a duplicate
	// would fail the whole gathering. 1 if any of them is over its limit.
	limited := map[[2]string]float64{}
	for _, g := range h.groups() {
		for _, r := range g.Rules() {
			k := [2]string{g.Name(), r.Name()}
			if isLimitErr(r.LastError()) {
				limited[k] = 1
			} else if _, ok := limited[k]; !ok {
				limited[k] = 0
			}
		}
	}
	for k, v := range limited {
		ch <- prometheus.MustNewConstMetric(h.limitDesc, prometheus.GaugeValue, v, k[0], k[1])
	}
	h.mtx.Lock()
	defer h.mtx.Unlock()
	// Two files may hold groups of the same name with the same rule: one
	// series for both, dead if either is.
	type key struct{ group, rule, selector string }
	vals := map[key]float64{}
	for k, s := range h.inputs {
		kk := key{k.group, k.rule, k.selector}
		if s.absent {
			vals[kk] = 1
		} else if _, ok := vals[kk]; !ok {
			vals[kk] = 0
		}
	}
	for k, v := range vals {
		ch <- prometheus.MustNewConstMetric(h.absentDesc, prometheus.GaugeValue, v, k.group, k.rule, k.selector)
	}
}

// inputSelectors returns the vector selectors of expr that should match
// series, keyed by their text without offset or @. Selectors under
// absent() and absent_over_time() are meant to match nothing, the sides of
// `or` are alternatives, and ALERTS and ALERTS_FOR_STATE exist only while
// something fires: they are left out.
func inputSelectors(expr parser.Expr) map[string][]*labels.Matcher {
	out := map[string][]*labels.Matcher{}
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, p := range path {
			if c, ok := p.(*parser.Call); ok && (c.Func.Name == "absent" || c.Func.Name == "absent_over_time") {
				return nil
			}
			// The sides of `or` are alternatives, one of which may well be
			// missing (the DR watch's backup, WAL and replica terms).
			if b, ok := p.(*parser.BinaryExpr); ok && b.Op == parser.LOR {
				return nil
			}
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual &&
				(m.Value == "ALERTS" || m.Value == "ALERTS_FOR_STATE") {
				return nil
			}
		}
		plain := &parser.VectorSelector{Name: vs.Name, LabelMatchers: vs.LabelMatchers}
		out[plain.String()] = vs.LabelMatchers
		return nil
	})
	return out
}
