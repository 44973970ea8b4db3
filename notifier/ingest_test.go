package notifier

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func ingestConfig(resolveTimeout time.Duration) *config.Config {
	cfg := testConfig(config.EnvStaging)
	cfg.Ingest.ResolveTimeout = config.Duration(resolveTimeout)
	return cfg
}

func posted(name string, startsAt, endsAt time.Time) PostedAlert {
	return PostedAlert{
		Labels:       map[string]string{"alertname": name, "severity": "critical", "app": "app", "instance": "pod-1"},
		Annotations:  map[string]string{"summary": name + " is bad"},
		StartsAt:     startsAt,
		EndsAt:       endsAt,
		GeneratorURL: "http://prometheus.test/graph",
	}
}

// incidentOf returns the only incident of an alertname.
func (h *harness) incidentOf(name string) Incident {
	h.t.Helper()
	all, err := h.m.Incidents("")
	require.NoError(h.t, err)
	var out []Incident
	for _, inc := range all {
		if inc.Alert.Name == name {
			out = append(out, inc)
		}
	}
	require.Len(h.t, out, 1, "incidents of %s", name)
	return out[0]
}

// TestIngestResolvesAtEndsAt: a posted alert opens an incident of source
// api; refreshed before its endsAt it stays open, not refreshed it resolves
// at its endsAt; without endsAt it resolves resolve_timeout after the last
// post.
func TestIngestResolvesAtEndsAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), ingestConfig(5*time.Minute), rec, nil)
		ctx := context.Background()
		t0 := time.Now()

		// With endsAt, as Prometheus sends: refreshed once, then not.
		require.NoError(t, h.m.IngestAlerts(ctx, []PostedAlert{posted("Refreshed", t0, t0.Add(time.Minute))}))
		// Without endsAt, as amtool sends: resolve_timeout.
		require.NoError(t, h.m.IngestAlerts(ctx, []PostedAlert{posted("Timeout", t0, time.Time{})}))
		synctest.Wait()
		inc := h.incidentOf("Refreshed")
		require.Equal(t, StateTriggered, inc.State)
		require.Equal(t, SourceAPI, inc.Alert.Source)
		require.Equal(t, "pod-1", inc.Alert.Labels["instance"])
		require.Equal(t, "Refreshed is bad", inc.Alert.Annotations["summary"])
		require.True(t, inc.Alert.ActiveAt.Equal(t0))

		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, []string{"r1"}, list[0].Receivers)

		time.Sleep(50 * time.Second)
		require.NoError(t, h.m.IngestAlerts(ctx, []PostedAlert{posted("Refreshed", t0, time.Now().Add(time.Minute))}))
		time.Sleep(20 * time.Second) // past the first endsAt
		synctest.Wait()
		require.Equal(t, StateTriggered, h.incidentOf("Refreshed").State, "refreshed before its endsAt")

		time.Sleep(41 * time.Second) // past the refreshed endsAt (t0+110s)
		synctest.Wait()
		inc = h.incidentOf("Refreshed")
		require.Equal(t, StateResolved, inc.State)
		require.Equal(t, ResolvedByAlert, inc.ResolvedBy)
		require.True(t, inc.Alert.ResolvedAt.Equal(t0.Add(110*time.Second)), "resolved at its endsAt: %s", inc.Alert.ResolvedAt.Sub(t0))
		require.Equal(t, StateTriggered, h.incidentOf("Timeout").State, "resolve_timeout is 5m")

		time.Sleep(5*time.Minute - 111*time.Second + time.Second)
		synctest.Wait()
		inc = h.incidentOf("Timeout")
		require.Equal(t, StateResolved, inc.State)
		require.True(t, inc.Alert.ResolvedAt.Equal(t0.Add(5*time.Minute)), "resolved resolve_timeout after the post: %s", inc.Alert.ResolvedAt.Sub(t0))

		list, err = h.m.PostedAlerts()
		require.NoError(t, err)
		require.Empty(t, list)
		// Every level-1 receiver heard both firings and both resolutions.
		var kinds []Kind
		for _, c := range rec.delivered() {
			kinds = append(kinds, c.kind)
		}
		require.ElementsMatch(t, []Kind{KindFiring, KindFiring, KindResolved, KindResolved}, kinds)
	})
}

// TestIngestResolvedPost: an alert posted with an endsAt in the past
// resolves its incident at once.
func TestIngestResolvedPost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), ingestConfig(5*time.Minute), &recorder{}, nil)
		t0 := time.Now()
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{posted("X", t0, time.Time{})}))
		time.Sleep(10 * time.Second)
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{posted("X", t0, t0.Add(5*time.Second))}))
		synctest.Wait()
		inc := h.incidentOf("X")
		require.Equal(t, StateResolved, inc.State)
		require.True(t, inc.Alert.ResolvedAt.Equal(t0.Add(5*time.Second)))
		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Empty(t, list)
	})
}

// TestIngestSurvivesRestart: the endsAt of a posted alert is kept in the
// store; a Manager started after it passed resolves the incident.
func TestIngestSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := ingestConfig(5 * time.Minute)
		h := start(t, dir, cfg, &recorder{}, nil)
		t0 := time.Now()
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{posted("Y", t0, t0.Add(time.Minute))}))
		synctest.Wait()
		h.stop()

		time.Sleep(2 * time.Minute) // vigil is down past endsAt
		h2 := start(t, dir, cfg, &recorder{}, nil)
		synctest.Wait()
		inc := h2.incidentOf("Y")
		require.Equal(t, StateResolved, inc.State)
		require.True(t, inc.Alert.ResolvedAt.Equal(t0.Add(time.Minute)))
	})
}

func TestValidatePostedAlert(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		a    PostedAlert
		want string
	}{
		"valid":                  {posted("A", now, now.Add(time.Minute)), ""},
		"empty labels dropped":   {PostedAlert{Labels: map[string]string{"alertname": "A", "x": ""}}, ""},
		"no labels":              {PostedAlert{}, "at least one label pair required"},
		"no alertname":           {PostedAlert{Labels: map[string]string{"job": "x"}}, "the label alertname is required"},
		"ends before starts":     {posted("A", now, now.Add(-time.Minute)), "start time must be before end time"},
		"bad label name":         {PostedAlert{Labels: map[string]string{"alertname": "A", "\xff": "x"}}, `"\xff" is not a valid label name`},
		"bad value":              {PostedAlert{Labels: map[string]string{"alertname": "A", "x": "\xff"}}, `the value of "x" is not valid UTF-8`},
		"value too long":         {PostedAlert{Labels: map[string]string{"alertname": "A", "x": longASCII(MaxPostedLabelValueBytes + 1)}}, `the value of "x" is 4097 bytes; at most 4096`},
		"UTF-8 annotation name":  {PostedAlert{Labels: map[string]string{"alertname": "A"}, Annotations: map[string]string{"a b": "x"}}, ""},
		"generatorURL too long":  {PostedAlert{Labels: map[string]string{"alertname": "A"}, GeneratorURL: longASCII(MaxPostedURLBytes + 1)}, "generatorURL is 4097 bytes"},
		"annotation value UTF-8": {PostedAlert{Labels: map[string]string{"alertname": "A"}, Annotations: map[string]string{"a": "\xff"}}, "invalid annotations"},
	} {
		t.Run(name, func(t *testing.T) {
			err := ValidatePostedAlert(&tc.a)
			if tc.want == "" {
				require.NoError(t, err)
				require.NotContains(t, tc.a.Labels, "x", "empty labels are dropped")
				return
			}
			require.ErrorIs(t, err, ErrInvalidAlert)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func longASCII(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

// BenchmarkIngestAlerts posts batches of 100 firing alerts (refreshes of
// the same 100 after the first) to a running Manager on a bbolt store and
// waits for each batch to be notified; it reports alerts per second.
func BenchmarkIngestAlerts(b *testing.B) {
	m, err := New(&Options{DataDir: b.TempDir()}, nil, nil)
	require.NoError(b, err)
	require.NoError(b, m.ApplyConfig(ingestConfig(5*time.Minute)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = m.Close()
	})
	batch := make([]PostedAlert, 100)
	now := time.Now()
	for i := range batch {
		batch[i] = posted(fmt.Sprintf("Bench%d", i), now, now.Add(time.Hour))
	}
	b.ResetTimer()
	for b.Loop() {
		require.NoError(b, m.IngestAlerts(context.Background(), batch))
		require.NoError(b, m.FlushIngest(context.Background()))
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "alerts/s")
}

// TestIngestConcurrentPostsAllTaken: many senders posting at once are
// written in shared batches (group commit); every alert is recorded and
// every incident opened, each once.
func TestIngestConcurrentPostsAllTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		h := start(t, t.TempDir(), ingestConfig(5*time.Minute), rec, nil)
		t0 := time.Now()
		const senders, each = 20, 5
		errs := make(chan error, senders)
		for s := range senders {
			go func() {
				var batch []PostedAlert
				for i := range each {
					batch = append(batch, posted(fmt.Sprintf("Sender%dAlert%d", s, i), t0, t0.Add(time.Hour)))
				}
				errs <- h.m.IngestAlerts(context.Background(), batch)
			}()
		}
		for range senders {
			require.NoError(t, <-errs)
		}
		synctest.Wait()
		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Len(t, list, senders*each)
		all, err := h.m.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, senders*each, "one incident per alertname")
	})
}

// TestIngestSameAlertTwiceInOnePost: when one post (or one group-commit
// batch) holds the same alert twice, its last post decides its record:
// firing then resolved leaves none, resolved then firing keeps it firing.
func TestIngestSameAlertTwiceInOnePost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), ingestConfig(5*time.Minute), &recorder{}, nil)
		t0 := time.Now()
		require.NoError(t, h.m.IngestAlerts(context.Background(), []PostedAlert{
			posted("EndsLast", t0, time.Time{}),
			posted("EndsLast", t0.Add(-time.Minute), t0.Add(-time.Second)),
			posted("FiresLast", t0.Add(-time.Minute), t0.Add(-time.Second)),
			posted("FiresLast", t0, t0.Add(time.Minute)),
		}))
		synctest.Wait()
		list, err := h.m.PostedAlerts()
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, "FiresLast", list[0].Labels["alertname"])
		require.True(t, list[0].EndsAt.Equal(t0.Add(time.Minute)), "endsAt %s", list[0].EndsAt.Sub(t0))
		require.Equal(t, StateTriggered, h.incidentOf("FiresLast").State)
	})
}
