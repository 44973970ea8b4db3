package notifier

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNotFound is returned for an incident or a silence that does not exist.
var ErrNotFound = errors.New("not found")

// StoreFile is the name of the embedded store in the data directory.
const StoreFile = "notifier.db"

// Delivery is one message waiting in the durable queue for its receiver.
type Delivery struct {
	ID         string `json:"id"`
	IncidentID string `json:"incidentId"`
	Receiver   string `json:"receiver"`
	// Message is the Message as JSON, exactly as it will be sent.
	Message     json.RawMessage `json:"message"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"nextAttempt"`
	QueuedAt    time.Time       `json:"queuedAt"`
	LastError   string          `json:"lastError,omitempty"`
}

// Store keeps incidents, the delivery queue, silences and the receivers'
// key-value spaces. Every state change is one call to Update, so an incident change
// and the deliveries it causes are written together or not at all. The
// embedded implementation is bbolt (OpenBoltStore); a shared one (PostgreSQL)
// can implement the same interface so that two gateways page once.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(tx Tx) error) error
	// Update runs fn in a read-write transaction that is durable when
	// Update returns nil. fn may run more than once; it must not have side
	// effects outside tx.
	Update(fn func(tx Tx) error) error
	// KV returns the key-value space of a namespace.
	KV(namespace string) KV
	// Close releases the store.
	Close() error
}

// Tx is one transaction of a Store.
type Tx interface {
	// Incident returns an incident by ID, or ErrNotFound.
	Incident(id string) (Incident, error)
	// LatestIncident returns the newest incident of a fingerprint, open or
	// not.
	LatestIncident(fingerprint string) (Incident, bool, error)
	// Incidents returns the incidents in a state ("" for all), newest first.
	Incidents(state State) ([]Incident, error)
	// PutIncident writes an incident and makes it the latest of its
	// fingerprint when it is newer than the one there.
	PutIncident(inc *Incident) error
	// IncidentsAfter returns at most limit incidents (all when limit <= 0)
	// whose IDs sort after the given one ("" for the first), oldest first.
	IncidentsAfter(after string, limit int) ([]Incident, error)
	// DeleteIncident removes an incident, and its fingerprint's entry and
	// its members' when they name it, so that LatestIncident never names a
	// deleted incident. Removing an incident that does not exist does nothing.
	DeleteIncident(id string) error
	// Delivery returns a queued delivery.
	Delivery(id string) (Delivery, bool, error)
	// Deliveries returns every queued delivery, oldest first.
	Deliveries() ([]Delivery, error)
	// PutDelivery queues or updates a delivery.
	PutDelivery(d *Delivery) error
	// DeleteDelivery removes a delivery that is done.
	DeleteDelivery(id string) error
	// SetRollbackPending marks an incident whose rollback decision is still
	// to be made (so a crash between opening and deciding loses nothing).
	SetRollbackPending(incidentID string, pending bool) error
	// RollbackPending lists the incidents marked by SetRollbackPending.
	RollbackPending() ([]string, error)
	// Silence returns a silence by ID, or ErrNotFound.
	Silence(id string) (Silence, error)
	// Silences returns every silence, expired ones too, newest first.
	Silences() ([]Silence, error)
	// PutSilence writes a silence.
	PutSilence(s *Silence) error
	// DeleteSilence removes a silence. Removing one that does not exist
	// does nothing.
	DeleteSilence(id string) error
	// FoldAlert makes LatestIncident of an alert's fingerprint name the
	// storm incident that folds the alert, or the group incident it is a
	// member of.
	FoldAlert(fingerprint, incidentID string) error
	// UnfoldAlert removes what FoldAlert wrote, when the fingerprint still
	// names that incident.
	UnfoldAlert(fingerprint, incidentID string) error
}

var (
	bucketIncidents   = []byte("incidents")
	bucketFingerprint = []byte("fingerprints")
	bucketDeliveries  = []byte("deliveries")
	bucketRollback    = []byte("rollback_pending")
	bucketKV          = []byte("kv")
	bucketSilences    = []byte("silences")
)

// BoltStore is the embedded Store: one bbolt file with fsync on every
// commit.
type BoltStore struct {
	db *bolt.DB
}

// OpenBoltStore opens (or creates) <dir>/notifier.db with mode 0600.
func OpenBoltStore(dir string) (*BoltStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, StoreFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIncidents, bucketFingerprint, bucketDeliveries, bucketRollback, bucketKV, bucketSilences} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// View implements Store.
func (s *BoltStore) View(fn func(tx Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Update implements Store.
func (s *BoltStore) Update(fn func(tx Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// KV implements Store.
func (s *BoltStore) KV(namespace string) KV { return &boltKV{db: s.db, ns: []byte(namespace)} }

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Incident(id string) (Incident, error) {
	v := t.tx.Bucket(bucketIncidents).Get([]byte(id))
	if v == nil {
		return Incident{}, fmt.Errorf("incident %q: %w", id, ErrNotFound)
	}
	var inc Incident
	if err := json.Unmarshal(v, &inc); err != nil {
		return Incident{}, fmt.Errorf("decode incident %q: %w", id, err)
	}
	return inc, nil
}

func (t boltTx) LatestIncident(fp string) (Incident, bool, error) {
	id := t.tx.Bucket(bucketFingerprint).Get([]byte(fp))
	if id == nil {
		return Incident{}, false, nil
	}
	inc, err := t.Incident(string(id))
	if errors.Is(err, ErrNotFound) {
		// A folded alert's storm incident was pruned.
		return Incident{}, false, nil
	}
	if err != nil {
		return Incident{}, false, err
	}
	return inc, true, nil
}

func (t boltTx) FoldAlert(fp, id string) error {
	if err := t.tx.Bucket(bucketFingerprint).Put([]byte(fp), []byte(id)); err != nil {
		return fmt.Errorf("fold alert %q into incident %q: %w", fp, id, err)
	}
	return nil
}

func (t boltTx) UnfoldAlert(fp, id string) error {
	fps := t.tx.Bucket(bucketFingerprint)
	if !bytes.Equal(fps.Get([]byte(fp)), []byte(id)) {
		return nil
	}
	if err := fps.Delete([]byte(fp)); err != nil {
		return fmt.Errorf("unfold alert %q from incident %q: %w", fp, id, err)
	}
	return nil
}

func (t boltTx) Incidents(state State) ([]Incident, error) {
	out := []Incident{}
	c := t.tx.Bucket(bucketIncidents).Cursor()
	// IDs sort by time, so walking backwards is newest first.
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		var inc Incident
		if err := json.Unmarshal(v, &inc); err != nil {
			return nil, fmt.Errorf("decode incident %q: %w", k, err)
		}
		if state == "" || inc.State == state {
			out = append(out, inc)
		}
	}
	return out, nil
}

func (t boltTx) PutIncident(inc *Incident) error {
	v, err := json.Marshal(inc)
	if err != nil {
		return fmt.Errorf("encode incident %q: %w", inc.ID, err)
	}
	if err := t.tx.Bucket(bucketIncidents).Put([]byte(inc.ID), v); err != nil {
		return fmt.Errorf("write incident %q: %w", inc.ID, err)
	}
	fps := t.tx.Bucket(bucketFingerprint)
	if cur := fps.Get([]byte(inc.Fingerprint)); cur == nil || bytes.Compare(cur, []byte(inc.ID)) < 0 {
		if err := fps.Put([]byte(inc.Fingerprint), []byte(inc.ID)); err != nil {
			return fmt.Errorf("index incident %q: %w", inc.ID, err)
		}
	}
	return nil
}

func (t boltTx) IncidentsAfter(after string, limit int) ([]Incident, error) {
	out := []Incident{}
	c := t.tx.Bucket(bucketIncidents).Cursor()
	k, v := c.First()
	if after != "" {
		k, v = c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
	}
	for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		var inc Incident
		if err := json.Unmarshal(v, &inc); err != nil {
			return nil, fmt.Errorf("decode incident %q: %w", k, err)
		}
		out = append(out, inc)
	}
	return out, nil
}

func (t boltTx) DeleteIncident(id string) error {
	incs := t.tx.Bucket(bucketIncidents)
	v := incs.Get([]byte(id))
	if v == nil {
		return nil
	}
	var inc struct {
		Fingerprint string `json:"fingerprint"`
		Members     []struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"members"`
	}
	if err := json.Unmarshal(v, &inc); err != nil {
		return fmt.Errorf("decode incident %q: %w", id, err)
	}
	fps := t.tx.Bucket(bucketFingerprint)
	keys := []string{inc.Fingerprint}
	for _, mb := range inc.Members {
		keys = append(keys, mb.Fingerprint)
	}
	for _, fp := range keys {
		if cur := fps.Get([]byte(fp)); bytes.Equal(cur, []byte(id)) {
			if err := fps.Delete([]byte(fp)); err != nil {
				return fmt.Errorf("unindex incident %q: %w", id, err)
			}
		}
	}
	if err := incs.Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete incident %q: %w", id, err)
	}
	return nil
}

func (t boltTx) Delivery(id string) (Delivery, bool, error) {
	v := t.tx.Bucket(bucketDeliveries).Get([]byte(id))
	if v == nil {
		return Delivery{}, false, nil
	}
	var d Delivery
	if err := json.Unmarshal(v, &d); err != nil {
		return Delivery{}, false, fmt.Errorf("decode delivery %q: %w", id, err)
	}
	return d, true, nil
}

func (t boltTx) Deliveries() ([]Delivery, error) {
	var out []Delivery
	err := t.tx.Bucket(bucketDeliveries).ForEach(func(k, v []byte) error {
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode delivery %q: %w", k, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

func (t boltTx) PutDelivery(d *Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery %q: %w", d.ID, err)
	}
	if err := t.tx.Bucket(bucketDeliveries).Put([]byte(d.ID), v); err != nil {
		return fmt.Errorf("write delivery %q: %w", d.ID, err)
	}
	return nil
}

func (t boltTx) DeleteDelivery(id string) error {
	if err := t.tx.Bucket(bucketDeliveries).Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete delivery %q: %w", id, err)
	}
	return nil
}

func (t boltTx) SetRollbackPending(id string, pending bool) error {
	b := t.tx.Bucket(bucketRollback)
	if pending {
		return b.Put([]byte(id), []byte{})
	}
	return b.Delete([]byte(id))
}

func (t boltTx) RollbackPending() ([]string, error) {
	var out []string
	err := t.tx.Bucket(bucketRollback).ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

func (t boltTx) Silence(id string) (Silence, error) {
	v := t.tx.Bucket(bucketSilences).Get([]byte(id))
	if v == nil {
		return Silence{}, fmt.Errorf("silence %q: %w", id, ErrNotFound)
	}
	var s Silence
	if err := json.Unmarshal(v, &s); err != nil {
		return Silence{}, fmt.Errorf("decode silence %q: %w", id, err)
	}
	return s, nil
}

func (t boltTx) Silences() ([]Silence, error) {
	out := []Silence{}
	c := t.tx.Bucket(bucketSilences).Cursor()
	// IDs sort by creation time, so walking backwards is newest first.
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		var s Silence
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("decode silence %q: %w", k, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (t boltTx) PutSilence(s *Silence) error {
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode silence %q: %w", s.ID, err)
	}
	if err := t.tx.Bucket(bucketSilences).Put([]byte(s.ID), v); err != nil {
		return fmt.Errorf("write silence %q: %w", s.ID, err)
	}
	return nil
}

func (t boltTx) DeleteSilence(id string) error {
	if err := t.tx.Bucket(bucketSilences).Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete silence %q: %w", id, err)
	}
	return nil
}

// boltKV is one namespace: a nested bucket under "kv", created on first
// write.
type boltKV struct {
	db *bolt.DB
	ns []byte
}

func (kv *boltKV) Get(key string) ([]byte, bool, error) {
	var out []byte
	var ok bool
	err := kv.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(kv.ns)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			out, ok = bytes.Clone(v), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("kv %s get: %w", kv.ns, err)
	}
	return out, ok, nil
}

func (kv *boltKV) Put(key string, value []byte) error {
	err := kv.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(kv.ns)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("kv %s put: %w", kv.ns, err)
	}
	return nil
}

func (kv *boltKV) Delete(key string) error {
	err := kv.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(kv.ns)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("kv %s delete: %w", kv.ns, err)
	}
	return nil
}

func (kv *boltKV) List(prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := kv.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(kv.ns)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			out[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s list: %w", kv.ns, err)
	}
	return out, nil
}

// idSource makes IDs that sort by creation time and are unique: 16 hex
// digits of Unix nanoseconds (strictly increasing within a process, even
// when the clock stands still) and 8 hex digits of randomness (unique across
// processes and restarts).
type idSource struct {
	mtx  sync.Mutex
	last int64
}

func (s *idSource) next(now time.Time) string {
	s.mtx.Lock()
	n := now.UnixNano()
	if n <= s.last {
		n = s.last + 1
	}
	s.last = n
	s.mtx.Unlock()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(n))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// Write implements kvWriter: puts and deletes in one transaction.
func (kv *boltKV) Write(put map[string][]byte, del []string) error {
	err := kv.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(kv.ns)
		if err != nil {
			return err
		}
		for k, v := range put {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for _, k := range del {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kv %s write: %w", kv.ns, err)
	}
	return nil
}

// Incr implements AtomicKV in one bbolt transaction.
func (kv *boltKV) Incr(key string, delta int64) (int64, error) {
	var n int64
	err := kv.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(kv.ns)
		if err != nil {
			return err
		}
		if n, err = addDecimal(b.Get([]byte(key)), delta); err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(strconv.FormatInt(n, 10)))
	})
	if err != nil {
		return 0, fmt.Errorf("kv %s incr %s: %w", kv.ns, key, err)
	}
	return n, nil
}

// PutIfAbsent implements AtomicKV in one bbolt transaction.
func (kv *boltKV) PutIfAbsent(key string, value []byte) (bool, error) {
	return kv.swap("put if absent", key, func(cur []byte) bool { return cur == nil }, value)
}

// CompareAndSwap implements AtomicKV in one bbolt transaction.
func (kv *boltKV) CompareAndSwap(key string, old, value []byte) (bool, error) {
	return kv.swap("compare and swap", key, func(cur []byte) bool { return cur != nil && bytes.Equal(cur, old) }, value)
}

// swap writes value when ok accepts the current value (nil when absent).
func (kv *boltKV) swap(op, key string, ok func(cur []byte) bool, value []byte) (bool, error) {
	var done bool
	err := kv.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(kv.ns)
		if err != nil {
			return err
		}
		if done = ok(b.Get([]byte(key))); !done {
			return nil
		}
		if value == nil {
			value = []byte{} // bbolt reads a nil value back as absent
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return false, fmt.Errorf("kv %s %s %s: %w", kv.ns, op, key, err)
	}
	return done, nil
}
