package web

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// TestPageStore: /ready and the page say which incident store is used and,
// for a shared one, which peers hold leases.
func TestPageStore(t *testing.T) {
	now := time.Now()
	env := newTestEnv(t, func(o *Options) {
		o.Store = func() notifier.StoreStatus {
			return notifier.StoreStatus{Kind: "postgres", Location: "postgres://db:5432/vigil (schema vigil)", Shared: true,
				Owner: "gw-a-1-abc", Lease: 15 * time.Second, Renewed: now,
				Peers: []notifier.Peer{
					{Owner: "gw-a-1-abc", Claims: 2, RenewedAt: now, ExpiresAt: now.Add(15 * time.Second), Self: true},
					{Owner: "gw-b-7-def", Claims: 0, RenewedAt: now, ExpiresAt: now.Add(14 * time.Second)},
				}}
		}
	})
	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	require.Contains(t, page, `<section id="store">`)
	require.Contains(t, page, "<code>postgres://db:5432/vigil (schema vigil)</code>")
	require.Contains(t, page, "<code>gw-a-1-abc</code> (this one)")
	require.Contains(t, page, "<code>gw-b-7-def</code>")
	require.Contains(t, page, "lease 15s")
	require.Contains(t, page, "<td>2</td>")

	env.h.SetReady(true)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/ready", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	require.Contains(t, body, `"store":{"kind":"postgres","location":"postgres://db:5432/vigil (schema vigil)","shared":true,"owner":"gw-a-1-abc"`)
	require.Contains(t, body, `{"owner":"gw-b-7-def","claims":0,`)
}
