package storetest

import (
	"sync"

	"github.com/vigil-sh/vigil/notifier"
)

// InterleaveKV runs Between once, right after the first Get or List that
// Match accepts (op is "get" or "list", key the key or the prefix): another
// gateway's write lands between this gateway's read and its write, the
// interleaving that loses an update when the write depends on the read.
// It passes the atomic operations through.
type InterleaveKV struct {
	notifier.AtomicKV
	Match   func(op, key string) bool
	Between func()

	once sync.Once
}

func (kv *InterleaveKV) after(op, key string) {
	if kv.Match != nil && kv.Match(op, key) {
		kv.once.Do(kv.Between)
	}
}

// Get implements notifier.KV.
func (kv *InterleaveKV) Get(key string) ([]byte, bool, error) {
	v, ok, err := kv.AtomicKV.Get(key)
	kv.after("get", key)
	return v, ok, err
}

// List implements notifier.KV.
func (kv *InterleaveKV) List(prefix string) (map[string][]byte, error) {
	all, err := kv.AtomicKV.List(prefix)
	kv.after("list", prefix)
	return all, err
}
