package pgstore_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// startGateway runs a notifier Manager on a store shared with others.
func startGateway(t *testing.T, s notifier.Store) *notifier.Manager {
	t.Helper()
	m, err := notifier.New(&notifier.Options{Store: s}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, m.ApplyConfig(&config.Config{
		Service:     "checkout",
		Environment: config.EnvStaging,
		Escalation: config.EscalationConfig{
			ResponseTimes: map[string]config.Duration{"critical": config.Duration(time.Hour)},
			Priorities:    map[string]string{"critical": "critical"},
			Levels:        []config.LevelConfig{{Name: "support", Notify: []string{"log"}}},
			GroupBy:       []string{config.GroupByAll},
		},
		Ingest: config.IngestConfig{ResolveTimeout: config.Duration(time.Hour)},
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		require.NoError(t, m.Close())
	})
	return m
}

// TestIngestGatewayPair: two gateways on one PostgreSQL store both take
// every post, as from Prometheus. The firing alert has one incident; its
// resolve, notified by both, resolves it, and the tombstone the first
// deleted troubles neither: no record is left and nothing stays pending.
func TestIngestGatewayPair(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	a := startGateway(t, openStore(t, dsn, schema, nil))
	b := startGateway(t, openStore(t, dsn, schema, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now().Add(-time.Minute)
	alert := notifier.PostedAlert{
		Labels:   map[string]string{"alertname": "Pair", "severity": "critical", "instance": "pod-1"},
		StartsAt: t0,
		EndsAt:   t0.Add(time.Hour),
	}
	post := func(p notifier.PostedAlert) {
		for _, m := range []*notifier.Manager{a, b} {
			require.NoError(t, m.IngestAlerts(ctx, []notifier.PostedAlert{p}))
		}
		for _, m := range []*notifier.Manager{a, b} {
			require.NoError(t, m.FlushIngest(ctx))
		}
	}
	post(alert)
	list, err := a.Incidents("")
	require.NoError(t, err)
	require.Len(t, list, 1, "the second gateway joined the first's incident")
	require.Equal(t, notifier.StateTriggered, list[0].State)
	posted, err := b.PostedAlerts()
	require.NoError(t, err)
	require.Len(t, posted, 1)

	alert.EndsAt = time.Now()
	post(alert)
	list, err = b.Incidents("")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, notifier.StateResolved, list[0].State)
	require.Equal(t, notifier.ResolvedByAlert, list[0].ResolvedBy)
	records, err := a.KV("ingest").List("")
	require.NoError(t, err)
	require.Empty(t, records, "the tombstones are gone once the resolve is recorded")
	for _, m := range []*notifier.Manager{a, b} {
		posted, err := m.PostedAlerts()
		require.NoError(t, err)
		require.Empty(t, posted)
	}
}
