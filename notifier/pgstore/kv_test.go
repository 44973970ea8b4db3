package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKVWriteAndDeleteUnchanged: Write upserts and deletes many keys at
// once; DeleteUnchanged deletes only the keys that still hold the given
// value and returns the others.
func TestKVWriteAndDeleteUnchanged(t *testing.T) {
	dsn := testDSN(t)
	s := openStore(t, dsn, freshSchema(t, dsn), nil)
	kv := s.KV("ingest")
	w := kv.(interface {
		Write(put map[string][]byte, del []string) error
		DeleteUnchanged(want map[string][]byte) ([]string, error)
	})
	require.NoError(t, kv.Put("gone", []byte("x")))
	require.NoError(t, w.Write(map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": nil}, []string{"gone", "never"}))
	require.NoError(t, w.Write(map[string][]byte{"b": []byte("2b")}, nil))
	all, err := kv.List("")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"a": []byte("1"), "b": []byte("2b"), "c": {}}, all)
	require.NoError(t, w.Write(nil, nil))

	// "b" was written again since "2" was read; "z" is not there.
	kept, err := w.DeleteUnchanged(map[string][]byte{"a": []byte("1"), "b": []byte("2"), "z": []byte("9")})
	require.NoError(t, err)
	require.Equal(t, []string{"b", "z"}, kept)
	all, err = kv.List("")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"b": []byte("2b"), "c": {}}, all)
	// Another namespace is untouched.
	require.NoError(t, s.KV("other").Put("b", []byte("2b")))
	kept, err = w.DeleteUnchanged(map[string][]byte{"b": []byte("2b")})
	require.NoError(t, err)
	require.Empty(t, kept)
	_, ok, err := s.KV("other").Get("b")
	require.NoError(t, err)
	require.True(t, ok)
}
