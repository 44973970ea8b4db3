package notifier_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// plainKV hides MemKV's atomic operations, as a test double of a KV does.
type plainKV struct{ notifier.KV }

// TestIncrSwap: Incr and Swap mean the same on an AtomicKV and, through a
// read and a write, on a plain KV.
func TestIncrSwap(t *testing.T) {
	for name, kv := range map[string]notifier.KV{
		"atomic": notifier.NewMemKV(),
		"plain":  plainKV{notifier.NewMemKV()},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := notifier.Incr(kv, "n", 3)
			require.NoError(t, err)
			require.Equal(t, int64(3), n)
			n, err = notifier.Incr(kv, "n", -1)
			require.NoError(t, err)
			require.Equal(t, int64(2), n)
			v, _, err := kv.Get("n")
			require.NoError(t, err)
			require.Equal(t, "2", string(v))
			require.NoError(t, kv.Put("text", []byte("two")))
			_, err = notifier.Incr(kv, "text", 1)
			require.ErrorContains(t, err, `"two" is not an integer`)

			for _, step := range []struct {
				old, value string
				absent     bool
				want       bool
			}{
				{absent: true, value: "a", want: true},  // put if absent
				{absent: true, value: "b", want: false}, // present now
				{old: "b", value: "c", want: false},     // holds "a"
				{old: "a", value: "c", want: true},
			} {
				var old []byte
				if !step.absent {
					old = []byte(step.old)
				}
				done, err := notifier.Swap(kv, "k", old, []byte(step.value))
				require.NoError(t, err)
				require.Equal(t, step.want, done, "%+v", step)
			}
			v, _, err = kv.Get("k")
			require.NoError(t, err)
			require.Equal(t, "c", string(v))
			done, err := notifier.Swap(kv, "absent", []byte("x"), []byte("y"))
			require.NoError(t, err)
			require.False(t, done, "an absent key holds no value")
			_, ok, err := kv.Get("absent")
			require.NoError(t, err)
			require.False(t, ok)
		})
	}
}
