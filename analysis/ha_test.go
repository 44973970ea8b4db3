package analysis

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// TestHAStaleStepLeavesTheNewerRecord: two gateways tick one analysis in a
// shared KV. B takes steps 2 to 4 between A's read of the record and A's
// write of step 2: A's write is refused, B's record stands, and A's next
// tick goes on from it.
func TestHAStaleStepLeavesTheNewerRecord(t *testing.T) {
	q := load(t, baseline(), version{instance: "b:8080", version: "1.1.0", perMinute: 1000, errors: 1.5})
	shared := notifier.NewMemKV()
	deploys := &fakeDeploys{last: canaryDeploy()}
	clockA, clockB := deployAt, deployAt.Add(4*time.Minute)
	mB := newFixtureKV(t, q, shared, analysisConfig(), deploys, &fakeIncidents{}, &clockB, nil)
	var armed atomic.Bool
	kvA := &storetest.InterleaveKV{
		AtomicKV: shared,
		Match:    func(op, key string) bool { return armed.Load() && op == "list" && key == keyAnalysis },
		Between:  func() { require.NoError(t, mB.Tick(context.Background())) },
	}
	mA := newFixtureKV(t, q, kvA, analysisConfig(), deploys, &fakeIncidents{}, &clockA, nil)
	runTo(t, mA, &clockA, deployAt.Add(time.Minute))
	a, _, err := mA.Analysis("7")
	require.NoError(t, err)
	require.Len(t, a.Results, 1)

	clockA = deployAt.Add(2 * time.Minute)
	armed.Store(true)
	require.NoError(t, mA.Tick(context.Background()), "a conflict is skipped, not an error")
	a, _, err = mB.Analysis("7")
	require.NoError(t, err)
	require.Len(t, a.Results, 4, "B's newer record stands")
	require.Equal(t, deployAt.Add(4*time.Minute), a.Results[3].At)

	// A's next tick reads B's record and takes step 5 from it.
	clockA = deployAt.Add(5 * time.Minute)
	require.NoError(t, mA.Tick(context.Background()))
	a, _, err = mA.Analysis("7")
	require.NoError(t, err)
	require.Len(t, a.Results, 5)
	require.Equal(t, VerdictPass, a.Verdict, a.Reason)
}
