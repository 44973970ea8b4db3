package rollback

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// failIncrKV refuses Incr while armed: the deploy cannot be numbered.
type failIncrKV struct {
	notifier.AtomicKV
	armed atomic.Bool
}

func (kv *failIncrKV) Incr(key string, delta int64) (int64, error) {
	if kv.armed.Load() {
		return 0, errors.New("store unavailable")
	}
	return kv.AtomicKV.Incr(key, delta)
}

// TestObserveBuildInfoRetriesAfterFailedRecord: a version change whose
// deploy cannot be recorded is an error, and the next scrape of the same
// version records it: the seen version does not move on without it.
func TestObserveBuildInfoRetriesAfterFailedRecord(t *testing.T) {
	kv := &failIncrKV{AtomicKV: notifier.NewMemKV()}
	m := newManager(t, kv, newClock(t0), testConfig("http://127.0.0.1:1/"))
	_, err := m.ObserveBuildInfo("", "", "1.0.0")
	require.NoError(t, err)

	kv.armed.Store(true)
	_, err = m.ObserveBuildInfo("", "", "1.1.0")
	require.Error(t, err)
	kv.armed.Store(false)

	d, err := m.ObserveBuildInfo("", "", "1.1.0")
	require.NoError(t, err)
	require.NotNil(t, d, "the change is recorded at the next scrape")
	require.Equal(t, "1.1.0", d.Version)
	require.Equal(t, "1.0.0", d.PreviousVersion)
	last, ok, err := m.LastDeploy()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "1.1.0", last.Version)
}
