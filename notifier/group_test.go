package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/vigil-sh/vigil/config"
)

// replica is the alert of one replica of the service: the same rule, its
// own pod and instance.
func replica(i int, activeAt time.Time) *rules.Alert {
	a := alert("critical", activeAt)
	a.Labels = labels.FromStrings(labels.AlertName, "high_cpu", "severity", "critical", "app", "app",
		"environment", "production", "service", "checkout",
		"pod", fmt.Sprintf("checkout-%d", i), "instance", fmt.Sprintf("10.0.0.%d:8080", i))
	return a
}

func groupConfig(groupBy ...string) *config.Config {
	cfg := testConfig(config.EnvProduction)
	cfg.Escalation.GroupBy = groupBy
	return cfg
}

func memberStates(inc Incident) map[string]string {
	out := map[string]string{}
	for _, mb := range inc.Members {
		out[mb.Labels["pod"]] = mb.State
	}
	return out
}

// Three replicas firing the same rule (from three sidecars, one after the
// other) are one incident with three members: one Level 1 page per
// receiver, one rollback decision, Level 2 once at the deadline, and the
// resolution only when the last of them clears.
func TestGroupFoldsReplicasIntoOneIncident(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		rb := &fakeRollbacker{}
		h := start(t, t.TempDir(), groupConfig(config.DefaultGroupBy()...), rec, rb)
		t0 := time.Now()
		as := []*rules.Alert{replica(0, t0), replica(1, t0), replica(2, t0)}
		for _, a := range as {
			h.m.Notify(context.Background(), "x", a)
			time.Sleep(time.Second)
		}
		synctest.Wait()
		all := must(h.m.Incidents(""))(t)
		require.Len(t, all, 1)
		inc := all[0]
		require.Len(t, inc.Members, 3)
		require.Equal(t, map[string]string{"checkout-0": MemberFiring, "checkout-1": MemberFiring, "checkout-2": MemberFiring}, memberStates(inc))
		require.Equal(t, "checkout-0", inc.Alert.Labels["pod"], "the first member names the incident")
		require.Equal(t, 3, FiringMembers(&inc))
		require.Equal(t, []summary{{"r1", 0, KindFiring}, {"rollback", 0, KindRollback}}, summarize(rec.delivered(), t0))
		require.Equal(t, 1, rb.calls, "one rollback decision for the group")

		// Resends of the members change nothing.
		h.m.Notify(context.Background(), "x", as...)
		synctest.Wait()
		require.Len(t, must(h.m.Incidents(""))(t), 1)

		// Two clear: the incident stays open, and escalates at its
		// deadline.
		h.m.Notify(context.Background(), "x", resolved(as[0], time.Now()), resolved(as[1], time.Now()))
		synctest.Wait()
		got := must(h.m.Incident(inc.ID))(t)
		require.Equal(t, StateTriggered, got.State)
		require.Equal(t, map[string]string{"checkout-0": MemberResolved, "checkout-1": MemberResolved, "checkout-2": MemberFiring}, memberStates(got))
		time.Sleep(time.Hour)
		synctest.Wait()

		// The last clears: resolved, and every told level hears it once.
		h.m.Notify(context.Background(), "x", resolved(as[2], time.Now()))
		synctest.Wait()
		got = must(h.m.Incident(inc.ID))(t)
		require.Equal(t, StateResolved, got.State)
		require.Equal(t, ResolvedByAlert, got.ResolvedBy)
		require.False(t, got.Alert.ResolvedAt.IsZero())
		require.Equal(t, []summary{
			{"r1", 0, KindFiring}, {"rollback", 0, KindRollback},
			{"r2", time.Hour, KindEscalation},
			{"r1", time.Hour + 3*time.Second, KindResolved}, {"r2", time.Hour + 3*time.Second, KindResolved},
		}, summarize(rec.delivered(), t0))
		require.Equal(t, 1, rb.calls)

		// A replica firing again later opens a new incident.
		h.m.Notify(context.Background(), "x", replica(1, time.Now()))
		synctest.Wait()
		require.Len(t, must(h.m.Incidents(StateTriggered))(t), 1)
	})
}

// Alerts of one group in one Notify call are all members of the first
// page's incident.
func TestGroupOneBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), groupConfig(config.DefaultGroupBy()...), rec, nil)
		t0 := time.Now()
		h.m.Notify(context.Background(), "x", replica(0, t0), replica(1, t0), replica(2, t0))
		synctest.Wait()
		all := must(h.m.Incidents(""))(t)
		require.Len(t, all, 1)
		require.Len(t, all[0].Members, 3)
		require.Len(t, rec.delivered(), 1)
		require.Equal(t, 3, rec.delivered()[0].members, "the page lists all three")
		var ds []Delivery
		require.NoError(t, h.m.store.View(func(tx Tx) error {
			var err error
			ds, err = tx.Deliveries()
			return err
		}))
		require.Empty(t, ds, "delivered")
	})
}

// With instance in group_by, each replica is its own incident, as before
// grouping.
func TestGroupByInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		rb := &fakeRollbacker{}
		h := start(t, t.TempDir(), groupConfig("alertname", "instance"), rec, rb)
		t0 := time.Now()
		for i := range 3 {
			h.m.Notify(context.Background(), "x", replica(i, t0))
		}
		synctest.Wait()
		all := must(h.m.Incidents(""))(t)
		require.Len(t, all, 3)
		for _, inc := range all {
			require.Len(t, inc.Members, 1)
		}
		require.Equal(t, []summary{
			{"r1", 0, KindFiring}, {"r1", 0, KindFiring}, {"r1", 0, KindFiring},
			{"rollback", 0, KindRollback}, {"rollback", 0, KindRollback}, {"rollback", 0, KindRollback},
		}, summarize(rec.delivered(), t0))
		require.Equal(t, 3, rb.calls)
	})
}

// After a restart, the reconcile marks resolved the members whose alerts
// ended meanwhile and resolves the incident only when none still fires.
func TestReconcileJudgesGroupMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), groupConfig(config.DefaultGroupBy()...), rec, nil)
		t0 := time.Now()
		as := []*rules.Alert{replica(0, t0), replica(1, t0), replica(2, t0)}
		inc := h.fire(as[0])
		h.m.Notify(context.Background(), "x", as[1], as[2])
		synctest.Wait()
		time.Sleep(time.Second)

		src := &fakeRules{}
		src.set(true, as[2])
		done := reconcileStart(h, src)
		synctest.Wait()
		require.True(t, finished(done))
		got := must(h.m.Incident(inc.ID))(t)
		require.Equal(t, StateTriggered, got.State)
		require.Equal(t, map[string]string{"checkout-0": MemberResolved, "checkout-1": MemberResolved, "checkout-2": MemberFiring}, memberStates(got))

		src.set(true)
		done = reconcileStart(h, src)
		synctest.Wait()
		require.True(t, finished(done))
		got = must(h.m.Incident(inc.ID))(t)
		require.Equal(t, StateResolved, got.State)
		require.Equal(t, map[string]string{"checkout-0": MemberResolved, "checkout-1": MemberResolved, "checkout-2": MemberResolved}, memberStates(got))
	})
}

// An incident written before grouping (no members, keyed by its alert's
// own fingerprint) keeps working: its alert's resends find it, it escalates
// at its deadline and resolves when its alert clears.
func TestIncidentOfOlderVersionKeepsWorking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		t0 := time.Now()
		a := replica(0, t0)
		fp := fingerprint(a.Labels)
		ls, err := json.Marshal(a.Labels.Map())
		require.NoError(t, err)
		// The JSON of an incident as vigil wrote it before grouping.
		old := fmt.Sprintf(`{"id":"0000000000000001aaaaaaaa","fingerprint":%q,"alert":{"name":"high_cpu","fingerprint":%q,`+
			`"labels":%s,"annotations":{"summary":"CPU above 80%%"},"value":95,"activeAt":%q,"firedAt":%q,"source":"rules"},`+
			`"state":"triggered","priority":"critical","level":0,"nextDeadline":%q,"repeats":0,"createdAt":%q,`+
			`"notifications":[{"deliveryId":"0000000000000001bbbbbbbb","receiver":"r1","level":0,"kind":"firing","queuedAt":%q,"outcome":"delivered","attempts":1,"doneAt":%q}]}`,
			fp, fp, ls, t0.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano), t0.Add(time.Hour).Format(time.RFC3339Nano),
			t0.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
		s, err := OpenBoltStore(dir)
		require.NoError(t, err)
		require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketIncidents).Put([]byte("0000000000000001aaaaaaaa"), []byte(old)); err != nil {
				return err
			}
			return tx.Bucket(bucketFingerprint).Put([]byte(fp), []byte("0000000000000001aaaaaaaa"))
		}))
		require.NoError(t, s.Close())

		rec := &recorder{}
		h := start(t, dir, groupConfig(config.DefaultGroupBy()...), rec, nil)
		require.NotEqual(t, fp, h.m.config().groupKey(a.Labels), "the group's key is not the alert's")
		inc := must(h.m.Incident("0000000000000001aaaaaaaa"))(t)
		require.Equal(t, []Member{memberOf(inc.Alert)}, MemberList(&inc))
		require.Equal(t, h.m.config().groupKey(a.Labels), inc.Fingerprint, "keyed by its group at the first config")

		// The alert is sent again, with a new value: no new incident.
		b := *a
		b.Value = 97
		h.m.Notify(context.Background(), "x", &b)
		synctest.Wait()
		all := must(h.m.Incidents(""))(t)
		require.Len(t, all, 1)
		require.Equal(t, 97.0, all[0].Alert.Value)
		require.Empty(t, rec.delivered())

		// A sibling replica fires after the upgrade: it joins, no page.
		h.m.Notify(context.Background(), "x", replica(1, t0))
		synctest.Wait()
		all = must(h.m.Incidents(""))(t)
		require.Len(t, all, 1)
		require.Len(t, all[0].Members, 2)
		require.Empty(t, rec.delivered())

		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, []summary{{"r2", time.Hour, KindEscalation}}, summarize(rec.delivered(), t0))

		h.m.Notify(context.Background(), "x", resolved(a, time.Now()))
		synctest.Wait()
		require.Equal(t, StateTriggered, must(h.m.Incident(inc.ID))(t).State, "its sibling still fires")
		h.m.Notify(context.Background(), "x", resolved(replica(1, t0), time.Now()))
		synctest.Wait()
		got := must(h.m.Incident(inc.ID))(t)
		require.Equal(t, StateResolved, got.State)
		require.Equal(t, ResolvedByAlert, got.ResolvedBy)
		require.Equal(t, []summary{
			{"r1", time.Hour, KindResolved},
			{"r2", time.Hour, KindEscalation}, {"r2", time.Hour, KindResolved},
		}, summarize(rec.delivered(), t0))
		require.Len(t, must(h.m.Incidents(""))(t), 1)
	})
}

// A member stays with its incident when a reload changes group_by: its
// resolution still counts there, and the incident resolves with it.
func TestGroupByChangeKeepsMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), groupConfig(config.DefaultGroupBy()...), rec, nil)
		t0 := time.Now()
		as := []*rules.Alert{replica(0, t0), replica(1, t0)}
		h.m.Notify(context.Background(), "x", as...)
		synctest.Wait()
		inc := must(h.m.Incidents(""))(t)[0]
		require.Len(t, inc.Members, 2)

		require.NoError(t, h.m.ApplyConfig(groupConfig("alertname", "pod")))
		h.m.Notify(context.Background(), "x", as...) // resends
		synctest.Wait()
		require.Len(t, must(h.m.Incidents(""))(t), 1, "resends stay with their incident")
		h.m.Notify(context.Background(), "x", resolved(as[0], time.Now()), resolved(as[1], time.Now()))
		synctest.Wait()
		require.Equal(t, StateResolved, must(h.m.Incident(inc.ID))(t).State)
		// A new replica goes to its group under the new group_by.
		h.m.Notify(context.Background(), "x", replica(2, time.Now()))
		synctest.Wait()
		open := must(h.m.Incidents(StateTriggered))(t)
		require.Len(t, open, 1)
		require.Equal(t, h.m.config().groupKey(replica(2, t0).Labels), open[0].Fingerprint)
	})
}

// Groups reduce storms: 20 replicas of one service are one incident, far
// below the threshold; 5 services are 5 groups, and beyond the threshold
// the alerts of further groups fold into the storm incident as before.
func TestGroupsAndStorms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := groupConfig(config.DefaultGroupBy()...)
		cfg.Escalation.StormThreshold = 3
		rec := &recorder{}
		h := start(t, t.TempDir(), cfg, rec, nil)
		t0 := time.Now()
		var as []*rules.Alert
		for i := range 20 {
			as = append(as, replica(i, t0))
		}
		h.m.Notify(context.Background(), "x", as...)
		synctest.Wait()
		all := must(h.m.Incidents(""))(t)
		require.Len(t, all, 1)
		require.Len(t, all[0].Members, 20)
		require.Nil(t, all[0].Storm)

		as = nil
		for i := range 5 {
			for j := range 2 {
				a := replica(j, t0)
				a.Labels = labels.NewBuilder(a.Labels).Set(labels.AlertName, "errors").Set("service", fmt.Sprintf("svc-%d", i)).Labels()
				as = append(as, a)
			}
		}
		h.m.Notify(context.Background(), "x", as...)
		synctest.Wait()
		var groups, storms int
		for _, inc := range must(h.m.Incidents(""))(t) {
			if inc.Alert.Name != "errors" {
				continue
			}
			if inc.Storm != nil {
				storms++
				require.Equal(t, 4, inc.Storm.Alerts, "the alerts of the two groups beyond the threshold")
				continue
			}
			groups++
			require.Len(t, inc.Members, 2)
		}
		require.Equal(t, 3, groups)
		require.Equal(t, 1, storms)
		require.Len(t, rec.delivered(), 1+3+1, "one page per incident")
	})
}

// An alert of the group not recorded yet keeps its incident open through
// the reconcile (it joins at its next notification), while the members that
// ended are marked so.
func TestReconcileKeepsGroupOfUnrecordedAlert(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), groupConfig(config.DefaultGroupBy()...), rec, nil)
		t0 := time.Now()
		inc := h.fire(replica(0, t0))
		time.Sleep(time.Second)

		src := &fakeRules{}
		src.set(true, replica(1, t0))
		done := reconcileStart(h, src)
		synctest.Wait()
		require.True(t, finished(done))
		got := must(h.m.Incident(inc.ID))(t)
		require.Equal(t, StateTriggered, got.State)
		require.Equal(t, map[string]string{"checkout-0": MemberResolved}, memberStates(got))

		h.m.Notify(context.Background(), "x", replica(1, t0))
		synctest.Wait()
		got = must(h.m.Incident(inc.ID))(t)
		require.Equal(t, map[string]string{"checkout-0": MemberResolved, "checkout-1": MemberFiring}, memberStates(got))
		require.Len(t, rec.delivered(), 1, "joined without a page")
		h.m.Notify(context.Background(), "x", resolved(replica(1, t0), time.Now()))
		synctest.Wait()
		require.Equal(t, StateResolved, must(h.m.Incident(inc.ID))(t).State)
	})
}

// A silence of one replica does not mute its group while another replica
// fires (the replica that joins pages the level reached, and the escalation
// goes on); a silence of the group's labels does.
func TestGroupSilencedOnlyWhenEveryFiringMemberIs(t *testing.T) {
	for _, tc := range []struct {
		name, matchers string
		want           []summary
	}{
		{"one pod", `{pod="checkout-0"}`, []summary{{"r1", 0, KindFiring}, {"r2", time.Hour, KindEscalation}}},
		{"the group", `{alertname="high_cpu",service="checkout"}`, []summary{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				h := start(t, t.TempDir(), groupConfig(config.DefaultGroupBy()...), rec, nil)
				h.silence(tc.matchers, 24*time.Hour)
				t0 := time.Now()
				inc := h.fire(replica(0, t0))
				require.Empty(t, rec.delivered(), "Level 1 heard nothing: the one member was muted")
				// The second replica pages Level 1 unless it is muted too.
				h.m.Notify(context.Background(), "x", replica(1, t0))
				synctest.Wait()
				time.Sleep(time.Hour)
				synctest.Wait()
				require.Equal(t, tc.want, summarize(rec.delivered(), t0))
				require.Len(t, must(h.m.Incident(inc.ID))(t).Members, 2)
			})
		})
	}
}

func TestCommonLabels(t *testing.T) {
	inc := Incident{Alert: Alert{Labels: map[string]string{"alertname": "a", "pod": "p0"}}}
	require.Equal(t, map[string]string{"alertname": "a", "pod": "p0"}, CommonLabels(&inc), "one alert: its labels")
	inc.Members = []Member{
		{Labels: map[string]string{"alertname": "a", "pod": "p0", "app": "x"}},
		{Labels: map[string]string{"alertname": "a", "pod": "p1", "app": "x"}},
		{Labels: map[string]string{"alertname": "a", "pod": "p2"}},
	}
	require.Equal(t, map[string]string{"alertname": "a"}, CommonLabels(&inc))
}

// At the first config the oldest open incident of an older version keys
// its group, acknowledged ones included; a newer one of the group and a
// resolved one keep their alert's fingerprint.
func TestOlderIncidentsOldestOpenKeysGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		t0 := time.Now()
		s, err := OpenBoltStore(dir)
		require.NoError(t, err)
		old := func(id string, i int, state State) Incident {
			a := replica(i, t0)
			fp := fingerprint(a.Labels)
			return Incident{ID: id, Fingerprint: fp, State: state, Priority: "critical", CreatedAt: t0,
				Alert: Alert{Name: "high_cpu", Fingerprint: fp, Labels: a.Labels.Map(), ActiveAt: t0, Source: SourceRules}}
		}
		incs := []Incident{
			old("0000000000000000aaaaaaaa", 2, StateResolved),
			old("0000000000000001aaaaaaaa", 0, StateAcknowledged),
			old("0000000000000002aaaaaaaa", 1, StateTriggered),
		}
		require.NoError(t, s.Update(func(tx Tx) error {
			for i := range incs {
				if err := tx.PutIncident(&incs[i]); err != nil {
					return err
				}
			}
			return nil
		}))
		require.NoError(t, s.Close())

		h := start(t, dir, groupConfig(config.DefaultGroupBy()...), &recorder{}, nil)
		gfp := h.m.config().groupKey(replica(0, t0).Labels)
		for _, want := range []struct {
			id, fp string
		}{
			{incs[0].ID, incs[0].Fingerprint}, // resolved: left alone
			{incs[1].ID, gfp},                 // oldest open: keys the group
			{incs[2].ID, incs[2].Fingerprint}, // its group has one already
		} {
			require.Equal(t, want.fp, must(h.m.Incident(want.id))(t).Fingerprint, "incident %s", want.id)
		}
	})
}
