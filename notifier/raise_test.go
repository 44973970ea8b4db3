package notifier

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// Raise opens one incident per firing, pages level 1, asks about a
// rollback once, and refuses alerts that claim to come from the rules.
func TestRaise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		rb := &fakeRollbacker{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, rb)
		a := Alert{
			Labels:   map[string]string{"alertname": "deploy_analysis_failed", "severity": "critical", "deploy_id": "7"},
			Value:    3,
			ActiveAt: time.Now(),
			Source:   "analysis",
		}
		inc, err := h.m.Raise(context.Background(), a)
		require.NoError(t, err)
		require.Equal(t, "deploy_analysis_failed", inc.Alert.Name)
		again, err := h.m.Raise(context.Background(), a)
		require.NoError(t, err)
		require.Equal(t, inc.ID, again.ID, "the same firing is one incident")
		synctest.Wait()

		var kinds []Kind
		for _, c := range rec.delivered() {
			kinds = append(kinds, c.kind)
		}
		require.ElementsMatch(t, []Kind{KindFiring, KindRollback}, kinds)
		require.Equal(t, 1, rb.calls)

		// Resolved by hand, the same firing raised again opens nothing.
		_, err = h.m.Resolve(inc.ID, "alice", "")
		require.NoError(t, err)
		again, err = h.m.Raise(context.Background(), a)
		require.NoError(t, err)
		require.Equal(t, inc.ID, again.ID)
		require.Equal(t, StateResolved, again.State)

		a.Source = ""
		_, err = h.m.Raise(context.Background(), a)
		require.Error(t, err)
	})
}
