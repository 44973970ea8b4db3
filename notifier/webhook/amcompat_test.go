// This test decodes the payload into Alertmanager's own template.Data, so
// that existing Alertmanager webhook receivers keep working.

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/alertmanager/template"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

func TestPayloadIsAlertmanagerTemplateData(t *testing.T) {
	for _, kind := range []notifier.Kind{notifier.KindFiring, notifier.KindResolved} {
		t.Run(string(kind), func(t *testing.T) {
			rc := &recorder{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			r := newTestReceiver(t, srv.URL)
			_, err := r.Notify(context.Background(), testMessage(kind))
			require.NoError(t, err)

			// Alertmanager's webhook message is template.Data plus these.
			var msg struct {
				*template.Data
				Version         string `json:"version"`
				GroupKey        string `json:"groupKey"`
				TruncatedAlerts uint64 `json:"truncatedAlerts"`
			}
			dec := json.NewDecoder(bytes.NewReader(rc.requests()[0].body))
			require.NoError(t, dec.Decode(&msg))
			require.NotNil(t, msg.Data)
			require.Equal(t, "4", msg.Version)
			require.Equal(t, string(kind), msg.Status)
			require.Equal(t, "ops", msg.Receiver)
			require.Len(t, msg.Alerts, 1)
			require.Equal(t, "high_cpu", msg.CommonLabels["alertname"])
			require.Equal(t, "high_cpu", msg.GroupLabels["alertname"])
			require.Equal(t, "a1b2c3", msg.Alerts[0].Fingerprint)
			require.True(t, msg.Alerts[0].StartsAt.Equal(t0))
			if kind == notifier.KindResolved {
				require.Len(t, msg.Alerts.Resolved(), 1)
			} else {
				require.Len(t, msg.Alerts.Firing(), 1)
			}
		})
	}
}
