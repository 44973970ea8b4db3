package rollback

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

func TestDecideFiresOncePerIncident(t *testing.T) {
	ctx := context.Background()
	ctl := newController(t, []byte(testSecret))
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig(ctl.srv.URL))

	_, err := m.RecordDeploy(Deploy{Version: "1.4.0", At: t0.Add(-24 * time.Hour)})
	require.NoError(t, err)
	_, err = m.RecordDeploy(Deploy{Version: "1.5.0", By: "ci"})
	require.NoError(t, err)

	clk.Set(t0.Add(15 * time.Minute))
	inc := incident("inc-1", t0.Add(10*time.Minute), criticalApp())
	msg, rec, err := m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.NotNil(t, msg)
	require.Equal(t, notifier.KindRollback, msg.Kind)
	require.Equal(t, "rb_inc-1", msg.DeliveryID)
	require.Equal(t, "inc-1", msg.Incident.ID)
	require.Equal(t, &notifier.RollbackRecord{
		DeliveryID: "rb_inc-1", BadVersion: "1.5.0", PreviousVersion: "1.4.0",
		At: t0.Add(15 * time.Minute), Outcome: notifier.OutcomePending,
	}, rec)

	var p Payload
	require.NoError(t, json.Unmarshal(msg.Payload, &p))
	require.Equal(t, "checkout", p.Service)
	require.Equal(t, config.EnvProduction, p.Environment)
	require.Equal(t, "1.5.0", p.BadVersion)
	require.Equal(t, "1.4.0", p.PreviousVersion)
	require.Equal(t, "inc-1", p.IncidentID)
	require.Equal(t, "https://vigil.example/api/v1/incidents/inc-1", p.IncidentURL)
	require.Equal(t, "high_error_rate", p.Alert.Name)
	require.Equal(t, criticalApp(), p.Alert.Labels)
	require.InDelta(t, 12.5, *p.Alert.Value, 0)
	require.True(t, p.Alert.ActiveAt.Equal(t0.Add(10*time.Minute)))
	require.True(t, p.RequestedAt.Equal(t0.Add(15*time.Minute)))
	require.Contains(t, p.Reason, "10m0s after the deploy of 1.5.0")

	retry, err := m.Receiver().Notify(ctx, msg)
	require.NoError(t, err)
	require.False(t, retry)
	calls := ctl.Calls()
	require.Len(t, calls, 1)
	require.True(t, calls[0].verified, "signature must verify")
	require.Equal(t, "rb_inc-1", calls[0].header.Get("Webhook-Id"))
	require.Equal(t, "rb_inc-1", calls[0].header.Get("Idempotency-Key"))
	require.Equal(t, "application/json", calls[0].header.Get("Content-Type"))
	require.JSONEq(t, string(msg.Payload), string(calls[0].body))

	// Asked again before the caller stored the record (a crash in
	// between): the same decision, so the controller sees one rollback.
	clk.Add(time.Minute)
	again, rec2, err := m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.NotNil(t, again)
	require.Equal(t, msg.DeliveryID, again.DeliveryID)
	require.Equal(t, msg.Payload, again.Payload)
	require.Equal(t, rec, rec2)
	require.Equal(t, "inc-1", again.Incident.ID)

	// Once the incident holds its record, never again, even long after the
	// cooldown.
	inc.Rollback = rec
	for _, d := range []time.Duration{time.Minute, 3 * time.Hour} {
		clk.Add(d)
		msg, rec, err = m.Decide(ctx, inc, config.EnvProduction)
		require.NoError(t, err)
		require.Nil(t, msg)
		require.Nil(t, rec)
	}
	require.Len(t, ctl.Calls(), 1)
	require.InDelta(t, 1, decisionCount(m, DecisionFired), 0)
	require.InDelta(t, 3, decisionCount(m, DecisionAlreadyFired), 0)
}

func TestDecideGuards(t *testing.T) {
	deployAt := t0
	for name, tc := range map[string]struct {
		env      string
		started  time.Time
		labels   map[string]string
		noDeploy bool
		noHook   bool
		decision string // "" when nothing is counted
	}{
		"started before the deploy": {started: deployAt.Add(-time.Second), decision: DecisionOutsideWindow},
		"started after the window":  {started: deployAt.Add(30*time.Minute + time.Second), decision: DecisionOutsideWindow},
		"staging":                   {env: config.EnvStaging, decision: DecisionEnvironment},
		"development":               {env: config.EnvDevelopment, decision: DecisionEnvironment},
		"severity differs": {labels: map[string]string{"severity": "warning", "app": "app"},
			decision: DecisionNotMatching},
		"app label missing":         {labels: map[string]string{"severity": "critical"}, decision: DecisionNotMatching},
		"app label differs":         {labels: map[string]string{"severity": "critical", "app": "database"}, decision: DecisionNotMatching},
		"no deploy":                 {noDeploy: true, decision: DecisionNoDeploy},
		"no deploy in this env":     {env: config.EnvProduction, noDeploy: true, decision: DecisionNoDeploy},
		"webhook not configured":    {noHook: true},
		"at the edge of the window": {started: deployAt.Add(30 * time.Minute), decision: DecisionFired},
		"at the deploy itself":      {started: deployAt, decision: DecisionFired},
	} {
		t.Run(name, func(t *testing.T) {
			ctl := newController(t, []byte(testSecret))
			clk := newClock(deployAt)
			cfg := testConfig(ctl.srv.URL)
			if tc.noHook {
				cfg.Rollback.Webhook = nil
			}
			m := newManager(t, notifier.NewMemKV(), clk, cfg)
			if !tc.noDeploy {
				_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
				require.NoError(t, err)
			} else {
				// A deploy elsewhere must not count.
				_, err := m.RecordDeploy(Deploy{Version: "2.0.0", Environment: config.EnvStaging})
				require.NoError(t, err)
			}
			started := tc.started
			if started.IsZero() {
				started = deployAt.Add(5 * time.Minute)
			}
			labels := tc.labels
			if labels == nil {
				labels = criticalApp()
			}
			env := tc.env
			if env == "" {
				env = config.EnvProduction
			}
			clk.Set(started.Add(5 * time.Minute))
			msg, rec, err := m.Decide(context.Background(), incident("inc", started, labels), env)
			require.NoError(t, err)
			if tc.decision == DecisionFired {
				require.NotNil(t, msg)
				require.NotNil(t, rec)
			} else {
				require.Nil(t, msg)
				require.Nil(t, rec)
			}
			for _, d := range decisions {
				want := 0.0
				if d == tc.decision {
					want = 1
				}
				require.InDelta(t, want, decisionCount(m, d), 0, d)
			}
			require.Empty(t, ctl.Calls(), "Decide never calls the webhook itself")
		})
	}
}

func TestDecideUsesConfiguredEnvironmentWhenEmpty(t *testing.T) {
	clk := newClock(t0)
	cfg := testConfig("http://127.0.0.1:1/rollback")
	cfg.Environment = config.EnvStaging
	m := newManager(t, notifier.NewMemKV(), clk, cfg)
	_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
	require.NoError(t, err)
	msg, _, err := m.Decide(context.Background(), incident("inc", t0.Add(time.Minute), criticalApp()), "")
	require.NoError(t, err)
	require.Nil(t, msg)
	require.InDelta(t, 1, decisionCount(m, DecisionEnvironment), 0)
}

func TestDecideCooldown(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	cfg := testConfig("http://127.0.0.1:1/rollback")
	cfg.Rollback.Window = config.Duration(3 * time.Hour)
	m := newManager(t, notifier.NewMemKV(), clk, cfg)
	_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
	require.NoError(t, err)

	clk.Set(t0.Add(2 * time.Minute))
	msg, _, err := m.Decide(ctx, incident("inc-1", t0.Add(time.Minute), criticalApp()), config.EnvProduction)
	require.NoError(t, err)
	require.NotNil(t, msg)

	// A second incident within the cooldown: held off, and not marked as fired.
	clk.Set(t0.Add(2*time.Minute + 59*time.Minute))
	inc2 := incident("inc-2", t0.Add(10*time.Minute), criticalApp())
	msg, _, err = m.Decide(ctx, inc2, config.EnvProduction)
	require.NoError(t, err)
	require.Nil(t, msg)
	require.InDelta(t, 1, decisionCount(m, DecisionCooldown), 0)

	// The cooldown is over at exactly last + cooldown.
	clk.Set(t0.Add(2*time.Minute + time.Hour))
	msg, rec, err := m.Decide(ctx, inc2, config.EnvProduction)
	require.NoError(t, err)
	require.NotNil(t, msg)
	require.Equal(t, "rb_inc-2", rec.DeliveryID)
	require.InDelta(t, 2, decisionCount(m, DecisionFired), 0)
}

func TestDecideDryRun(t *testing.T) {
	ctx := context.Background()
	ctl := newController(t, []byte(testSecret))
	clk := newClock(t0)
	cfg := testConfig(ctl.srv.URL)
	cfg.Rollback.DryRun = true
	m := newManager(t, notifier.NewMemKV(), clk, cfg)
	_, err := m.RecordDeploy(Deploy{Version: "1.0.0", At: t0.Add(-time.Hour)})
	require.NoError(t, err)
	_, err = m.RecordDeploy(Deploy{Version: "1.1.0"})
	require.NoError(t, err)

	clk.Add(3 * time.Minute)
	inc := incident("inc-1", t0.Add(time.Minute), criticalApp())
	msg, rec, err := m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.Nil(t, msg, "a dry run has nothing to deliver")
	require.Equal(t, &notifier.RollbackRecord{
		DeliveryID: "rb_inc-1", BadVersion: "1.1.0", PreviousVersion: "1.0.0",
		DryRun: true, At: t0.Add(3 * time.Minute), Outcome: OutcomeDryRun,
	}, rec)
	require.InDelta(t, 1, decisionCount(m, DecisionDryRun), 0)
	require.InDelta(t, 0, decisionCount(m, DecisionFired), 0)

	// It counts as a rollback: once per incident and for the cooldown.
	msg, rec2, err := m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.Nil(t, msg)
	require.Equal(t, rec, rec2, "asked again before the record is stored: the same record")
	inc.Rollback = rec
	msg, rec, err = m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.Nil(t, msg)
	require.Nil(t, rec)
	msg, rec, err = m.Decide(ctx, incident("inc-2", t0.Add(2*time.Minute), criticalApp()), config.EnvProduction)
	require.NoError(t, err)
	require.Nil(t, msg)
	require.Nil(t, rec)
	require.InDelta(t, 2, decisionCount(m, DecisionAlreadyFired), 0)
	require.InDelta(t, 1, decisionCount(m, DecisionCooldown), 0)
	require.Empty(t, ctl.Calls(), "a dry run calls nothing")
}

func TestManual(t *testing.T) {
	ctx := context.Background()
	ctl := newController(t, []byte(testSecret))

	t.Run("refusals", func(t *testing.T) {
		for name, tc := range map[string]struct {
			mutate func(*config.Config)
			deploy bool
			want   error
		}{
			"not configured": {mutate: func(c *config.Config) { c.Rollback.Webhook = nil }, deploy: true, want: ErrNotConfigured},
			"staging":        {mutate: func(c *config.Config) { c.Environment = config.EnvStaging }, deploy: true, want: ErrEnvironment},
			"no deploy":      {want: ErrNoDeploy},
		} {
			t.Run(name, func(t *testing.T) {
				cfg := testConfig(ctl.srv.URL)
				if tc.mutate != nil {
					tc.mutate(cfg)
				}
				m := newManager(t, notifier.NewMemKV(), newClock(t0), cfg)
				if tc.deploy {
					_, err := m.RecordDeploy(Deploy{Version: "1.0.0"})
					require.NoError(t, err)
				}
				msg, rec, err := m.Manual(ctx, "bad", "alice")
				require.ErrorIs(t, err, tc.want)
				require.Nil(t, msg)
				require.Nil(t, rec)
			})
		}
	})

	t.Run("rolls back the last deploy and honours the cooldown", func(t *testing.T) {
		clk := newClock(t0)
		m := newManager(t, notifier.NewMemKV(), clk, testConfig(ctl.srv.URL))
		_, err := m.RecordDeploy(Deploy{Version: "1.0.0", At: t0.Add(-48 * time.Hour)})
		require.NoError(t, err)
		// Long after the deploy: the window does not apply to a manual rollback.
		_, err = m.RecordDeploy(Deploy{Version: "1.1.0", At: t0.Add(-24 * time.Hour)})
		require.NoError(t, err)

		msg, rec, err := m.Manual(ctx, "checkout broken for EU users", "alice")
		require.NoError(t, err)
		require.NotNil(t, msg)
		require.Equal(t, notifier.KindRollback, msg.Kind)
		require.Equal(t, msg.DeliveryID, rec.DeliveryID)
		require.Equal(t, "1.1.0", rec.BadVersion)
		require.Equal(t, "1.0.0", rec.PreviousVersion)
		var p Payload
		require.NoError(t, json.Unmarshal(msg.Payload, &p))
		require.Equal(t, "checkout broken for EU users", p.Reason)
		require.Equal(t, "alice", p.RequestedBy)
		require.Nil(t, p.Alert)
		require.Empty(t, p.IncidentID)

		before := len(ctl.Calls())
		retry, err := m.Receiver().Notify(ctx, msg)
		require.NoError(t, err)
		require.False(t, retry)
		calls := ctl.Calls()[before:]
		require.Len(t, calls, 1)
		require.True(t, calls[0].verified)

		clk.Add(30 * time.Minute)
		_, _, err = m.Manual(ctx, "again", "bob")
		require.ErrorIs(t, err, ErrCooldown)
		// An automatic rollback is held off by the manual one too.
		_, err = m.RecordDeploy(Deploy{Version: "1.2.0"})
		require.NoError(t, err)
		clk.Add(time.Minute)
		msg2, _, err := m.Decide(ctx, incident("inc", clk.Now(), criticalApp()), "")
		require.NoError(t, err)
		require.Nil(t, msg2)

		clk.Add(time.Hour)
		msg3, _, err := m.Manual(ctx, "", "bob")
		require.NoError(t, err)
		require.NotNil(t, msg3)
		require.NotEqual(t, msg.DeliveryID, msg3.DeliveryID, "a new manual rollback is not a retry of the old one")
		require.NoError(t, json.Unmarshal(msg3.Payload, &p))
		require.Equal(t, "1.2.0", p.BadVersion)
		require.Equal(t, "1.1.0", p.PreviousVersion)
		require.Equal(t, "manual rollback", p.Reason)
	})
}

func TestStateSurvivesNewManager(t *testing.T) {
	ctx := context.Background()
	kv := notifier.NewMemKV()
	clk := newClock(t0)
	cfg := testConfig("http://127.0.0.1:1/rollback")
	m1 := newManager(t, kv, clk, cfg)
	_, err := m1.RecordDeploy(Deploy{Version: "1.0.0", At: t0.Add(-time.Hour)})
	require.NoError(t, err)
	_, err = m1.RecordDeploy(Deploy{Version: "1.1.0"})
	require.NoError(t, err)
	_, err = m1.ObserveBuildInfo("", "", "1.1.0")
	require.NoError(t, err)
	clk.Add(5 * time.Minute)
	inc := incident("inc-1", t0.Add(time.Minute), criticalApp())
	msg, _, err := m1.Decide(ctx, inc, "")
	require.NoError(t, err)
	require.NotNil(t, msg)

	// A restart: a new Manager over the same KV.
	m2 := newManager(t, kv, clk, cfg)
	deploys, err := m2.Deploys(0)
	require.NoError(t, err)
	require.Len(t, deploys, 2)
	require.Equal(t, "1.1.0", deploys[0].Version)

	// The notifier crashed before storing the decision: the same message.
	again, rec, err := m2.Decide(ctx, inc, "")
	require.NoError(t, err)
	require.NotNil(t, again)
	require.Equal(t, msg.DeliveryID, again.DeliveryID)
	require.Equal(t, msg.Payload, again.Payload)
	inc.Rollback = rec
	again, _, err = m2.Decide(ctx, inc, "")
	require.NoError(t, err)
	require.Nil(t, again)
	require.InDelta(t, 2, decisionCount(m2, DecisionAlreadyFired), 0)
	require.InDelta(t, 0, decisionCount(m2, DecisionFired), 0)

	msg, _, err = m2.Decide(ctx, incident("inc-2", t0.Add(2*time.Minute), criticalApp()), "")
	require.NoError(t, err)
	require.Nil(t, msg)
	require.InDelta(t, 1, decisionCount(m2, DecisionCooldown), 0)

	// The build info version seen before the restart is still known.
	d, err := m2.ObserveBuildInfo("", "", "1.1.0")
	require.NoError(t, err)
	require.Nil(t, d)
	d, err = m2.ObserveBuildInfo("", "", "1.2.0")
	require.NoError(t, err)
	require.NotNil(t, d)
	require.Equal(t, "1.1.0", d.PreviousVersion)
}

func TestApplyConfigKeepsOldSettingsOnError(t *testing.T) {
	ctl := newController(t, []byte(testSecret))
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig(ctl.srv.URL))
	bad := testConfig("ftp://user:hunter2@deployer.example/x?token=abc")
	err := m.ApplyConfig(bad)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "abc")

	_, err = m.RecordDeploy(Deploy{Version: "1.0.0"})
	require.NoError(t, err)
	clk.Add(time.Minute)
	msg, _, err := m.Manual(context.Background(), "", "alice")
	require.NoError(t, err)
	_, err = m.Receiver().Notify(context.Background(), msg)
	require.NoError(t, err)
	require.Len(t, ctl.Calls(), 1)
}

func TestNew(t *testing.T) {
	_, err := New(&Options{}, nil, nil)
	require.Error(t, err)
	_, err = New(nil, nil, nil)
	require.Error(t, err)

	// A second Manager on the same registry is an error, not a panic.
	reg := prometheus.NewRegistry()
	_, err = New(&Options{KV: notifier.NewMemKV()}, nil, reg)
	require.NoError(t, err)
	_, err = New(&Options{KV: notifier.NewMemKV()}, nil, reg)
	require.Error(t, err)
}
