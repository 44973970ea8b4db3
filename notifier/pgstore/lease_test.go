package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/pgstore"
)

// TestClaims: one owner holds a claim while it renews; when it stops, the
// other takes it over once the lease ends, and the takeover is counted.
func TestClaims(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, b := openStore(t, dsn, schema, regA), openStore(t, dsn, schema, regB)
	const ttl = 600 * time.Millisecond

	ok, err := a.Claim(notifier.ClaimDelivery, "d1", "gw-a", ttl)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = a.Claim(notifier.ClaimDelivery, "d1", "gw-a", ttl)
	require.NoError(t, err)
	require.True(t, ok, "a claim held is held again")
	ok, err = b.Claim(notifier.ClaimDelivery, "d1", "gw-b", ttl)
	require.NoError(t, err)
	require.False(t, ok, "another live gateway holds it")
	ok, err = b.Claim(notifier.ClaimDeadline, "d1", "gw-b", ttl)
	require.NoError(t, err)
	require.True(t, ok, "kinds are apart")

	// Renewed past the first lease, a's claim holds.
	time.Sleep(ttl / 2)
	n, err := a.Renew("gw-a", ttl)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = b.Renew("gw-b", ttl)
	require.NoError(t, err)
	time.Sleep(ttl/2 + 100*time.Millisecond)
	ok, err = b.Claim(notifier.ClaimDelivery, "d1", "gw-b", ttl)
	require.NoError(t, err)
	require.False(t, ok, "renewed: still a's")

	peers, err := a.Peers()
	require.NoError(t, err)
	require.Len(t, peers, 2)
	require.Equal(t, "gw-a", peers[0].Owner)
	require.Equal(t, 1, peers[0].Claims)
	require.Equal(t, "gw-b", peers[1].Owner)
	require.Equal(t, 1, peers[1].Claims)

	// a dies (no renewal): its claim ends with its lease.
	time.Sleep(ttl + 100*time.Millisecond)
	ok, err = b.Claim(notifier.ClaimDelivery, "d1", "gw-b", ttl)
	require.NoError(t, err)
	require.True(t, ok, "a's lease ended")
	require.InDelta(t, 1, testutil.ToFloat64(metric(t, regB, "vigil_store_failovers_total", "kind", "delivery")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(metric(t, regB, "vigil_store_claims_total", "kind", "delivery", "result", "takeover")), 0)
	require.InDelta(t, 2, testutil.ToFloat64(metric(t, regB, "vigil_store_claims_total", "kind", "delivery", "result", "lost")), 0)
	require.InDelta(t, 2, testutil.ToFloat64(metric(t, regA, "vigil_store_claims_total", "kind", "delivery", "result", "won")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(metric(t, regA, "vigil_store_lease_renewals_total")), 0)

	// Release: the claim is free at once, and only its owner releases it.
	require.NoError(t, a.Release(notifier.ClaimDelivery, "d1", "gw-a"))
	ok, err = a.Claim(notifier.ClaimDelivery, "d1", "gw-a", ttl)
	require.NoError(t, err)
	require.False(t, ok, "a released nothing: the claim is b's now")
	require.NoError(t, b.Release(notifier.ClaimDelivery, "d1", "gw-b"))
	ok, err = a.Claim(notifier.ClaimDelivery, "d1", "gw-a", ttl)
	require.NoError(t, err)
	require.True(t, ok)
}

// TestClaimRace: of many gateways claiming one delivery at once, one wins.
func TestClaimRace(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	s := openStore(t, dsn, schema, nil)
	for round := range 10 {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			won []string
		)
		for _, owner := range []string{"a", "b", "c", "d"} {
			wg.Go(func() {
				ok, err := s.Claim(notifier.ClaimDelivery, "race", owner, time.Minute)
				require.NoError(t, err)
				if ok {
					mu.Lock()
					won = append(won, owner)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Len(t, won, 1, "round %d", round)
		require.NoError(t, s.Release(notifier.ClaimDelivery, "race", won[0]))
	}
}

// TestConcurrentOpenRetries: two stores (two gateways) recording the same
// alert at once end with one incident, and the loser's transaction was
// rerun (counted), not failed.
func TestConcurrentOpenRetries(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	stores := []*pgstore.Store{openStore(t, dsn, schema, regA), openStore(t, dsn, schema, regB)}
	for round := range 5 {
		fp := "fp" + string(rune('a'+round))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				<-start
				require.NoError(t, s.Update(func(tx notifier.Tx) error {
					_, found, err := tx.LatestIncident(fp)
					if err != nil || found {
						return err
					}
					// Both read before either writes.
					time.Sleep(20 * time.Millisecond)
					inc := notifier.Incident{ID: fp + string(rune('0'+i)) + time.Now().Format("150405.000000000"), Fingerprint: fp, State: notifier.StateTriggered}
					return tx.PutIncident(&inc)
				}))
			})
		}
		close(start)
		wg.Wait()
		var n int
		require.NoError(t, stores[0].View(func(tx notifier.Tx) error {
			all, err := tx.Incidents("")
			n = 0
			for _, inc := range all {
				if inc.Fingerprint == fp {
					n++
				}
			}
			return err
		}))
		require.Equal(t, 1, n, "round %d", round)
	}
	retries := sumRetries(t, regA) + sumRetries(t, regB)
	require.GreaterOrEqual(t, retries, 5.0, "each round's loser was rerun")
}

func sumRetries(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "vigil_store_transaction_retries_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestMigrate: a second Open of a migrated schema changes nothing, and a
// schema newer than this build is refused with its version named.
func TestMigrate(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	s := openStore(t, dsn, schema, nil)
	require.NoError(t, s.KV("x").Put("k", []byte("v")))
	s2 := openStore(t, dsn, schema, nil)
	v, ok, err := s2.KV("x").Get("k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte("v"), v)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var version int
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+schema+".vigil_schema_version").Scan(&version))
	require.Equal(t, pgstore.SchemaVersion, version)
	_, err = conn.Exec(ctx, "UPDATE "+schema+".vigil_schema_version SET version = 99")
	require.NoError(t, err)
	_, err = pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema}, nil, nil)
	require.ErrorContains(t, err, "version 99, newer than this vigil's 1")

	_, err = pgstore.Open(ctx, dsn, pgstore.Options{Schema: "Bad-Name"}, nil, nil)
	require.ErrorContains(t, err, `schema "Bad-Name"`)
	_, err = pgstore.Open(ctx, "postgres://user:s3cret@[::1", pgstore.Options{}, nil, nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

// metric returns the collector of one series of a registry's family.
func metric(t *testing.T, reg *prometheus.Registry, name string, lv ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{}
			for i := 0; i+1 < len(lv); i += 2 {
				want[lv[i]] = lv[i+1]
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			v := m.GetCounter().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
		}
	}
	t.Fatalf("no series %s%v", name, lv)
	return nil
}
