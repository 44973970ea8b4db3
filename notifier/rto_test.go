package notifier

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func downAlert(name string, activeAt time.Time) *rules.Alert {
	a := alert("critical", activeAt)
	a.Labels = labels.FromStrings(labels.AlertName, name, "severity", "critical", "app", "database")
	return a
}

// TestRTOEscalation: a down incident still open at half the rto goes
// straight to the last level, passing over the middle one whatever the
// ladder's waits say; the incident carries its RTO deadline. Other alerts
// keep their ladder.
func TestRTOEscalation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		alert    string
		fraction float64
		want     func(time.Duration) []summary
	}{
		{"database_down at half the rto", "database_down", 0, func(d time.Duration) []summary {
			return []summary{
				{"r1", 0, KindFiring},
				{"r3", 20 * time.Minute, KindEscalation},
				{"r3", 20*time.Minute + d, KindRepeat},
				{"r3", 20*time.Minute + 2*d, KindRepeat},
			}
		}},
		{"instance_down at a quarter", "instance_down", 0.25, func(d time.Duration) []summary {
			return []summary{
				{"r1", 0, KindFiring},
				{"r3", 10 * time.Minute, KindEscalation},
				{"r3", 10*time.Minute + d, KindRepeat},
				{"r3", 10*time.Minute + 2*d, KindRepeat},
			}
		}},
		{"high_cpu follows its ladder", "high_cpu", 0, func(d time.Duration) []summary {
			return []summary{
				{"r1", 0, KindFiring},
				{"r2", d, KindEscalation},
				{"r3", 2 * d, KindEscalation},
				{"r3", 3 * d, KindRepeat},
				{"r3", 4 * d, KindRepeat},
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(config.EnvProduction)
				cfg.DisasterRecovery = &config.DisasterRecoveryConfig{
					RTO: config.Duration(40 * time.Minute), RPO: config.Duration(time.Hour), RTOEscalation: tc.fraction,
				}
				rec := &recorder{}
				h := start(t, t.TempDir(), cfg, rec, nil)
				t0 := time.Now()
				inc := h.fire(downAlert(tc.alert, t0))
				if tc.alert == "high_cpu" {
					require.True(t, inc.RTODeadline.IsZero())
				} else {
					require.Equal(t, 40*time.Minute, inc.RTODeadline.Sub(t0), "the page's time left to the RTO")
				}
				time.Sleep(6 * time.Hour)
				synctest.Wait()
				require.Equal(t, tc.want(time.Hour), summarize(rec.delivered(), t0))
				wantMiddle := 0.0 // the middle level is passed over
				if tc.alert == "high_cpu" {
					wantMiddle = 1
				}
				require.Equal(t, wantMiddle, testutil.ToFloat64(h.m.metrics.escalations.WithLabelValues("development")))
			})
		})
	}
}

// TestRTOEscalationStopsWhenAcknowledged: acknowledging stops the RTO
// step as it stops every other; resolving before it leaves the last level
// untold.
func TestRTOEscalationStopsWhenAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(config.EnvProduction)
		cfg.DisasterRecovery = &config.DisasterRecoveryConfig{RTO: config.Duration(40 * time.Minute), RPO: config.Duration(time.Hour)}
		rec := &recorder{}
		h := start(t, t.TempDir(), cfg, rec, nil)
		t0 := time.Now()
		inc := h.fire(downAlert("app_down", t0))
		require.Equal(t, 20*time.Minute, inc.NextDeadline.Sub(t0))
		time.Sleep(5 * time.Minute)
		_, err := h.m.Acknowledge(inc.ID, "alice", "")
		require.NoError(t, err)
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, []summary{
			{"r1", 0, KindFiring},
			{"r1", 5 * time.Minute, KindAcknowledged},
		}, summarize(rec.delivered(), t0))
	})
}
