package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// refusingAlertmanager cannot write the records of posted alerts.
type refusingAlertmanager struct{ posts int }

func (r *refusingAlertmanager) IngestAlerts(context.Context, []notifier.PostedAlert) error {
	r.posts++
	return errors.New("notifier: record posted alerts: kv ingest write: no space left on device")
}

func (*refusingAlertmanager) PostedAlerts() ([]notifier.IngestedAlert, error) { return nil, nil }

// TestAlertmanagerAPIRecordFailure: when the notifier cannot record the
// posted alerts the answer is a 500 that says why, as Alertmanager's, so
// the sender posts them again; with invalid alerts among them too, the
// 500 wins over the 400 (the valid ones were not taken).
func TestAlertmanagerAPIRecordFailure(t *testing.T) {
	f := newAuthFixture(t)
	am := &refusingAlertmanager{}
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Alertmanager = am })
	for _, body := range []string{
		`[{"labels": {"alertname": "Lost", "app": "app"}}]`,
		`[{"labels": {"alertname": "Lost", "app": "app"}}, {"labels": {}}]`,
	} {
		rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v2/alerts", bearer(f.tokens["admin"]), strings.NewReader(body))
		require.Equal(t, http.StatusInternalServerError, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), "no space left on device")
	}
	require.Equal(t, 2, am.posts)
}
