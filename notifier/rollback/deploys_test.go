package rollback

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

func TestRecordDeployChain(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig("http://127.0.0.1:1/"))

	type step struct {
		in       Deploy
		wantPrev string
	}
	for i, s := range []step{
		{Deploy{Version: "1.0.0"}, ""},
		{Deploy{Version: "1.1.0", By: "ci"}, "1.0.0"},
		{Deploy{Version: "1.1.0"}, "1.0.0"}, // a redeploy keeps what came before
		{Deploy{Version: "1.2.0"}, "1.1.0"},
		{Deploy{Version: "9.9.9", Environment: config.EnvStaging}, ""}, // its own chain
		{Deploy{Version: "1.0.5", Service: "billing"}, ""},
		{Deploy{Version: "1.3.0", PreviousVersion: "1.1.0"}, "1.1.0"}, // given wins
		{Deploy{Version: "1.4.0"}, "1.3.0"},
	} {
		clk.Add(time.Minute)
		got, err := m.RecordDeploy(s.in)
		require.NoError(t, err, i)
		require.Equal(t, s.wantPrev, got.PreviousVersion, "step %d", i)
		require.True(t, got.At.Equal(clk.Now()), "At defaults to now")
		if s.in.Service == "" {
			require.Equal(t, "checkout", got.Service)
		}
		if s.in.Environment == "" {
			require.Equal(t, config.EnvProduction, got.Environment)
		}
	}

	got, err := m.Deploys(3)
	require.NoError(t, err)
	require.Equal(t, []string{"1.4.0", "1.3.0", "billing 1.0.5"}, versions(got))
	all, err := m.Deploys(0)
	require.NoError(t, err)
	require.Len(t, all, 8)

	// A given time is kept, in UTC.
	at := time.Date(2025, 1, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	d, err := m.RecordDeploy(Deploy{Version: "2.0.0", At: at})
	require.NoError(t, err)
	require.True(t, d.At.Equal(at))
	require.Equal(t, time.UTC, d.At.Location())

	_, err = m.RecordDeploy(Deploy{Version: "  "})
	require.Error(t, err)
}

func versions(ds []Deploy) []string {
	var out []string
	for _, d := range ds {
		v := d.Version
		if d.Service != "checkout" {
			v = d.Service + " " + v
		}
		out = append(out, v)
	}
	return out
}

func TestRecordDeployKeepsTheNewest(t *testing.T) {
	clk := newClock(t0)
	m, err := New(&Options{KV: notifier.NewMemKV(), Clock: clk.Now, KeepDeploys: 3}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(testConfig("http://127.0.0.1:1/")))

	_, err = m.RecordDeploy(Deploy{Version: "b1", Service: "billing"})
	require.NoError(t, err)
	for _, v := range []string{"1", "2", "3", "4", "5"} {
		clk.Add(time.Minute)
		_, err := m.RecordDeploy(Deploy{Version: v})
		require.NoError(t, err)
	}
	got, err := m.Deploys(0)
	require.NoError(t, err)
	require.Equal(t, []string{"5", "4", "3"}, versions(got))

	// The last deploy of a service outlives the trimmed history.
	d, err := m.RecordDeploy(Deploy{Version: "b2", Service: "billing"})
	require.NoError(t, err)
	require.Equal(t, "b1", d.PreviousVersion)
}

func TestDeployJSON(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want Deploy
	}{
		"at":   {`{"service":"checkout","version":"1.2.3","environment":"production","at":"2025-03-01T12:00:00Z","by":"ci"}`, Deploy{Service: "checkout", Version: "1.2.3", Environment: "production", At: t0, By: "ci"}},
		"time": {`{"version":"1.2.3","time":"2025-03-01T12:00:00Z"}`, Deploy{Version: "1.2.3", At: t0}},
		"none": {`{"version":"1.2.3"}`, Deploy{Version: "1.2.3"}},
	} {
		t.Run(name, func(t *testing.T) {
			var d Deploy
			require.NoError(t, json.Unmarshal([]byte(tc.in), &d))
			require.Equal(t, tc.want, d)
		})
	}
	var d Deploy
	require.Error(t, json.Unmarshal([]byte(`{"version":1}`), &d))
}

func TestObserveBuildInfo(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig("http://127.0.0.1:1/"))

	type step struct {
		api      string // record this version through the API first
		seen     string // then observe this version
		service  string
		wantNew  bool
		wantPrev string
	}
	for i, s := range []step{
		{seen: "1.0.0"}, // first sighting: remembered only
		{seen: "1.0.0"}, // unchanged
		{seen: ""},      // no label: ignored
		{seen: "1.1.0", wantNew: true, wantPrev: "1.0.0"}, // a change is a deploy
		{seen: "1.1.0"},
		{api: "1.2.0", seen: "1.1.0"}, // the API knew first; old pods still report 1.1.0
		{seen: "1.2.0"},               // already on record: not twice
		{seen: "1.1.0", wantNew: true, wantPrev: "1.2.0"}, // someone rolled back
		{seen: "7.0.0", service: "billing"},               // another service: first sighting
	} {
		clk.Add(time.Minute)
		if s.api != "" {
			_, err := m.RecordDeploy(Deploy{Version: s.api})
			require.NoError(t, err)
		}
		d, err := m.ObserveBuildInfo(s.service, "", s.seen)
		require.NoError(t, err, "step %d", i)
		if !s.wantNew {
			require.Nil(t, d, "step %d", i)
			continue
		}
		require.NotNil(t, d, "step %d", i)
		require.Equal(t, s.seen, d.Version)
		require.Equal(t, s.wantPrev, d.PreviousVersion)
		require.Equal(t, "build_info", d.By)
		require.Equal(t, "checkout", d.Service)
		require.Equal(t, config.EnvProduction, d.Environment)
		require.True(t, d.At.Equal(clk.Now()))
	}
	all, err := m.Deploys(0)
	require.NoError(t, err)
	require.Equal(t, []string{"1.1.0", "1.2.0", "1.1.0"}, versions(all))
}

// TestBackdatedDeployDoesNotReverseTheOrder is issue 9's case: 1.5.0 is
// recorded now, then 1.4.0 with a time an hour earlier. The last deploy
// follows deploy time, not arrival: it stays 1.5.0, whose previous version
// becomes 1.4.0, and a rollback goes from 1.5.0 to 1.4.0.
func TestBackdatedDeployDoesNotReverseTheOrder(t *testing.T) {
	ctx := context.Background()
	ctl := newController(t, []byte(testSecret))
	clk := newClock(t0)
	m := newManager(t, notifier.NewMemKV(), clk, testConfig(ctl.srv.URL))

	d15, err := m.RecordDeploy(Deploy{Version: "1.5.0"})
	require.NoError(t, err)
	require.Empty(t, d15.PreviousVersion)
	d14, err := m.RecordDeploy(Deploy{Version: "1.4.0", At: t0.Add(-time.Hour)})
	require.NoError(t, err)
	require.Empty(t, d14.PreviousVersion, "nothing was deployed before 1.4.0")

	list, err := m.Deploys(0)
	require.NoError(t, err)
	require.Equal(t, []string{"1.5.0", "1.4.0"}, versions(list), "newest deploy time first")
	require.Equal(t, "1.4.0", list[0].PreviousVersion, "1.5.0 followed 1.4.0")
	require.True(t, list[0].At.Equal(t0))

	// A critical alert 5 minutes after 1.5.0 is inside the window.
	clk.Set(t0.Add(10 * time.Minute))
	msg, rec, err := m.Decide(ctx, incident("inc-1", t0.Add(5*time.Minute), criticalApp()), "")
	require.NoError(t, err)
	require.NotNil(t, msg)
	require.Equal(t, "1.5.0", rec.BadVersion)
	require.Equal(t, "1.4.0", rec.PreviousVersion)
	require.Equal(t, 1.0, decisionCount(m, DecisionFired))

	// A manual rollback (after the cooldown) also goes from 1.5.0 to 1.4.0.
	clk.Add(2 * time.Hour)
	_, rec, err = m.Manual(ctx, "bad build", "alice")
	require.NoError(t, err)
	require.Equal(t, "1.5.0", rec.BadVersion)
	require.Equal(t, "1.4.0", rec.PreviousVersion)

	// A deploy inserted between two others links both ways; a later one
	// whose previous version was given keeps it.
	_, err = m.RecordDeploy(Deploy{Version: "1.4.5", At: t0.Add(-30 * time.Minute)})
	require.NoError(t, err)
	list, err = m.Deploys(0)
	require.NoError(t, err)
	require.Equal(t, []string{"1.5.0", "1.4.5", "1.4.0"}, versions(list))
	require.Equal(t, []string{"1.4.5", "1.4.0", ""}, previous(list))
}

func previous(ds []Deploy) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.PreviousVersion)
	}
	return out
}

// TestTrimDropsTheOldestByTime keeps the newest deploys by deploy time when a
// backdated one arrives last.
func TestTrimDropsTheOldestByTime(t *testing.T) {
	clk := newClock(t0)
	m, err := New(&Options{KV: notifier.NewMemKV(), Clock: clk.Now, KeepDeploys: 2}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(testConfig("http://127.0.0.1:1/")))
	for _, d := range []Deploy{{Version: "3", At: t0}, {Version: "2", At: t0.Add(-time.Hour)}, {Version: "1", At: t0.Add(-2 * time.Hour)}} {
		_, err := m.RecordDeploy(d)
		require.NoError(t, err)
	}
	got, err := m.Deploys(0)
	require.NoError(t, err)
	require.Equal(t, []string{"3", "2"}, versions(got))
}
