package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// TestPageShowsRTO: a down incident shows the time left to its RTO; others
// show none.
func TestPageShowsRTO(t *testing.T) {
	now := time.Now()
	incs := &fakeIncidents{m: map[string]notifier.Incident{
		"inc-db": {
			ID: "inc-db", State: notifier.StateTriggered, Priority: notifier.PriorityCritical,
			Alert: notifier.Alert{Name: "database_down"}, CreatedAt: now.Add(-10 * time.Minute),
			NextDeadline: now.Add(110 * time.Minute), RTODeadline: now.Add(230*time.Minute + 30*time.Second),
		},
		"inc-cpu": {
			ID: "inc-cpu", State: notifier.StateTriggered, Priority: notifier.PriorityHigh,
			Alert: notifier.Alert{Name: "high_cpu"}, CreatedAt: now.Add(-time.Minute),
		},
	}}
	env := newTestEnv(t, func(o *Options) { o.Incidents = incs })
	env.h.SetReady(true)
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Contains(t, page, `<dt>RTO ends</dt><dd class="rto"><time class="countdown" datetime="`+now.Add(230*time.Minute+30*time.Second).UTC().Format(time.RFC3339)+`"`)
	require.Contains(t, page, ">in 3h 50m</time>")
	require.Equal(t, 1, strings.Count(page, "RTO ends"), "only the down incident has an RTO")
}
