package notifier_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// TestBoltStoreContract runs the Store contract against the embedded store.
func TestBoltStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) notifier.Store {
		s, err := notifier.OpenBoltStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
