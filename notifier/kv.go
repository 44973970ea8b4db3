package notifier

import (
	"maps"
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
