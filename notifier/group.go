package notifier

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-sh/vigil/config"
)

// Grouping (escalation.group_by), as implemented here:
//
//   - An incident is keyed by the values of its group's labels
//     (Incident.Fingerprint is their hash), so the replicas of a service
//     that fire together (alerts that differ only by pod or instance) share
//     one incident, one Level 1 page and one rollback decision.
//   - Each alert is a Member with its own state. A firing alert of an open
//     incident's group joins it without a page; the incident resolves when
//     every member has resolved.
//   - Each member's own fingerprint points at its incident in the store's
//     fingerprint index (as a storm's folded alerts do), so an alert stays
//     with the incident it joined when group_by changes, and a firing
//     resolved by hand stays muted while it goes on.
//   - Incidents written before grouping have no members and are keyed by
//     their alert's fingerprint: their Alert is their one member
//     (MemberList), found through that same index entry.
//   - Storm folding counts incidents, so groups: beyond
//     escalation.storm_threshold open incidents of an alertname, the
//     alerts of further groups fold into the storm incident.

// MemberSample is how many members a message lists.
const MemberSample = 5

// groupKey returns the fingerprint of the group of an alert's labels.
func (c *runtimeConfig) groupKey(ls labels.Labels) string {
	by := c.esc.GroupBy
	if len(by) == 0 {
		by = config.DefaultGroupBy()
	}
	if len(by) == 1 && by[0] == config.GroupByAll {
		return fingerprint(ls)
	}
	b := labels.NewScratchBuilder(len(by))
	for _, name := range by {
		if v := ls.Get(name); v != "" {
			b.Add(name, v)
		}
	}
	b.Sort()
	return fingerprint(b.Labels())
}

// MemberList returns the members of an incident: its Members, or for an
// incident of an older version (none recorded) its Alert alone. A storm
// incident has none (its alerts are in Storm).
func MemberList(inc *Incident) []Member {
	if len(inc.Members) > 0 || inc.Storm != nil {
		return inc.Members
	}
	if inc.Alert.Fingerprint == "" {
		return nil
	}
	return []Member{memberOf(inc.Alert)}
}

// FiringMembers counts the members of an incident that have not resolved.
func FiringMembers(inc *Incident) int {
	n := 0
	for _, mb := range MemberList(inc) {
		if mb.State != MemberResolved {
			n++
		}
	}
	return n
}

// memberOf is the member an alert is.
func memberOf(a Alert) Member {
	mb := Member{
		Fingerprint: a.Fingerprint,
		Labels:      a.Labels,
		State:       MemberFiring,
		Value:       a.Value,
		ActiveAt:    a.ActiveAt,
		ResolvedAt:  a.ResolvedAt,
		Source:      a.Source,
		EndsAt:      a.EndsAt,
	}
	if !a.ResolvedAt.IsZero() {
		mb.State = MemberResolved
	}
	return mb
}

// members makes inc.Members hold the list MemberList reads, so that it can
// be changed in place.
func members(inc *Incident) []Member {
	if len(inc.Members) == 0 {
		inc.Members = MemberList(inc)
	}
	return inc.Members
}

// member returns the index of the member of fingerprint fp, or -1.
func member(inc *Incident, fp string) int {
	return slices.IndexFunc(MemberList(inc), func(mb Member) bool { return mb.Fingerprint == fp })
}

// allResolved reports whether every member of inc has resolved, and the
// last resolution.
func allResolved(inc *Incident) (bool, time.Time) {
	var last time.Time
	for _, mb := range MemberList(inc) {
		if mb.State != MemberResolved {
			return false, time.Time{}
		}
		if mb.ResolvedAt.After(last) {
			last = mb.ResolvedAt
		}
	}
	return true, last
}

// groups are the incidents a Notify transaction opens: opened at its end,
// so that every alert of a group in the batch is a member of the first
// page.
type groups struct {
	pending map[string]*Incident
	order   []string
}

func newGroups() *groups { return &groups{pending: map[string]*Incident{}} }

// notifyAlert records one alert of a Notify transaction.
func (m *Manager) notifyAlert(tx Tx, cfg *runtimeConfig, st *storms, gs *groups, source, expr string, a *rules.Alert, now time.Time, eff *effects) error {
	fp := fingerprint(a.Labels)
	gfp := cfg.groupKey(a.Labels)
	latest, found, err := tx.LatestIncident(fp)
	if err != nil {
		return err
	}
	if found && latest.Storm != nil && latest.Fingerprint != fp {
		if a.State == rules.StateFiring && latest.State != StateResolved {
			// In this transaction, so before any reconcile's write; a
			// storm incident as the reconcile judges it: by the alerts it
			// folds and those not recorded yet.
			m.noteFiring(fp, latest.Fingerprint)
		}
		handled, err := m.stormMember(tx, cfg, st, latest, a, fp, now, eff)
		if err != nil || handled {
			return err
		}
		found = false // the storm ended; this is a new firing
	}
	// The incident of the alert: the one it is a member of, unless that
	// ended before this firing; else its group's.
	var inc *Incident
	if found && latest.Storm == nil && member(&latest, fp) >= 0 &&
		(latest.State != StateResolved || sameFiring(&latest, fp, a)) {
		inc = &latest
	} else if p := gs.pending[gfp]; p != nil {
		inc = p
	} else {
		g, ok := latest, found
		if gfp != fp { // else read already
			if g, ok, err = tx.LatestIncident(gfp); err != nil {
				return err
			}
		}
		if ok && g.Storm == nil && g.Fingerprint == gfp {
			inc = &g
		}
	}
	if a.State == rules.StateFiring {
		if inc != nil {
			m.noteFiring(fp, gfp, inc.Fingerprint)
		} else {
			m.noteFiring(fp, gfp, stormFingerprint(a.Labels.Get(labels.AlertName)))
		}
	}
	pending := inc != nil && inc.ID == ""
	open := inc != nil && inc.State != StateResolved
	i := -1
	if inc != nil {
		i = member(inc, fp)
	}
	switch {
	case a.State == rules.StateFiring && !open:
		if inc != nil && i >= 0 && sameFiring(inc, fp, a) {
			return nil // resolved by hand while the same firing goes on
		}
		return m.openOrFold(tx, cfg, st, gs, gfp, toAlert(a, fp, source, expr, m.opts.ExternalURL), now, eff)
	case a.State == rules.StateFiring && i < 0:
		// Joins the open incident of its group: no page.
		mb := memberOf(toAlert(a, fp, source, expr, m.opts.ExternalURL))
		inc.Members = append(members(inc), mb)
		if pending {
			return nil
		}
		id, n := inc.ID, len(inc.Members)
		eff.after = append(eff.after, func() {
			m.logger.Info("alert joined its group's incident", "incident", id, "alertname", a.Labels.Get(labels.AlertName), "members", n)
		})
		if err := tx.FoldAlert(fp, inc.ID); err != nil {
			return err
		}
		if inc.State == StateTriggered && !toldAnyone(inc) {
			// Every member was muted so far: an unmuted one pages the
			// level reached, as Alertmanager sends a group again once it
			// holds an alert no silence mutes.
			silence, err := m.incidentSilencedBy(tx, inc, now, eff)
			if err != nil {
				return err
			}
			if silence == "" {
				if err := m.notifyLevel(tx, cfg, inc, max(inc.Level, 0), KindFiring, now, eff); err != nil {
					return err
				}
			}
		}
		return tx.PutIncident(inc)
	case a.State == rules.StateFiring:
		mb := &members(inc)[i]
		changed := mb.Value != a.Value || mb.State != MemberFiring || endsAtMoved(mb.EndsAt, endsAt(a, source), source)
		if mb.State != MemberFiring {
			// Fires again while others of its group still do.
			mb.State, mb.ActiveAt, mb.ResolvedAt = MemberFiring, a.ActiveAt, time.Time{}
			if !pending {
				if err := tx.FoldAlert(fp, inc.ID); err != nil {
					return err
				}
			}
		}
		if !changed {
			return nil
		}
		mb.Value, mb.EndsAt = a.Value, endsAt(a, source)
		if inc.Alert.Fingerprint == fp {
			inc.Alert.Value, inc.Alert.EndsAt = a.Value, mb.EndsAt
		}
		if pending {
			return nil
		}
		return tx.PutIncident(inc)
	case a.State != rules.StateInactive || a.ResolvedAt.IsZero() || i < 0:
		return nil
	}
	// The alert resolved.
	mb := &members(inc)[i]
	if mb.State == MemberResolved || (!open && !mb.ActiveAt.Equal(a.ActiveAt)) {
		return nil
	}
	mb.State, mb.ResolvedAt, mb.Value = MemberResolved, a.ResolvedAt, a.Value
	if inc.Alert.Fingerprint == fp {
		inc.Alert.Value = a.Value
	}
	if pending {
		return nil
	}
	if err := tx.UnfoldAlert(fp, inc.ID); err != nil {
		return err
	}
	done, last := allResolved(inc)
	if done && inc.Alert.ResolvedAt.IsZero() {
		// Set on an incident resolved by hand too: its firing ended, so
		// retention may delete it.
		inc.Alert.ResolvedAt = last
	}
	if done && open {
		return m.resolve(tx, cfg, inc, ResolvedByAlert, "", now, eff)
	}
	return tx.PutIncident(inc)
}

// sameFiring reports whether the member fp of inc is the firing of a.
func sameFiring(inc *Incident, fp string, a *rules.Alert) bool {
	i := member(inc, fp)
	return i >= 0 && MemberList(inc)[i].ActiveAt.Equal(a.ActiveAt)
}

// postedEndsAtSlack is how far a posted alert's endsAt may move without
// its incident being written. Gateways that share the store compute the
// endsAt of an alert posted without one (now + resolve_timeout) each by
// its own clock, milliseconds apart: the second notify of the same post
// must not rewrite the incident for that. A member's EndsAt is shown, not
// acted on (the sweeper resolves by the posted alerts' records), so it
// may lag a re-post by this much.
const postedEndsAtSlack = time.Minute

// endsAtMoved reports whether a member's EndsAt was changed by a notify:
// for a posted alert, by postedEndsAtSlack or more.
func endsAtMoved(was, now time.Time, source string) bool {
	if source != SourceAPI || was.IsZero() || now.IsZero() {
		return !was.Equal(now)
	}
	d := now.Sub(was)
	return d >= postedEndsAtSlack || d <= -postedEndsAtSlack
}

// endsAt is Alert.EndsAt of an alert: vigil's own rules resend theirs, so
// only another source's is kept.
func endsAt(a *rules.Alert, source string) time.Time {
	if source == SourceRules || source == "" {
		return time.Time{}
	}
	return a.ValidUntil
}

// openGroups opens the incidents of the groups started in the
// transaction and points their members at them.
func (m *Manager) openGroups(tx Tx, cfg *runtimeConfig, gs *groups, now time.Time, eff *effects) error {
	for _, gfp := range gs.order {
		inc := gs.pending[gfp]
		if done, _ := allResolved(inc); done {
			continue // fired and resolved in one batch: nothing to page
		}
		id, err := m.open(tx, cfg, gfp, inc.Alert, inc.Members, nil, now, eff)
		if err != nil {
			return err
		}
		for _, mb := range inc.Members {
			if mb.Fingerprint == gfp || mb.State == MemberResolved {
				continue // the incident's own entry, or gone already
			}
			if err := tx.FoldAlert(mb.Fingerprint, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// describeMembers is a line about an incident's members for messages:
// their count and the labels that tell the first MemberSample apart.
func describeMembers(inc *Incident) string {
	ms := MemberList(inc)
	if len(ms) < 2 {
		return ""
	}
	var first []string
	for _, mb := range ms[:min(len(ms), MemberSample)] {
		first = append(first, MemberLabels(inc, mb)+" "+mb.State)
	}
	more := ""
	if len(ms) > MemberSample {
		more = fmt.Sprintf(", and %d more", len(ms)-MemberSample)
	}
	return fmt.Sprintf("%d alerts, %d firing: %s%s", len(ms), FiringMembers(inc), strings.Join(first, "; "), more)
}

// MemberLabels returns the labels that tell a member apart from the
// others of its incident (those not shared by every member), as
// {k="v", ...}; all of its labels when it is the only one.
func MemberLabels(inc *Incident, mb Member) string {
	ms := MemberList(inc)
	keys := make([]string, 0, len(mb.Labels))
	for k, v := range mb.Labels {
		shared := len(ms) > 1
		for _, o := range ms {
			if ov, ok := o.Labels[k]; !ok || ov != v {
				shared = false
				break
			}
		}
		if !shared {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, mb.Labels[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// adoptOlderIncidents keys the open incidents written before grouping (no
// members, keyed by their alert's fingerprint) by their group, when that
// group has no open incident yet: a replica that fires after the upgrade
// then joins the incident its sibling opened before it. Their alert's own
// fingerprint keeps naming them, as a member's does.
func (m *Manager) adoptOlderIncidents(cfg *runtimeConfig) error {
	adopted := 0
	err := m.store.Update(func(tx Tx) error {
		adopted = 0
		// The open ones only: a start need not read the resolved incidents
		// retention keeps.
		var all []Incident
		for _, st := range []State{StateTriggered, StateAcknowledged} {
			open, err := tx.Incidents(st)
			if err != nil {
				return err
			}
			all = append(all, open...)
		}
		// Oldest first (IDs sort by time): the first incident of a group
		// keys it.
		slices.SortFunc(all, func(a, b Incident) int { return strings.Compare(a.ID, b.ID) })
		for _, inc := range all {
			if inc.Storm != nil || len(inc.Members) > 0 || inc.Alert.Fingerprint != inc.Fingerprint {
				continue
			}
			ls := labels.FromMap(inc.Alert.Labels)
			gfp := cfg.groupKey(ls)
			if gfp == inc.Fingerprint || fingerprint(ls) != inc.Fingerprint {
				continue // keyed by its group already, or not by its alert
			}
			g, found, err := tx.LatestIncident(gfp)
			if err != nil {
				return err
			}
			if found && g.State != StateResolved {
				continue
			}
			inc.Members = MemberList(&inc)
			inc.Fingerprint = gfp
			if err := tx.PutIncident(&inc); err != nil {
				return err
			}
			if err := tx.FoldAlert(gfp, inc.ID); err != nil {
				return err
			}
			adopted++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	if adopted > 0 {
		m.logger.Info("incidents of an older version keyed by their group", "incidents", adopted)
	}
	return nil
}

// CommonLabels returns the labels every member of an incident has with the
// same value: its Alert's labels when it has one member (or is a storm).
// A silence of them mutes the whole group, members to come included.
func CommonLabels(inc *Incident) map[string]string {
	ms := MemberList(inc)
	if len(ms) < 2 {
		return maps.Clone(inc.Alert.Labels)
	}
	out := maps.Clone(ms[0].Labels)
	for _, mb := range ms[1:] {
		for k, v := range out {
			if w, ok := mb.Labels[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}

// incidentSilencedBy returns the silence that mutes an incident's
// messages, or "". A group is muted when each of its members still firing
// (each of them, once none is) is muted, as Alertmanager sends a group
// while one of its alerts is not; it names the first member's silence. A
// storm and an incident of one alert go by their Alert's labels.
func (m *Manager) incidentSilencedBy(tx Tx, inc *Incident, now time.Time, eff *effects) (string, error) {
	ms := MemberList(inc)
	if len(ms) < 2 {
		return m.silencedBy(tx, inc.Alert.Labels, now, eff)
	}
	firing := FiringMembers(inc) > 0
	first := ""
	for _, mb := range ms {
		if firing && mb.State == MemberResolved {
			continue
		}
		id, err := m.silencedBy(tx, mb.Labels, now, eff)
		if err != nil || id == "" {
			return "", err
		}
		if first == "" {
			first = id
		}
	}
	return first, nil
}

// toldAnyone reports whether any receiver was sent (not silenced) a
// message about inc other than the rollback webhook.
func toldAnyone(inc *Incident) bool {
	return slices.ContainsFunc(inc.Notifications, func(n Notification) bool {
		return n.Outcome != OutcomeSilenced && n.Kind != KindRollback
	})
}
