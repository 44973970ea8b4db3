package rollback

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

func analysisIncident(id, deployID string, at time.Time) *notifier.Incident {
	inc := incident(id, at, map[string]string{
		"alertname": "deploy_analysis_failed", "severity": "warning", LabelDeployID: deployID,
	})
	inc.Alert.Name = "deploy_analysis_failed"
	inc.Alert.Source = SourceAnalysis
	return inc
}

// An analysis failure rolls its deploy back with reason "analysis" and the
// figures, though the alert matches neither rollback.when nor the window.
func TestDecideAnalysis(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig("http://127.0.0.1:1/rollback"))
	_, err := m.RecordDeploy(Deploy{Version: "1.0.0", At: t0.Add(-time.Hour)})
	require.NoError(t, err)
	d, err := m.RecordDeploy(Deploy{Version: "1.1.0", At: t0, Strategy: config.StrategyCanary})
	require.NoError(t, err)
	require.Equal(t, "2", d.ID)
	figures := json.RawMessage(`{"signal":"error_rate","step":3,"canary":6,"baseline":2}`)
	require.NoError(t, m.NoteAnalysisFailure(d.ID, figures))

	clk.Add(2 * time.Hour) // well outside rollback.window
	msg, rec, err := m.Decide(context.Background(), analysisIncident("inc1", d.ID, t0.Add(time.Hour)), "")
	require.NoError(t, err)
	require.NotNil(t, msg)
	require.Equal(t, "rb_inc1", rec.DeliveryID)
	var p Payload
	require.NoError(t, json.Unmarshal(msg.Payload, &p))
	require.Equal(t, ReasonAnalysis, p.Reason)
	require.Equal(t, "1.1.0", p.BadVersion)
	require.Equal(t, "1.0.0", p.PreviousVersion)
	require.JSONEq(t, string(figures), string(p.Analysis))
	require.Equal(t, 1.0, decisionCount(m, DecisionFired))

	// The same incident again (a crash before it was stored): the same
	// decision, not a second rollback.
	msg2, rec2, err := m.Decide(context.Background(), analysisIncident("inc1", d.ID, t0.Add(time.Hour)), "")
	require.NoError(t, err)
	require.Equal(t, rec.DeliveryID, rec2.DeliveryID)
	require.Equal(t, msg.Payload, msg2.Payload)
	require.Equal(t, 1.0, decisionCount(m, DecisionFired))
}

// A failure of a deploy that a newer one replaced rolls nothing back.
func TestDecideAnalysisSuperseded(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig("http://127.0.0.1:1/rollback"))
	d, err := m.RecordDeploy(Deploy{Version: "1.1.0", At: t0, Strategy: config.StrategyCanary})
	require.NoError(t, err)
	_, err = m.RecordDeploy(Deploy{Version: "1.2.0", At: t0.Add(time.Minute)})
	require.NoError(t, err)
	msg, rec, err := m.Decide(context.Background(), analysisIncident("inc1", d.ID, t0.Add(2*time.Minute)), "")
	require.NoError(t, err)
	require.Nil(t, msg)
	require.Nil(t, rec)
	require.Equal(t, 1.0, decisionCount(m, DecisionSuperseded))
}

func TestRecordDeployStrategy(t *testing.T) {
	m := newManager(t, notifier.NewMemKV(), newClock(t0), testConfig("http://127.0.0.1:1/rollback"))
	_, err := m.RecordDeploy(Deploy{Version: "1.1.0", Strategy: "big-bang"})
	require.ErrorIs(t, err, ErrBadStrategy)
	d, err := m.RecordDeploy(Deploy{Version: "1.1.0", Strategy: config.StrategyRolling})
	require.NoError(t, err)
	got, ok, err := m.Deploy(d.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, config.StrategyRolling, got.Strategy)
	list, err := m.Deploys(0)
	require.NoError(t, err)
	require.Equal(t, d.ID, list[0].ID)
}

// With two versions live side by side, the watcher does not flap between
// them: the version seen stays unless the other was never deployed.
func TestPickVersionSideBySide(t *testing.T) {
	m := newManager(t, notifier.NewMemKV(), newClock(t0), testConfig("http://127.0.0.1:1/rollback"))
	both := func(newer string) []liveVersion {
		if newer == "1.0.0" {
			return []liveVersion{{"1.0.0", 20}, {"1.1.0", 10}}
		}
		return []liveVersion{{"1.0.0", 10}, {"1.1.0", 20}}
	}
	_, err := m.ObserveBuildInfo("", "", "1.0.0")
	require.NoError(t, err)
	v, err := m.pickVersion(both("1.0.0"))
	require.NoError(t, err)
	require.Equal(t, "1.1.0", v, "a version never deployed is the new one")
	d, err := m.ObserveBuildInfo("", "", v)
	require.NoError(t, err)
	require.NotNil(t, d)
	for _, newer := range []string{"1.0.0", "1.1.0", "1.0.0"} {
		v, err := m.pickVersion(both(newer))
		require.NoError(t, err)
		require.Equal(t, "1.1.0", v)
	}
	v, err = m.pickVersion([]liveVersion{{"1.0.0", 30}})
	require.NoError(t, err)
	require.Equal(t, "1.0.0", v, "the new one gone: the old one is back")
}
