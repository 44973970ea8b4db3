package notifier

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
)

// MemKV is a KV in memory, for tests and for receivers that run without a
// store.
type MemKV struct {
	mtx sync.Mutex
	m   map[string][]byte
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: map[string][]byte{}} }

// Get implements KV.
func (kv *MemKV) Get(key string) ([]byte, bool, error) {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	v, ok := kv.m[key]
	return append([]byte(nil), v...), ok, nil
}

// Put implements KV.
func (kv *MemKV) Put(key string, value []byte) error {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	kv.m[key] = append([]byte(nil), value...)
	return nil
}

// Delete implements KV.
func (kv *MemKV) Delete(key string) error {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	delete(kv.m, key)
	return nil
}

// List implements KV.
func (kv *MemKV) List(prefix string) (map[string][]byte, error) {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	out := map[string][]byte{}
	for k, v := range maps.All(kv.m) {
		if strings.HasPrefix(k, prefix) {
			out[k] = append([]byte(nil), v...)
		}
	}
	return out, nil
}

// AtomicKV is a KV whose read-modify-writes are each one atomic step, for
// what two gateways sharing a store may change at once: a counter, a claim
// that only one of them may win. Both stores and MemKV implement it.
type AtomicKV interface {
	KV
	// Incr adds delta to the decimal integer at key (0 when absent) and
	// returns the sum; a value that is not a decimal integer is an error.
	Incr(key string, delta int64) (int64, error)
	// PutIfAbsent writes value unless key exists, and reports whether it
	// did.
	PutIfAbsent(key string, value []byte) (bool, error)
	// CompareAndSwap writes value when key exists and holds old, and
	// reports whether it did.
	CompareAndSwap(key string, old, value []byte) (bool, error)
}

// Incr adds delta to the decimal integer at key in one step when kv is an
// AtomicKV. Other KVs (test doubles) get a read and a write, which is
// atomic only under the caller's own lock.
func Incr(kv KV, key string, delta int64) (int64, error) {
	if a, ok := kv.(AtomicKV); ok {
		return a.Incr(key, delta)
	}
	v, _, err := kv.Get(key)
	if err != nil {
		return 0, err
	}
	n, err := addDecimal(v, delta)
	if err != nil {
		return 0, fmt.Errorf("kv incr %s: %w", key, err)
	}
	return n, kv.Put(key, []byte(strconv.FormatInt(n, 10)))
}

// Swap writes value at key when key holds old, or when key is absent and
// old is nil, in one step when kv is an AtomicKV, and reports whether it
// did; it is how a gateway claims a key another may claim at the same
// time. Other KVs get a read and a write, as with Incr.
func Swap(kv KV, key string, old, value []byte) (bool, error) {
	if a, ok := kv.(AtomicKV); ok {
		if old == nil {
			return a.PutIfAbsent(key, value)
		}
		return a.CompareAndSwap(key, old, value)
	}
	cur, found, err := kv.Get(key)
	if err != nil {
		return false, err
	}
	if found != (old != nil) || (found && !bytes.Equal(cur, old)) {
		return false, nil
	}
	return true, kv.Put(key, value)
}

// ModifyAttempts bounds Modify's rounds, which go round again only when
// another gateway wrote the key between the read and the swap.
const ModifyAttempts = 10

// Modify is a read-modify-write of one key that two gateways may run at
// once: fn gets the value at key (nil when absent) and returns the value
// to write, or write false to leave it; the write is a Swap from the value
// read, and a lost swap reads again. It reports whether it wrote.
func Modify(kv KV, key string, fn func(cur []byte) (next []byte, write bool, err error)) (bool, error) {
	for range ModifyAttempts {
		cur, found, err := kv.Get(key)
		if err != nil {
			return false, err
		}
		if !found {
			cur = nil
		}
		next, write, err := fn(cur)
		if err != nil || !write {
			return false, err
		}
		ok, err := Swap(kv, key, cur, next)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, fmt.Errorf("kv %s: still contended after %d tries", key, ModifyAttempts)
}

// addDecimal adds delta to v, a decimal integer or empty (0); a sum
// beyond int64 is an error, as PostgreSQL's bigint makes it.
func addDecimal(v []byte, delta int64) (int64, error) {
	var n int64
	if len(v) > 0 {
		var err error
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return 0, fmt.Errorf("value %q is not an integer", v)
		}
	}
	if (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, fmt.Errorf("%d + %d is beyond a 64-bit integer", n, delta)
	}
	return n + delta, nil
}

// Incr implements AtomicKV.
func (kv *MemKV) Incr(key string, delta int64) (int64, error) {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	n, err := addDecimal(kv.m[key], delta)
	if err != nil {
		return 0, fmt.Errorf("kv incr %s: %w", key, err)
	}
	kv.m[key] = []byte(strconv.FormatInt(n, 10))
	return n, nil
}

// PutIfAbsent implements AtomicKV.
func (kv *MemKV) PutIfAbsent(key string, value []byte) (bool, error) {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	if _, ok := kv.m[key]; ok {
		return false, nil
	}
	kv.m[key] = append([]byte{}, value...)
	return true, nil
}

// CompareAndSwap implements AtomicKV.
func (kv *MemKV) CompareAndSwap(key string, old, value []byte) (bool, error) {
	kv.mtx.Lock()
	defer kv.mtx.Unlock()
	if cur, ok := kv.m[key]; !ok || !bytes.Equal(cur, old) {
		return false, nil
	}
	kv.m[key] = append([]byte{}, value...)
	return true, nil
}
