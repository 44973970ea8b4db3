package notifier

import (
	"errors"
	"slices"
)

// writeBack is a Tx that keeps the incidents a transaction writes and
// writes each once, when the transaction is done with them (flush): the
// alerts of one Notify batch often belong to a few groups, and each alert
// that joins or refreshes a group rewrote its incident, a round trip and a
// growing body each time on a shared store; FoldAlert calls wait the same
// way. Reads see what was kept as written; anything that scans incidents,
// or deletes one, writes first.
type writeBack struct {
	Tx
	dirty map[string]*Incident
	// order is the order of the first write of each kept incident, kept
	// when flushing: an incident resolved before another of its
	// fingerprint opens is written first.
	order []string
	// folds are the FoldAlert calls not written yet: alert fingerprint to
	// incident ID.
	folds map[string]string
}

func newWriteBack(tx Tx) *writeBack {
	return &writeBack{Tx: tx, dirty: map[string]*Incident{}, folds: map[string]string{}}
}

// clone copies an incident deeply enough that a caller changing its
// members, notifications or comments in place does not change the kept one.
func clone(inc *Incident) Incident {
	out := *inc
	out.Members = slices.Clone(inc.Members)
	out.Notifications = slices.Clone(inc.Notifications)
	out.Comments = slices.Clone(inc.Comments)
	return out
}

// Incident implements Tx.
func (w *writeBack) Incident(id string) (Incident, error) {
	if d, ok := w.dirty[id]; ok {
		return clone(d), nil
	}
	return w.Tx.Incident(id)
}

// LatestIncident implements Tx: the store's answer, as kept when it was
// written in this transaction, or a newer incident of the fingerprint opened
// in it.
func (w *writeBack) LatestIncident(fp string) (Incident, bool, error) {
	if id, ok := w.folds[fp]; ok {
		// FoldAlert names the incident, whatever else the fingerprint has.
		if d, ok := w.dirty[id]; ok {
			return clone(d), true, nil
		}
		inc, err := w.Tx.Incident(id)
		if errors.Is(err, ErrNotFound) {
			return Incident{}, false, nil
		}
		return inc, err == nil, err
	}
	for _, id := range w.order {
		// One incident of a fingerprint is open at a time: an open one
		// kept here is its latest, and the store need not be asked.
		if d := w.dirty[id]; d.Fingerprint == fp && d.State != StateResolved {
			return clone(d), true, nil
		}
	}
	inc, found, err := w.Tx.LatestIncident(fp)
	if err != nil {
		return Incident{}, false, err
	}
	if found {
		if d, ok := w.dirty[inc.ID]; ok {
			inc = clone(d)
		}
	}
	for _, id := range w.order {
		if d := w.dirty[id]; d.Fingerprint == fp && (!found || d.ID > inc.ID) {
			inc, found = clone(d), true
		}
	}
	return inc, found, nil
}

// PutIncident implements Tx: the incident is kept until flush.
func (w *writeBack) PutIncident(inc *Incident) error {
	if _, ok := w.dirty[inc.ID]; !ok {
		w.order = append(w.order, inc.ID)
	}
	c := clone(inc)
	w.dirty[inc.ID] = &c
	return nil
}

// FoldAlert implements Tx: written at flush.
func (w *writeBack) FoldAlert(fp, id string) error {
	w.folds[fp] = id
	return nil
}

// UnfoldAlert implements Tx.
func (w *writeBack) UnfoldAlert(fp, id string) error {
	if w.folds[fp] == id {
		delete(w.folds, fp)
	}
	return w.Tx.UnfoldAlert(fp, id)
}

// Incidents implements Tx.
func (w *writeBack) Incidents(state State) ([]Incident, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	return w.Tx.Incidents(state)
}

// IncidentsAfter implements Tx.
func (w *writeBack) IncidentsAfter(after string, limit int) ([]Incident, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	return w.Tx.IncidentsAfter(after, limit)
}

// DeleteIncident implements Tx.
func (w *writeBack) DeleteIncident(id string) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.Tx.DeleteIncident(id)
}

// flush writes the kept incidents, each once, in the order they were first
// written.
func (w *writeBack) flush() error {
	for _, id := range w.order {
		if err := w.Tx.PutIncident(w.dirty[id]); err != nil {
			return err
		}
	}
	clear(w.dirty)
	w.order = w.order[:0]
	for fp, id := range w.folds {
		if err := w.Tx.FoldAlert(fp, id); err != nil {
			return err
		}
	}
	clear(w.folds)
	return nil
}
