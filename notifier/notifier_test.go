package notifier

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func TestNotifyLogsEachStateChangeOnce(t *testing.T) {
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	m := New(nil, slog.New(slog.NewTextHandler(&buf, nil)), reg)
	require.NoError(t, m.ApplyConfig(&config.Config{Environment: config.EnvProduction}))

	now := time.Now()
	a := &rules.Alert{
		State:       rules.StateFiring,
		Labels:      labels.FromStrings(labels.AlertName, "high_cpu", "severity", "critical", "app", "app"),
		Annotations: labels.FromStrings("summary", "CPU above 80%"),
		Value:       95,
		ActiveAt:    now.Add(-5 * time.Minute),
		FiredAt:     now,
	}
	ctx := context.Background()
	m.Notify(ctx, "cpu_usage > 80", a)
	m.Notify(ctx, "cpu_usage > 80", a) // the resend of a firing alert
	require.Equal(t, 1, strings.Count(buf.String(), "alert firing"))
	require.Contains(t, buf.String(), "alertname=high_cpu")
	require.Contains(t, buf.String(), `summary="CPU above 80%"`)

	resolved := *a
	resolved.State = rules.StateInactive
	resolved.ResolvedAt = now.Add(time.Minute)
	m.Notify(ctx, "cpu_usage > 80", &resolved)
	m.Notify(ctx, "cpu_usage > 80", &resolved)
	require.Equal(t, 1, strings.Count(buf.String(), "alert resolved"))

	// A pending alert is never sent by Prometheus; an unannounced resolve is not logged.
	other := &rules.Alert{State: rules.StateInactive, ResolvedAt: now, Labels: labels.FromStrings(labels.AlertName, "x")}
	m.Notify(ctx, "x", other)
	require.Equal(t, 2.0, testutil.ToFloat64(m.notifications.WithLabelValues("log", "success")))
}
