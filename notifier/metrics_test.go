package notifier

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// each returns the label sets {name: v} for every v.
func each(name string, values ...string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		out = append(out, labels.FromStrings(name, v).String())
	}
	return out
}

// cross returns the label sets {a: x, b: y} for every x and y.
func cross(a string, as []string, b string, bs []string) []string {
	var out []string
	for _, x := range as {
		for _, y := range bs {
			out = append(out, labels.FromStrings(a, x, b, y).String())
		}
	}
	return out
}

// TestMetricsKnownAtZero checks that every label combination known at start
// or from the config has a series at 0 before any event: increase() over a
// range cannot count the first event of a series that appears at 1.
func TestMetricsKnownAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(&Options{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })

	prios := []string{"critical", "high", "medium", "low"}
	reloaded := testConfig(config.EnvProduction)
	reloaded.Escalation.Levels = append(reloaded.Escalation.Levels, config.LevelConfig{Name: "management", Notify: []string{"log"}})

	tests := []struct {
		name  string
		apply *config.Config
		want  map[string][]string
		// none are families with no series yet.
		none []string
	}{
		{
			name: "after New",
			want: map[string][]string{
				"vigil_incidents":                   cross("state", []string{"triggered", "acknowledged"}, "priority", prios),
				"vigil_incidents_resolved_total":    each("priority", prios...),
				"vigil_time_to_acknowledge_seconds": each("priority", prios...),
				"vigil_time_to_resolve_seconds":     each("priority", prios...),
				"vigil_rollbacks_total":             each("outcome", "delivered", "failed", "dry_run", "error", "skipped"),
			},
			// Levels and receivers come with the config.
			none: []string{"vigil_escalations_total", "vigil_notifications_total"},
		},
		{
			name:  "after ApplyConfig",
			apply: testConfig(config.EnvProduction),
			want: map[string][]string{
				"vigil_escalations_total": each("level", "support", "development", "architecture"),
				// The implicit log receiver is always there; testConfig
				// builds no other.
				"vigil_notifications_total": cross("outcome", []string{"delivered", "failed", "silenced"}, "receiver", []string{"log"}),
			},
		},
		{
			name:  "after a reload that adds a level",
			apply: reloaded,
			want: map[string][]string{
				"vigil_escalations_total": each("level", "support", "development", "architecture", "management"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.apply != nil {
				require.NoError(t, m.ApplyConfig(tc.apply))
			}
			got := gatherZeroes(t, reg)
			for name, want := range tc.want {
				require.Subsetf(t, got[name], want, "%s", name)
			}
			for _, name := range tc.none {
				require.Emptyf(t, got[name], "%s", name)
			}
		})
	}
}

// TestMetricsReceiversAtZero checks that every built receiver, the rollback
// receiver included, has a notifications series per outcome after
// ApplyConfig.
func TestMetricsReceiversAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	m, err := New(&Options{
		DataDir: t.TempDir(),
		Receivers: func(*config.Config) (map[string]Receiver, error) {
			return map[string]Receiver{"r1": rec.receiver("r1"), RollbackReceiver: rec.receiver(RollbackReceiver)}, nil
		},
	}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	require.NoError(t, m.ApplyConfig(testConfig(config.EnvProduction)))
	got := gatherZeroes(t, reg)
	require.ElementsMatch(t, cross("outcome", []string{"delivered", "failed", "silenced"}, "receiver", []string{"log", "r1", "rollback"}),
		got["vigil_notifications_total"])
}

// gatherZeroes returns, per family, the label sets of its series, and fails
// on any counter, histogram or vigil_incidents series that is not 0.
func gatherZeroes(t *testing.T, reg *prometheus.Registry) map[string][]string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string][]string{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			b := labels.NewScratchBuilder(len(mt.GetLabel()))
			for _, lp := range mt.GetLabel() {
				b.Add(lp.GetName(), lp.GetValue())
			}
			b.Sort()
			key := b.Labels().String()
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				require.Zerof(t, mt.GetCounter().GetValue(), "%s%s", mf.GetName(), key)
			case dto.MetricType_GAUGE:
				if mf.GetName() == "vigil_incidents" {
					require.Zerof(t, mt.GetGauge().GetValue(), "%s%s", mf.GetName(), key)
				}
			case dto.MetricType_HISTOGRAM:
				require.Zerof(t, mt.GetHistogram().GetSampleCount(), "%s%s", mf.GetName(), key)
				require.Zerof(t, mt.GetHistogram().GetSampleSum(), "%s%s", mf.GetName(), key)
			}
			out[mf.GetName()] = append(out[mf.GetName()], key)
		}
	}
	return out
}
