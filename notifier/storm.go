package notifier

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// Alert storms: a rule over many series can fire for all of them at once.
// Each would open an incident, write its record and deliveries and page
// Level 1, so once an alertname has escalation.storm_threshold open
// incidents, its further alerts are folded into one storm incident: one
// page, one escalation, and a count of what it holds. The threshold is the
// guard behind any future grouping.
//
//   - A folded alert's fingerprint points at the storm incident in the
//     store's fingerprint index (Tx.FoldAlert), so its resends find it and
//     change nothing, and its resolution is counted once: the pointer is
//     removed then (Tx.UnfoldAlert).
//   - The storm incident resolves when the last alert it folds resolves, or
//     at the reconcile after a start when no alert it folds is active.
//   - While a storm incident is open, every new alert of its name joins it.
//     After it resolved by hand, its alerts that keep firing stay muted,
//     as with any incident resolved by hand; an alert that starts after
//     the resolution opens or folds anew.

// StormSample is how many of its alerts a storm incident lists.
const StormSample = 10

// notifyBatch bounds how many alerts of one Notify call share a
// transaction: a storm of 100k alerts is many short transactions, not one
// that holds the store for minutes and all its pages in memory.
const notifyBatch = 500

// Storm is what an incident that folds an alert storm says about it.
type Storm struct {
	// Alerts counts every alert folded into the incident; Firing those
	// not resolved yet.
	Alerts int `json:"alerts"`
	Firing int `json:"firing"`
	// Sample is the first StormSample alerts folded.
	Sample []Alert `json:"sample"`
}

// stormFingerprint is the fingerprint of the storm incident of an
// alertname; it cannot be an alert's (those are 16 hex digits).
func stormFingerprint(name string) string {
	return fmt.Sprintf("storm-%016x", labels.FromStrings(labels.AlertName, name).Hash())
}

// stormAlert is the alert a storm incident shows: the name and the labels
// that route and silence it, taken from its first alert.
func stormAlert(first Alert, threshold int) Alert {
	ls := map[string]string{labels.AlertName: first.Name}
	for _, k := range []string{"severity", "app", "environment", "service"} {
		if v, ok := first.Labels[k]; ok {
			ls[k] = v
		}
	}
	return Alert{
		Name:        first.Name,
		Fingerprint: stormFingerprint(first.Name),
		Labels:      ls,
		Annotations: map[string]string{
			"summary": fmt.Sprintf("Alert storm: %s fired for more than %d series at once; the rest are folded into this incident", first.Name, threshold),
		},
		ActiveAt:     first.ActiveAt,
		FiredAt:      first.FiredAt,
		GeneratorURL: first.GeneratorURL,
		Source:       first.Source,
	}
}

// storms is the storm bookkeeping of one Notify transaction.
type storms struct {
	threshold int
	// openCount returns the open incidents of an alertname, storms aside,
	// as committed (Manager.openByName).
	committed func(name string) int
	// opened counts the incidents opened in this transaction by alertname.
	opened map[string]int
	// incidents are the storm incidents read or started in the
	// transaction, by fingerprint, written once at its end.
	incidents map[string]*Incident
	// members are the fingerprints folded into each storm in the
	// transaction.
	members map[string][]string
}

func newStorms(threshold int, committed func(string) int) *storms {
	return &storms{threshold: threshold, committed: committed, opened: map[string]int{},
		incidents: map[string]*Incident{}, members: map[string][]string{}}
}

// openCount returns the open incidents of an alertname, storms aside. The
// count of committed ones comes from memory rather than a scan of the
// store on every opening; concurrent Notify calls may see it one
// transaction late, so a threshold may be passed by up to notifyBatch.
func (s *storms) openCount(name string) int { return s.committed(name) + s.opened[name] }

// openCount is Manager.openByName[name].
func (m *Manager) openCount(name string) int {
	m.openMtx.Lock()
	defer m.openMtx.Unlock()
	return m.openByName[name]
}

// countOpen moves Manager.openByName[name] by d.
func (m *Manager) countOpen(name string, d int) {
	m.openMtx.Lock()
	defer m.openMtx.Unlock()
	if m.openByName[name] += d; m.openByName[name] <= 0 {
		delete(m.openByName, name)
	}
}

// openStorm returns the open storm incident of an alertname, from this
// transaction or the store, or nil.
func (s *storms) openStorm(tx Tx, name string) (*Incident, error) {
	fp := stormFingerprint(name)
	if inc, ok := s.incidents[fp]; ok {
		return inc, nil
	}
	inc, found, err := tx.LatestIncident(fp)
	if err != nil || !found || inc.State == StateResolved {
		return nil, err
	}
	s.incidents[fp] = &inc
	return &inc, nil
}

// cached returns the transaction's copy of a storm incident read from the
// store. Only an open one is kept (to be written at the end); a resolved
// one changes no more.
func (s *storms) cached(inc Incident) *Incident {
	if c, ok := s.incidents[inc.Fingerprint]; ok && c.ID == inc.ID {
		return c
	}
	if inc.State != StateResolved {
		s.incidents[inc.Fingerprint] = &inc
	}
	return &inc
}

// fold adds a firing alert to a storm incident.
func (s *storms) fold(storm *Incident, a Alert) {
	st := storm.Storm
	st.Alerts++
	st.Firing++
	if len(st.Sample) < StormSample {
		st.Sample = append(st.Sample, a)
	}
	s.members[storm.Fingerprint] = append(s.members[storm.Fingerprint], a.Fingerprint)
}

// openOrFold starts the incident of group gfp for a firing alert (opened
// at the end of the transaction, see openGroups), or folds the alert into
// its name's storm incident once the name has threshold open incidents.
func (m *Manager) openOrFold(tx Tx, cfg *runtimeConfig, st *storms, gs *groups, gfp string, a Alert, now time.Time, eff *effects) error {
	if st.threshold > 0 {
		storm, err := st.openStorm(tx, a.Name)
		if err != nil {
			return err
		}
		if storm == nil {
			if st.openCount(a.Name) >= st.threshold {
				// Opened at the end of the transaction, with the count of
				// everything folded by then.
				sa := stormAlert(a, st.threshold)
				storm = &Incident{Fingerprint: sa.Fingerprint, Alert: sa, Storm: &Storm{}}
				st.incidents[storm.Fingerprint] = storm
			}
		}
		if storm != nil {
			st.fold(storm, a)
			return nil
		}
	}
	gs.pending[gfp] = &Incident{Fingerprint: gfp, Alert: a, Members: []Member{memberOf(a)}}
	gs.order = append(gs.order, gfp)
	st.opened[a.Name]++
	return nil
}

// stormMember handles an alert whose fingerprint points at a storm
// incident. It returns false when the alert is to be taken as new (the
// storm ended and this is a later firing).
func (m *Manager) stormMember(tx Tx, cfg *runtimeConfig, st *storms, latest Incident, a *rules.Alert, fp string, now time.Time, eff *effects) (bool, error) {
	storm := st.cached(latest)
	switch {
	case a.State == rules.StateFiring && storm.State != StateResolved:
		return true, nil // counted already
	case a.State == rules.StateFiring:
		// Muted while the firing that was resolved by hand goes on.
		return storm.ResolvedBy != ResolvedByAlert && !a.ActiveAt.After(storm.ResolvedAt), nil
	case a.State != rules.StateInactive || a.ResolvedAt.IsZero():
		return true, nil
	}
	if err := tx.UnfoldAlert(fp, storm.ID); err != nil {
		return true, err
	}
	if storm.State == StateResolved {
		return true, nil
	}
	storm.Storm.Firing = max(storm.Storm.Firing-1, 0)
	if storm.Storm.Firing == 0 {
		storm.Alert.ResolvedAt = a.ResolvedAt
		if err := m.resolve(tx, cfg, storm, ResolvedByAlert, "", now, eff); err != nil {
			return true, err
		}
	}
	return true, nil
}

// describe writes the storm's count and first alerts into its alert's
// description, which every message shows.
func describe(storm *Incident) {
	st := storm.Storm
	var first []string
	for _, a := range st.Sample[:min(len(st.Sample), 5)] {
		ls := labels.NewBuilder(labels.FromMap(a.Labels))
		for k := range storm.Alert.Labels {
			ls.Del(k)
		}
		first = append(first, ls.Labels().String())
	}
	if storm.Alert.Annotations == nil {
		storm.Alert.Annotations = map[string]string{}
	}
	storm.Alert.Annotations["description"] = fmt.Sprintf("%d alerts folded, %d still firing; the first: %s",
		st.Alerts, st.Firing, strings.Join(first, ", "))
}

// flush writes the storm incidents of the transaction, opening the new
// ones, and points their alerts' fingerprints at them.
func (m *Manager) flush(tx Tx, cfg *runtimeConfig, st *storms, now time.Time, eff *effects) error {
	for fp, storm := range st.incidents {
		describe(storm)
		if storm.ID == "" {
			id, err := m.open(tx, cfg, storm.Fingerprint, storm.Alert, nil, storm.Storm, now, eff)
			if err != nil {
				return err
			}
			storm.ID = id
			n, name := storm.Storm.Alerts, storm.Alert.Name
			eff.after = append(eff.after, func() {
				m.logger.Warn("alert storm: alerts folded into one incident", "alertname", name, "incident", id, "alerts", n)
			})
		} else if err := tx.PutIncident(storm); err != nil {
			return err
		}
		for _, member := range st.members[fp] {
			if err := tx.FoldAlert(member, storm.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
