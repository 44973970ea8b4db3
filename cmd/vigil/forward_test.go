package main

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// TestForwarderRouting: with a forward block the alerts go to the gateway
// and not to the local notifier (unless notify_locally); a reload without
// the block gives them back to the local notifier and stops sending.
func TestForwarderRouting(t *testing.T) {
	gw := newAMGateway(t)
	var local atomic.Int64
	ext, _ := url.Parse("http://sidecar:9090")
	parse := func(doc string) *config.Config {
		cfg, err := config.Parse([]byte("service: checkout\nglobal: {external_labels: {pod: p-1}}\n"+doc), "vigil.yaml")
		require.NoError(t, err)
		return cfg
	}
	withForward := parse("alerts:\n  forward: {urls: [\"" + gw.URL + "\"], token: t0k}\n")
	f := newForwarder(withForward, func(context.Context, string, ...*promrules.Alert) { local.Add(1) }, ext, nil)
	require.NoError(t, f.ApplyConfig(withForward))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	now := time.Now()
	alert := func(name string) *promrules.Alert {
		return &promrules.Alert{State: promrules.StateFiring, Labels: labels.FromStrings("alertname", name),
			FiredAt: now, ValidUntil: now.Add(4 * time.Minute)}
	}
	f.Notify(ctx, "up == 0", alert("a1"))
	require.Eventually(t, func() bool { return len(gw.received("a1", false)) == 1 }, 10*time.Second, 10*time.Millisecond)
	got := gw.received("a1", false)[0]
	require.Equal(t, "Bearer t0k", got.auth)
	require.Equal(t, "p-1", got.Labels["pod"])
	require.WithinDuration(t, now.Add(4*time.Minute), got.EndsAt, time.Millisecond, "endsAt is the rules' ValidUntil")
	require.Equal(t, "http://sidecar:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1", got.GeneratorURL)
	require.Zero(t, local.Load())
	st := f.Status()
	require.NotNil(t, st)
	require.Equal(t, gw.URL, st.Gateways[0].URL)
	require.Equal(t, 1.0, st.Gateways[0].Sent)

	// notify_locally: both.
	require.NoError(t, f.ApplyConfig(parse("alerts:\n  forward: {urls: [\""+gw.URL+"\"], notify_locally: true}\n")))
	f.Notify(ctx, "up == 0", alert("a2"))
	require.Eventually(t, func() bool { return len(gw.received("a2", false)) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(1), local.Load())

	// No block: local only, nothing sent, no status.
	require.NoError(t, f.ApplyConfig(parse("")))
	f.Notify(ctx, "up == 0", alert("a3"))
	require.Equal(t, int64(2), local.Load())
	require.Nil(t, f.Status())
	require.Empty(t, f.manager.Alertmanagers())
	require.Empty(t, gw.received("a3", false))
}
