package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// silence adds a silence that starts now and lasts d.
func (h *harness) silence(matchers string, d time.Duration) Silence {
	h.t.Helper()
	s, err := h.m.AddSilence(Silence{Matchers: matchers, EndsAt: time.Now().Add(d), CreatedBy: "alice", Comment: "maintenance"})
	require.NoError(h.t, err)
	return s
}

// notifications returns an incident's notifications as receiver, kind and
// outcome.
func (h *harness) notifications(id string) [][3]string {
	h.t.Helper()
	inc, err := h.m.Incident(id)
	require.NoError(h.t, err)
	out := [][3]string{}
	for _, n := range inc.Notifications {
		out = append(out, [3]string{n.Receiver, string(n.Kind), n.Outcome})
	}
	return out
}

// requireSameSilence compares silences as stored: times by instant.
func requireSameSilence(t *testing.T, want, got Silence) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g))
}

func (h *harness) queued() []Delivery {
	h.t.Helper()
	var ds []Delivery
	require.NoError(h.t, h.m.store.View(func(tx Tx) error {
		var err error
		ds, err = tx.Deliveries()
		return err
	}))
	return ds
}

func TestSilenceMutesUntilItEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		// expire ends the silence by hand at 90m; otherwise it runs out then.
		expire bool
	}{
		{"runs out", false},
		{"expired by hand", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
				t0 := time.Now()
				life := 90 * time.Minute
				if tc.expire {
					life = 10 * time.Hour
				}
				s := h.silence(`{alertname="high_cpu"}`, life)
				require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.silencesActive))

				inc := h.fire(alert("critical", t0))
				require.Equal(t, StateTriggered, inc.State, "a silence does not stop the incident")
				require.Empty(t, rec.got(), "nothing is sent")
				require.Empty(t, h.queued(), "no delivery is written")
				got, err := h.m.Incident(inc.ID)
				require.NoError(t, err)
				require.Len(t, got.Notifications, 1)
				n := got.Notifications[0]
				require.Equal(t, OutcomeSilenced, n.Outcome)
				require.Equal(t, s.ID, n.SilenceID)
				require.Equal(t, KindFiring, n.Kind)
				require.WithinDuration(t, t0, n.DoneAt, 0)

				// An alert the silence does not select is notified as usual.
				other := h.fire(namedAlert("disk_full", t0))
				require.Equal(t, []summary{{"r1", 0, KindFiring}}, summarize(rec.delivered(), t0))
				require.Equal(t, [][3]string{{"r1", "firing", OutcomeDelivered}}, h.notifications(other.ID))
				_, err = h.m.Resolve(other.ID, "alice", "") // out of the way
				require.NoError(t, err)
				synctest.Wait()
				rec.mtx.Lock()
				rec.calls = nil
				rec.mtx.Unlock()

				// The deadline while silenced holds the escalation: level 2 is
				// neither reached nor told, the deadline moves a step on.
				time.Sleep(time.Hour)
				synctest.Wait()
				got, err = h.m.Incident(inc.ID)
				require.NoError(t, err)
				require.Equal(t, 0, got.Level)
				require.Equal(t, 2*time.Hour, got.NextDeadline.Sub(t0))
				var mine []call
				for _, c := range rec.got() {
					if c.incident == inc.ID {
						mine = append(mine, c)
					}
				}
				require.Empty(t, mine)

				time.Sleep(30 * time.Minute)
				if tc.expire {
					ended, err := h.m.ExpireSilence(s.ID, "bob")
					require.NoError(t, err)
					require.Equal(t, "bob", ended.ExpiredBy)
					require.Equal(t, 90*time.Minute, ended.EndsAt.Sub(t0))
				}
				synctest.Wait()
				require.Equal(t, 0.0, testutil.ToFloat64(h.m.metrics.silencesActive))

				// The next deadline after the end notifies the next level.
				time.Sleep(30 * time.Minute)
				synctest.Wait()
				mine = nil
				for _, c := range rec.delivered() {
					if c.incident == inc.ID {
						mine = append(mine, c)
					}
				}
				require.Equal(t, []summary{{"r2", 2 * time.Hour, KindEscalation}}, summarize(mine, t0))
				require.Equal(t, [][3]string{
					{"r1", "firing", OutcomeSilenced},
					{"r2", "escalation", OutcomeDelivered},
				}, h.notifications(inc.ID))
				require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.notifications.WithLabelValues("r1", OutcomeSilenced)))
				require.Equal(t, 1.0, testutil.ToFloat64(h.m.metrics.notifications.WithLabelValues("r2", OutcomeDelivered)))
			})
		})
	}
}

func TestSilenceMutesAcknowledgementAndResolution(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
		t0 := time.Now()
		h.silence(`{app="app", severity=~"crit.*"}`, 24*time.Hour)
		a := alert("critical", t0)
		inc := h.fire(a)
		time.Sleep(61 * time.Minute)
		_, err := h.m.Acknowledge(inc.ID, "carol", "on it")
		require.NoError(t, err)
		time.Sleep(time.Minute)
		h.m.Notify(context.Background(), "x", resolved(a, time.Now()))
		synctest.Wait()

		require.Empty(t, rec.got())
		require.Empty(t, h.queued())
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, StateResolved, got.State, "incident state moves as without the silence")
		require.Equal(t, "carol", got.AcknowledgedBy)
		require.Equal(t, [][3]string{
			{"r1", "firing", OutcomeSilenced},
		}, h.notifications(inc.ID), "the escalation is held, and nobody hears of the end of what they never heard of")
	})
}

// TestSilenceOutlastsTheLadder: a silence longer than the whole escalation
// ladder leaves the incident waiting, not forgotten: when it ends, the next
// deadline tells the next level; and a level told before the silence hears
// of the resolution, one never told does not.
func TestSilenceOutlastsTheLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
		t0 := time.Now()
		a := alert("critical", t0)
		inc := h.fire(a) // level 1 told at once
		h.silence(`{alertname="high_cpu"}`, 24*time.Hour+30*time.Minute)
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, 0, got.Level, "a day of silence passed no level")
		require.Zero(t, got.Repeats)
		require.False(t, got.NextDeadline.IsZero(), "the incident still has a deadline")

		time.Sleep(time.Hour)
		synctest.Wait()
		require.Contains(t, summarize(rec.delivered(), t0), summary{"r2", 25 * time.Hour, KindEscalation},
			"after the silence, the next level is told")

		h.m.Notify(context.Background(), "x", resolved(a, time.Now()))
		synctest.Wait()
		var resolvedTo []string
		for _, c := range rec.delivered() {
			if c.kind == KindResolved {
				resolvedTo = append(resolvedTo, c.receiver)
			}
		}
		require.ElementsMatch(t, []string{"r1", "r2"}, resolvedTo)
	})
}

func TestSilenceMatchers(t *testing.T) {
	// The alert: alertname=high_cpu, severity=critical, app=app.
	for _, tc := range []struct {
		matchers string
		silenced bool
	}{
		{`{alertname="high_cpu"}`, true},
		{`{alertname="disk_full"}`, false},
		{`{app=~"api|app"}`, true},
		{`{app=~"api|web"}`, false},
		{`{app=~"ap"}`, false}, // regexes are anchored, as in PromQL
		{`{alertname=~"high_.*", severity!="warning"}`, true},
		{`{alertname="high_cpu", severity!="critical"}`, false},
		{`{alertname="high_cpu", app!~"app|web"}`, false},
		{`{team="payments"}`, false},                // a missing label is empty
		{`{alertname="high_cpu", team!="x"}`, true}, // and empty is not "x"
		{`high_cpu`, true},                          // a bare name is the alert's name
		{`high_cpu{app="web"}`, false},
		{`{"alertname"="high_cpu"}`, true},
	} {
		t.Run(tc.matchers, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
				h.silence(tc.matchers, time.Hour)
				inc := h.fire(alert("critical", time.Now()))
				want := OutcomeDelivered
				if tc.silenced {
					want = OutcomeSilenced
				}
				require.Equal(t, [][3]string{{"r1", "firing", want}}, h.notifications(inc.ID))
				require.Equal(t, !tc.silenced, len(rec.delivered()) == 1)
			})
		})
	}
}

func TestSilenceDoesNotStopRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		rb := &fakeRollbacker{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, rb)
		h.silence(`{alertname="high_cpu"}`, time.Hour)
		inc := h.fire(alert("critical", time.Now()))
		synctest.Wait()

		calls := rec.delivered()
		require.Len(t, calls, 1)
		require.Equal(t, RollbackReceiver, calls[0].receiver)
		require.Equal(t, KindRollback, calls[0].kind)
		require.Equal(t, 1, rb.calls)
		got, err := h.m.Incident(inc.ID)
		require.NoError(t, err)
		require.Equal(t, OutcomeDelivered, got.Rollback.Outcome)
		require.Equal(t, [][3]string{
			{"r1", "firing", OutcomeSilenced},
			{RollbackReceiver, "rollback", OutcomeDelivered},
		}, h.notifications(inc.ID))
	})
}

func TestAddSilenceValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), &recorder{}, nil)
		now := time.Now()
		valid := Silence{Matchers: `{alertname="high_cpu"}`, EndsAt: now.Add(time.Hour), CreatedBy: "alice"}
		for _, tc := range []struct {
			name   string
			change func(*Silence)
			want   string
		}{
			{"no matchers", func(s *Silence) { s.Matchers = "  " }, "matchers are required"},
			{"bad selector", func(s *Silence) { s.Matchers = `{alertname="high_cpu"` }, `matchers "{alertname=\"high_cpu\""`},
			{"not a selector", func(s *Silence) { s.Matchers = `rate(x[5m])` }, "parse error"},
			{"empty braces", func(s *Silence) { s.Matchers = `{}` }, `matchers "{}" match every alert`},
			{"matches everything", func(s *Silence) { s.Matchers = `{alertname=~".*"}` }, "match every alert"},
			{"every matcher matches empty", func(s *Silence) { s.Matchers = `{app!="api", team=~"x|"}` }, "match every alert"},
			{"no end", func(s *Silence) { s.EndsAt = time.Time{} }, "endsAt is required"},
			{"ends in the past", func(s *Silence) { s.EndsAt = now.Add(-time.Minute) }, "is not in the future"},
			{"ends now", func(s *Silence) { s.EndsAt = now }, "is not in the future"},
			{"ends before it starts", func(s *Silence) {
				s.StartsAt, s.EndsAt = now.Add(2*time.Hour), now.Add(time.Hour)
			}, "is not after startsAt"},
			{"over 30 days", func(s *Silence) { s.EndsAt = now.Add(31 * day) }, "at most 30d; this one would last 31d"},
			{"over 30 days from a later start", func(s *Silence) {
				s.StartsAt, s.EndsAt = now.Add(day), now.Add(32*day)
			}, "at most 30d"},
			{"no author", func(s *Silence) { s.CreatedBy = " " }, "createdBy is required"},
			{"starts too far ahead", func(s *Silence) {
				s.StartsAt, s.EndsAt = now.Add(31*day), now.Add(32*day)
			}, "starts at most 30d ahead"},
			{"long comment", func(s *Silence) { s.Comment = strings.Repeat("x", maxSilenceText+1) }, "the comment is 1025 bytes; at most 1024"},
			{"long matchers", func(s *Silence) {
				s.Matchers = `{alertname="` + strings.Repeat("x", maxSilenceText) + `"}`
			}, "at most 1024"},
		} {
			// No t.Run: it cannot be called inside a synctest bubble.
			s := valid
			tc.change(&s)
			_, err := h.m.AddSilence(s)
			require.ErrorIs(t, err, ErrInvalidSilence, tc.name)
			require.ErrorContains(t, err, "invalid silence: ", tc.name)
			require.ErrorContains(t, err, tc.want, tc.name)
		}
		all, err := h.m.Silences(true)
		require.NoError(t, err)
		require.Empty(t, all, "nothing invalid was stored")

		// The limits themselves are fine; a past start is now.
		s := valid
		s.StartsAt, s.EndsAt = now.Add(-time.Hour), now.Add(30*day)
		s.ExpiredBy, s.ID = "mallory", "chosen"
		got, err := h.m.AddSilence(s)
		require.NoError(t, err)
		require.WithinDuration(t, now, got.StartsAt, 0)
		require.WithinDuration(t, now, got.CreatedAt, 0)
		require.Empty(t, got.ExpiredBy)
		require.Len(t, got.ID, 24)
		require.NotEqual(t, "chosen", got.ID)
		require.True(t, got.Active(now))
	})
}

func TestSilenceActive(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := Silence{StartsAt: t0, EndsAt: t0.Add(time.Hour)}
	require.False(t, s.Active(t0.Add(-time.Nanosecond)))
	require.True(t, s.Active(t0))
	require.True(t, s.Active(t0.Add(time.Hour-time.Nanosecond)))
	require.False(t, s.Active(t0.Add(time.Hour)))
}

func TestSilencesListAndExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), rec, nil)
		t0 := time.Now()
		short := h.silence(`{alertname="a"}`, time.Minute)
		time.Sleep(time.Second)
		long := h.silence(`{alertname="b"}`, time.Hour)
		time.Sleep(time.Second)
		pending, err := h.m.AddSilence(Silence{Matchers: `{alertname="high_cpu"}`, StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(2 * time.Hour), CreatedBy: "alice"})
		require.NoError(t, err)
		require.WithinDuration(t, t0.Add(time.Hour), pending.StartsAt, 0)
		require.Equal(t, 2.0, testutil.ToFloat64(h.m.metrics.silencesActive), "a pending silence is not active")

		// Pending silences mute nothing yet.
		inc := h.fire(alert("critical", time.Now()))
		require.Equal(t, [][3]string{{"r1", "firing", OutcomeDelivered}}, h.notifications(inc.ID))

		time.Sleep(2 * time.Minute)
		ids := func(expired bool) []string {
			list, err := h.m.Silences(expired)
			require.NoError(t, err)
			out := []string{}
			for _, s := range list {
				out = append(out, s.ID)
			}
			return out
		}
		require.Equal(t, []string{pending.ID, long.ID}, ids(false), "newest first, expired left out")
		require.Equal(t, []string{pending.ID, long.ID, short.ID}, ids(true))

		// Expiring a pending silence starts and ends it now.
		now := time.Now()
		got, err := h.m.ExpireSilence(pending.ID, "bob")
		require.NoError(t, err)
		require.WithinDuration(t, now, got.StartsAt, 0)
		require.WithinDuration(t, now, got.EndsAt, 0)
		require.Equal(t, "bob", got.ExpiredBy)
		require.Equal(t, []string{long.ID}, ids(false))

		// Expiring an expired silence changes nothing.
		time.Sleep(time.Minute)
		again, err := h.m.ExpireSilence(pending.ID, "carol")
		require.NoError(t, err)
		requireSameSilence(t, got, again)
		ran, err := h.m.ExpireSilence(short.ID, "carol")
		require.NoError(t, err)
		requireSameSilence(t, short, ran) // one that ran out keeps its end and no expirer

		_, err = h.m.ExpireSilence("nope", "bob")
		require.ErrorIs(t, err, ErrNotFound)
		require.NotErrorIs(t, err, ErrInvalidSilence)
	})
}

func TestSilencesSurviveRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		rec := &recorder{}
		h := start(t, dir, testConfig(config.EnvProduction), rec, nil)
		s := h.silence(`{alertname=~"high_cpu|disk_full"}`, 2*time.Hour)
		h.stop()

		time.Sleep(time.Minute)
		h2 := start(t, dir, testConfig(config.EnvProduction), rec, nil)
		list, err := h2.m.Silences(false)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, s.ID, list[0].ID)
		require.Equal(t, s.Matchers, list[0].Matchers)
		require.Equal(t, "maintenance", list[0].Comment)
		require.True(t, s.EndsAt.Equal(list[0].EndsAt))
		require.Equal(t, 1.0, testutil.ToFloat64(h2.m.metrics.silencesActive))

		inc := h2.fire(alert("critical", time.Now()))
		require.Equal(t, [][3]string{{"r1", "firing", OutcomeSilenced}}, h2.notifications(inc.ID))
		require.Empty(t, rec.got())
	})
}

func TestExpiredSilencesArePruned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), &recorder{}, nil)
		t0 := time.Now()
		early := h.silence(`{alertname="a"}`, time.Hour)
		late := h.silence(`{alertname="b"}`, 2*day)
		ended, err := h.m.ExpireSilence(h.silence(`{alertname="c"}`, day).ID, "bob")
		require.NoError(t, err)

		n, err := h.m.pruneSilences(t0.Add(7 * day))
		require.NoError(t, err)
		require.Zero(t, n, "a week after the end, not yet")

		// The hourly retention loop deletes each a week after its end.
		time.Sleep(7*day + 121*time.Minute)
		synctest.Wait()
		list, err := h.m.Silences(true)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, late.ID, list[0].ID)
		for _, id := range []string{early.ID, ended.ID} {
			_, err := h.m.ExpireSilence(id, "bob")
			require.ErrorIs(t, err, ErrNotFound)
		}

		n, err = h.m.pruneSilences(t0.Add(9*day + time.Second))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		list, err = h.m.Silences(true)
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

func TestSilenceLogsAndGaugeAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		reg := prometheus.NewRegistry()
		m, err := New(&Options{DataDir: t.TempDir()}, slog.New(slog.NewTextHandler(&buf, nil)), reg)
		require.NoError(t, err)
		require.NoError(t, m.ApplyConfig(testConfig(config.EnvProduction)))
		s, err := m.AddSilence(Silence{Matchers: `{alertname="high_cpu"}`, EndsAt: time.Now().Add(time.Hour), CreatedBy: "alice", Comment: "db failover"})
		require.NoError(t, err)
		_, err = m.ExpireSilence(s.ID, "bob")
		require.NoError(t, err)
		_, err = m.ExpireSilence(s.ID, "carol")
		require.NoError(t, err)

		out := buf.String()
		require.Contains(t, out, `msg="silence added" silence=`+s.ID+` matchers="{alertname=\"high_cpu\"}"`)
		require.Contains(t, out, "by=alice")
		require.Contains(t, out, `msg="silence expired" silence=`+s.ID)
		require.Contains(t, out, "by=bob")
		require.NotContains(t, out, "carol", "expiring twice logs once")

		require.NoError(t, m.Close())
		require.True(t, math.IsNaN(testutil.ToFloat64(m.metrics.silencesActive)), "an unreadable store is not zero silences")
	})
}

func TestSilenceMatchesBareNameAsAlertname(t *testing.T) {
	ms, err := parseSilenceMatchers(`high_cpu{app="app"}`)
	require.NoError(t, err)
	s := activeSilence{id: "x", matchers: ms}
	require.True(t, s.matches(map[string]string{labels.AlertName: "high_cpu", "app": "app"}))
	require.False(t, s.matches(map[string]string{labels.MetricName: "high_cpu", "app": "app"}))
}

// TestSilencesBounded: at most maxSilences silences are in force or pending;
// ended ones do not count.
func TestSilencesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), testConfig(config.EnvProduction), &recorder{}, nil)
		for i := range maxSilences {
			h.silence(fmt.Sprintf(`{alertname="a%d"}`, i), time.Hour)
		}
		_, err := h.m.AddSilence(Silence{Matchers: `{alertname="one_more"}`, EndsAt: time.Now().Add(time.Hour), CreatedBy: "alice"})
		require.ErrorIs(t, err, ErrInvalidSilence)
		require.ErrorContains(t, err, "expire some first")
		all, err := h.m.Silences(false)
		require.NoError(t, err)
		_, err = h.m.ExpireSilence(all[0].ID, "bob")
		require.NoError(t, err)
		h.silence(`{alertname="one_more"}`, time.Hour)
	})
}
