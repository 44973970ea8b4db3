package notifier_test

import (
	"strconv"
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

// TestModify: a write lost to another writer between the read and the swap
// reads again and decides on the new value; fn may decline to write; a key
// that keeps moving ends in an error, not a loop.
func TestModify(t *testing.T) {
	kv := notifier.NewMemKV()
	rounds := 0
	wrote, err := notifier.Modify(kv, "k", func(cur []byte) ([]byte, bool, error) {
		rounds++
		if rounds == 1 {
			require.Nil(t, cur)
			require.NoError(t, kv.Put("k", []byte("other"))) // the other gateway
			return []byte("mine"), true, nil
		}
		require.Equal(t, "other", string(cur))
		return append(cur, "+mine"...), true, nil
	})
	require.NoError(t, err)
	require.True(t, wrote)
	require.Equal(t, 2, rounds)
	v, _, err := kv.Get("k")
	require.NoError(t, err)
	require.Equal(t, "other+mine", string(v))

	wrote, err = notifier.Modify(kv, "k", func([]byte) ([]byte, bool, error) { return []byte("no"), false, nil })
	require.NoError(t, err)
	require.False(t, wrote)
	v, _, err = kv.Get("k")
	require.NoError(t, err)
	require.Equal(t, "other+mine", string(v))

	n := 0
	_, err = notifier.Modify(kv, "k", func([]byte) ([]byte, bool, error) {
		n++
		require.NoError(t, kv.Put("k", []byte(strconv.Itoa(n))))
		return []byte("never"), true, nil
	})
	require.ErrorContains(t, err, "still contended")
	require.Equal(t, notifier.ModifyAttempts, n)
}
