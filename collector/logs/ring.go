package logs

import "sync"

// ring keeps the last lines of one log.
type ring struct {
	mtx   sync.Mutex
	lines []Line
	next  int // where the next line goes
	full  bool
}

func newRing(size int) *ring { return &ring{lines: make([]Line, size)} }

// add appends lines, overwriting the oldest.
func (r *ring) add(lines []Line) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	if len(r.lines) == 0 {
		return
	}
	if len(lines) > len(r.lines) {
		lines = lines[len(lines)-len(r.lines):]
	}
	for _, l := range lines {
		r.lines[r.next] = l
		r.next++
		if r.next == len(r.lines) {
			r.next = 0
			r.full = true
		}
	}
}

// last returns up to limit lines, oldest first; limit <= 0 means all.
func (r *ring) last(limit int) []Line {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	n := r.next
	if r.full {
		n = len(r.lines)
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]Line, 0, limit)
	start := r.next - limit
	if start < 0 {
		start += len(r.lines)
	}
	for i := 0; i < limit; i++ {
		out = append(out, r.lines[(start+i)%len(r.lines)])
	}
	return out
}
