package notifier

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Retry backoff of a failed delivery.
const (
	backoffStart  = time.Second
	backoffFactor = 2
	backoffCap    = 5 * time.Minute
	// commitBatch bounds how many finished attempts share one transaction.
	commitBatch = 512
)

// item is a delivery in the in-memory queue. Deliveries of one incident to
// one receiver form a lane and go out in order (a Slack update after its
// post); only the head of a lane is in the heap.
type item struct {
	d     Delivery
	msg   *Message
	lane  string
	next  time.Time
	index int
}

type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].d.ID < h[j].d.ID
}
func (h itemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *itemHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// queue holds the deliveries that are in the store, by next attempt time.
type queue struct {
	clock Clock
	wake  chan struct{}

	mtx   sync.Mutex
	h     itemHeap
	lanes map[string][]*item
	n     int
}

func newQueue(c Clock) *queue {
	return &queue{clock: c, wake: make(chan struct{}, 1), lanes: map[string][]*item{}}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) len() int {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	return q.n
}

func (q *queue) push(ds ...Delivery) {
	q.mtx.Lock()
	for _, d := range ds {
		it := &item{d: d, lane: d.IncidentID + "\x00" + d.Receiver, next: d.NextAttempt, index: -1}
		l := q.lanes[it.lane]
		q.lanes[it.lane] = append(l, it)
		if len(l) == 0 {
			heap.Push(&q.h, it)
		}
		q.n++
	}
	q.mtx.Unlock()
	q.signal()
}

// restore loads the store's deliveries in ID (creation) order.
func (q *queue) restore(ds []Delivery) {
	slices.SortFunc(ds, func(a, b Delivery) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	q.push(ds...)
}

// ids returns the IDs of the deliveries in the queue, in flight included.
func (q *queue) ids() map[string]bool {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	out := make(map[string]bool, q.n)
	for _, l := range q.lanes {
		for _, it := range l {
			out[it.d.ID] = true
		}
	}
	return out
}

// pop returns a due item, or the time the first one is due (zero when the
// queue is empty).
func (q *queue) pop(now time.Time) (*item, time.Time) {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	if len(q.h) == 0 {
		return nil, time.Time{}
	}
	if q.h[0].next.After(now) {
		return nil, q.h[0].next
	}
	return heap.Pop(&q.h).(*item), time.Time{}
}

// done removes a finished item and lets the next of its lane go.
func (q *queue) done(it *item) {
	q.mtx.Lock()
	l := q.lanes[it.lane]
	if i := slices.Index(l, it); i >= 0 {
		l = slices.Delete(l, i, i+1)
		q.n--
	}
	if len(l) == 0 {
		delete(q.lanes, it.lane)
	} else {
		q.lanes[it.lane] = l
		if l[0].index < 0 {
			heap.Push(&q.h, l[0])
		}
	}
	q.mtx.Unlock()
	q.signal()
}

// retry puts an item back for another attempt at next.
func (q *queue) retry(it *item, next time.Time) {
	q.mtx.Lock()
	it.next = next
	if it.index < 0 {
		heap.Push(&q.h, it)
	}
	q.mtx.Unlock()
	q.signal()
}

// result is the outcome of one attempt.
type result struct {
	it    *item
	at    time.Time
	err   error
	retry bool
}

// runDelivery sends until ctx is done: one dispatcher hands due items to the
// workers, and one committer writes their results in batches, so attempts
// that finish together share a transaction (and its fsync).
func (m *Manager) runDelivery(ctx context.Context) {
	work := make(chan *item)
	results := make(chan result, m.opts.Workers*4)
	var workers sync.WaitGroup
	for range m.opts.Workers {
		workers.Go(func() {
			for it := range work {
				if !m.claimAttempt(it) {
					continue // another gateway's, or done by it
				}
				if r, ok := m.attempt(ctx, it); ok {
					results <- r
				} else {
					m.queue.retry(it, it.next) // abandoned at shutdown
				}
			}
		})
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for r := range results {
			batch := []result{r}
		drain:
			for len(batch) < commitBatch {
				select {
				case r, ok := <-results:
					if !ok {
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			m.commit(batch)
		}
	}()

	m.dispatch(ctx, work)
	close(work)
	workers.Wait()
	close(results)
	<-committed
}

func (m *Manager) dispatch(ctx context.Context, work chan<- *item) {
	for {
		it, next := m.queue.pop(m.clock.Now())
		if it != nil {
			select {
			case work <- it:
				continue
			case <-ctx.Done():
				m.queue.retry(it, it.next)
				return
			}
		}
		var t Timer
		if !next.IsZero() {
			t = m.clock.AfterFunc(next.Sub(m.clock.Now()), m.queue.signal)
		}
		select {
		case <-m.queue.wake:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// attempt sends one item once. It reports false when the attempt was cut
// short by shutdown and must not count.
func (m *Manager) attempt(ctx context.Context, it *item) (result, bool) {
	if ctx.Err() != nil {
		return result{}, false
	}
	if it.msg == nil {
		var msg Message
		if err := json.Unmarshal(it.d.Message, &msg); err != nil {
			return result{it: it, at: m.clock.Now(), err: fmt.Errorf("decode stored message: %w", err)}, true
		}
		it.msg = &msg
	}
	rcv := m.receiver(it.d.Receiver)
	if rcv == nil {
		// A reload may bring it back; the expiry ends the wait.
		return result{it: it, at: m.clock.Now(), err: fmt.Errorf("receiver %q is not configured", it.d.Receiver), retry: true}, true
	}
	actx, cancel := context.WithTimeout(ctx, m.opts.AttemptTimeout)
	retry, err := rcv.Notify(actx, it.msg)
	cancel()
	if err != nil && ctx.Err() != nil {
		return result{}, false
	}
	return result{it: it, at: m.clock.Now(), err: err, retry: retry}, true
}

// backoff is the wait before attempt n+1 after n failed ones: exponential
// from 1s, doubled each time, capped at 5m, with ±20% jitter; a RetryAfter
// error sets it.
func backoff(attempts int, err error) time.Duration {
	if ra, ok := errors.AsType[*RetryAfter](err); ok && ra.After > 0 {
		return ra.After
	}
	d := backoffStart
	for i := 1; i < attempts && d < backoffCap; i++ {
		d *= backoffFactor
	}
	d = min(d, backoffCap)
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// outcome is what commit decided for one result, applied after the commit.
type outcome struct {
	it       *item
	done     bool
	next     time.Time
	outcome  string
	rollback bool
}

// commit records a batch of attempt results in one transaction.
func (m *Manager) commit(batch []result) {
	var outs []outcome
	err := m.store.Update(func(tx Tx) error {
		outs = outs[:0]
		for _, r := range batch {
			o, err := m.record(tx, r)
			if err != nil {
				return err
			}
			outs = append(outs, o)
		}
		return nil
	})
	if err != nil {
		m.logger.Error("cannot record delivery attempts; retrying them", "err", err, "deliveries", len(batch))
		for _, r := range batch {
			m.queue.retry(r.it, r.at.Add(backoffStart))
		}
		return
	}
	for _, o := range outs {
		if !o.done {
			m.queue.retry(o.it, o.next)
			continue
		}
		m.queue.done(o.it)
		m.releaseAttempt(o.it.d.ID)
		m.metrics.notifications.WithLabelValues(o.it.d.Receiver, o.outcome).Inc()
		if o.rollback {
			m.metrics.rollbacks.WithLabelValues(o.outcome).Inc()
		}
	}
	m.metrics.pending.Set(float64(m.queue.len()))
}

// record writes one attempt's result: the delivery's new schedule (or its
// removal) and the notification's (and rollback's) outcome on the incident.
func (m *Manager) record(tx Tx, r result) (outcome, error) {
	o := outcome{it: r.it}
	d, ok, err := tx.Delivery(r.it.d.ID)
	if err != nil {
		return o, err
	}
	if !ok {
		o.done, o.outcome = true, OutcomeDelivered
		return o, nil
	}
	d.Attempts++
	errText := ""
	switch {
	case r.err == nil:
		o.done, o.outcome = true, OutcomeDelivered
	case !r.retry:
		o.done, o.outcome = true, OutcomeFailed
	default:
		expiry := d.QueuedAt.Add(m.opts.DeliveryExpiry)
		if !r.at.Before(expiry) {
			o.done, o.outcome = true, OutcomeFailed
		} else {
			o.next = r.at.Add(backoff(d.Attempts, r.err))
			if o.next.After(expiry) {
				o.next = expiry // one last attempt at the expiry
			}
		}
	}
	if r.err != nil {
		errText = r.err.Error()
		m.metrics.deliveryErrors.Inc()
		m.logger.Warn("delivery attempt failed", "delivery", d.ID, "receiver", d.Receiver, "attempt", d.Attempts,
			"retry", !o.done, "err", r.err)
	}
	if o.done {
		if err := tx.DeleteDelivery(d.ID); err != nil {
			return o, err
		}
	} else {
		d.NextAttempt, d.LastError = o.next, errText
		if err := tx.PutDelivery(&d); err != nil {
			return o, err
		}
	}

	inc, err := tx.Incident(d.IncidentID)
	if errors.Is(err, ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	for i := range inc.Notifications {
		n := &inc.Notifications[i]
		if n.DeliveryID != d.ID {
			continue
		}
		n.Attempts, n.Error = d.Attempts, errText
		if o.done {
			n.Outcome, n.DoneAt = o.outcome, r.at
		}
	}
	if rb := inc.Rollback; rb != nil && rb.DeliveryID == d.ID {
		o.rollback = o.done
		rb.Attempts = d.Attempts
		if o.done {
			rb.Outcome = o.outcome
		}
		var sc StatusCoder
		if errors.As(r.err, &sc) {
			rb.StatusCode = sc.StatusCode()
		} else if r.err == nil {
			rb.StatusCode = 0
		}
	}
	return o, tx.PutIncident(&inc)
}
