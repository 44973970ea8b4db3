package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// haLease is the lease of the failover tests: short, so that a trial is
// quick.
const haLease = 2 * time.Second

// haDSN is the machine's PostgreSQL (VIGIL_TEST_PG_DSN, as the PostgreSQL
// collector's tests, or VIGIL_TEST_POSTGRES_DSN); the test fails, saying
// how to start one, when none answers.
func haDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("VIGIL_TEST_PG_DSN")
	if dsn == "" {
		dsn = os.Getenv("VIGIL_TEST_POSTGRES_DSN")
	}
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("no PostgreSQL answers at VIGIL_TEST_PG_DSN: %v\n"+
			"start one with: eval \"$(scripts/pg-ensure.sh)\" (from the repository root)", err)
	}
	conn.Close(ctx)
	return dsn
}

// freshDatabase creates a database for one test on dsn's server, dropped
// when the test ends, and returns its DSN.
func freshDatabase(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = crand.Read(b[:])
	name := "vigil_ha_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// haHooks are the receivers of a failover trial: they answer 503 until
// failUntil, then 200, and count each webhook-id's requests.
type haHooks struct {
	*httptest.Server
	failUntil atomic.Int64 // unix nanos
	mtx       sync.Mutex
	ids       map[string]*haDelivery
}

type haDelivery struct {
	path     string
	requests int
	// times are when each request came.
	times []time.Time
	// accepted is when it first got a 2xx; extra counts the requests
	// after that.
	accepted time.Time
	extra    int
	// inflight counts the requests being answered; overlaps counts the
	// requests that came while another for the same id was being answered
	// (two gateways sending one delivery at once).
	inflight, overlaps int
}

func newHAHooks(t *testing.T) *haHooks {
	h := &haHooks{ids: map[string]*haDelivery{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		now := time.Now()
		h.mtx.Lock()
		d := h.ids[id]
		if d == nil {
			d = &haDelivery{path: r.URL.Path}
			h.ids[id] = d
		}
		d.requests++
		d.times = append(d.times, now)
		ok := now.UnixNano() >= h.failUntil.Load()
		switch {
		case !d.accepted.IsZero():
			d.extra++
		case ok:
			d.accepted = now
		}
		d.inflight++
		if d.inflight > 1 {
			d.overlaps++
		}
		h.mtx.Unlock()
		// A slow receiver, so that two senders of one delivery meet.
		time.Sleep(150 * time.Millisecond)
		h.mtx.Lock()
		d.inflight--
		h.mtx.Unlock()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *haHooks) snapshot() map[string]haDelivery {
	h.mtx.Lock()
	defer h.mtx.Unlock()
	out := map[string]haDelivery{}
	for id, d := range h.ids {
		c := *d
		c.times = append([]time.Time(nil), d.times...)
		out[id] = c
	}
	return out
}

func (h *haHooks) acceptedOn(path string) int {
	n := 0
	for _, d := range h.snapshot() {
		if d.path == path && !d.accepted.IsZero() {
			n++
		}
	}
	return n
}

// haConfig is one gateway of the pair: the shared store, level 1 (l1)
// then level 2 (l2) after 5s, and the rollback webhook.
func haConfig(dir, addr, dsn string, app *gaugeApp, hooks *haHooks) string {
	return fmt.Sprintf(`service: checkout
environment: production
data_dir: %[1]s
server: {listen: "%[2]s"}
logging: {level: debug, format: text}
metrics: {interval: 1s}
storage:
  incidents: "%[3]s"
  lease: %[6]s
collectors:
  app: {targets: ["%[4]s"], labels: {app: app}}
alerts:
  rules:
    - {name: high_cpu, condition: cpu_usage > 80, duration: 1s, severity: critical, labels: {app: app}}
escalation:
  response_times: {critical: 1h}
  levels:
    - {name: support, notify: [l1], wait: 5s}
    - {name: development, notify: [l2]}
receivers:
  - {name: l1, webhook: {url: "%[5]s/l1", secret: s1}}
  - {name: l2, webhook: {url: "%[5]s/l2", secret: s1}}
rollback:
  webhook: {url: "%[5]s/rollback", secret: s2}
  when: {severity: critical}
  window: 10m
  cooldown: 1h
`, filepath.Join(dir, "data"), addr, dsn, app.hostPort(), hooks.URL, haLease)
}

// TestHAFailover is the failover check: two gateways share one
// PostgreSQL database and scrape the same app, so both evaluate the same
// alert; the receivers answer 503 for a while; the gateway holding claims
// is killed (SIGKILL) at a random moment. Afterwards every delivery has
// arrived, none twice after a 2xx, there is one incident, the rollback
// webhook was called once, and the survivor held every due delivery
// within 2 × the lease. VIGIL_HA_TRIALS sets the number of trials
// (default 3).
func TestHAFailover(t *testing.T) {
	dsn := haDSN(t)
	trials := 3
	if s := os.Getenv("VIGIL_HA_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "VIGIL_HA_TRIALS")
		trials = n
	}
	var takeovers []time.Duration
	unavoidable := 0
	for i := range trials {
		t.Run(fmt.Sprintf("trial%02d", i), func(t *testing.T) {
			d, dup := haTrial(t, dsn)
			takeovers = append(takeovers, d)
			unavoidable += dup
		})
		if t.Failed() {
			break
		}
	}
	sort.Slice(takeovers, func(i, j int) bool { return takeovers[i] < takeovers[j] })
	if len(takeovers) > 0 {
		t.Logf("failover trials: %d, takeover after the kill: min %s, median %s, max %s (lease %s); "+
			"resends of a delivery answered 2xx just before the kill: %d",
			len(takeovers), takeovers[0], takeovers[len(takeovers)/2], takeovers[len(takeovers)-1], haLease, unavoidable)
	}
}

// haTrial runs one trial and returns how long after the kill the survivor
// held every due delivery, and how many deliveries were sent again because
// the killed gateway was answered 2xx but died before it could record it.
func haTrial(t *testing.T, serverDSN string) (time.Duration, int) {
	dsn := freshDatabase(t, serverDSN)
	app := newGaugeApp(t, 95)
	hooks := newHAHooks(t)
	// The receivers fail from the start until some seconds after the
	// incident opens (set below).
	hooks.failUntil.Store(time.Now().Add(time.Hour).UnixNano())

	procs := startHAPair(t, dsn, app, hooks)
	// Deploys are shared: one gateway records them, the other decides on
	// them.
	procs[0].postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.0.0","environment":"production"}`)
	procs[0].postJSON("/api/v1/deploys", `{"service":"checkout","version":"1.1.0","environment":"production"}`)

	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer db.Close(ctx)
	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, db.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM vigil.incidents`) > 0 },
		30*time.Second, 50*time.Millisecond, "no incident opened")
	opened := time.Now()
	hooks.failUntil.Store(opened.Add(time.Duration(1000+rand.IntN(4000)) * time.Millisecond).UnixNano())

	// Kill the gateway holding claims, at a random moment while it does.
	time.Sleep(time.Duration(rand.IntN(2500)) * time.Millisecond)
	var victim, survivor *vigilProc
	require.Eventually(t, func() bool {
		rows, err := db.Query(ctx, `SELECT owner FROM vigil.claims WHERE expires_at > now()`)
		require.NoError(t, err)
		owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, o := range owners {
			for i, p := range procs {
				if strings.Contains(o, fmt.Sprintf("-%d-", p.cmd.Process.Pid)) {
					victim, survivor = p, procs[1-i]
					return true
				}
			}
		}
		return false
	}, 20*time.Second, 5*time.Millisecond, "no gateway holds a claim")
	victimPid := victim.cmd.Process.Pid
	victim.stop(syscall.SIGKILL)
	killed := time.Now()
	// What was left to send at the kill, and when each was due.
	rows, err := db.Query(ctx, `SELECT id, (body->>'nextAttempt')::timestamptz FROM vigil.deliveries`)
	require.NoError(t, err)
	due := map[string]time.Time{}
	var (
		id string
		at time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error { due[id] = at; return nil })
	require.NoError(t, err)
	t.Logf("killed pid %d %s after the incident opened, %d deliveries left; receivers fail until +%s",
		victimPid, killed.Sub(opened).Round(time.Millisecond), len(due),
		time.Duration(hooks.failUntil.Load()-opened.UnixNano()).Round(time.Millisecond))
	survivorOwner := fmt.Sprintf("-%d-", survivor.cmd.Process.Pid)

	// Everything arrives: level 1, the rollback, level 2 at its deadline.
	arrived := func() bool {
		return hooks.acceptedOn("/l1") == 1 && hooks.acceptedOn("/rollback") == 1 && hooks.acceptedOn("/l2") == 1 &&
			count(`SELECT count(*) FROM vigil.deliveries`) == 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for !arrived() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.True(t, arrived(), "not every delivery arrived: %+v; left in the store: %d",
		hooks.snapshot(), count(`SELECT count(*) FROM vigil.deliveries`))
	// A little longer, for a late duplicate to show.
	time.Sleep(haLease)

	require.Equal(t, 1, count(`SELECT count(*) FROM vigil.incidents`), "one incident for the alert both gateways saw")
	got := hooks.snapshot()
	paths := map[string]int{}
	unavoidable := 0
	for id, d := range got {
		paths[d.path]++
		require.False(t, d.accepted.IsZero(), "delivery %s to %s never arrived", id, d.path)
		require.Zero(t, d.overlaps, "delivery %s to %s was sent by two gateways at once", id, d.path)
		if d.extra > 0 {
			// At least once: a gateway killed between the receiver's 2xx
			// and its commit leaves the delivery for the survivor, which
			// sends it again with the same webhook-id. Only then.
			require.True(t, !d.accepted.After(killed) && killed.Sub(d.accepted) < 500*time.Millisecond,
				"delivery %s to %s was sent %d more times after its 2xx at %s (kill at %s)",
				id, d.path, d.extra, d.accepted.Format(time.StampMilli), killed.Format(time.StampMilli))
			unavoidable++
		}
	}
	require.Equal(t, map[string]int{"/l1": 1, "/l2": 1, "/rollback": 1}, paths, "one delivery per receiver: %v", got)
	// Takeover: how long after the kill (or after it came due, if later)
	// each delivery left at the kill was attempted again, by the survivor.
	var takeover time.Duration
	for id, at := range due {
		d, ok := got[id]
		require.True(t, ok, "delivery %s left at the kill never arrived", id)
		from := killed
		if at.After(from) {
			from = at
		}
		i := slices.IndexFunc(d.times, func(t time.Time) bool { return !t.Before(killed) })
		if i < 0 {
			continue // answered 2xx before the kill; the record was committed
		}
		takeover = max(takeover, d.times[i].Sub(from))
	}
	require.LessOrEqual(t, takeover, 2*haLease, "the survivor took over after %s", takeover)
	t.Logf("takeover %s", takeover.Round(time.Millisecond))

	// The survivor tells which store it uses and who holds leases.
	resp, err := http.Get(survivor.url("/ready"))
	require.NoError(t, err)
	defer resp.Body.Close()
	var ready struct {
		Store struct {
			Kind   string `json:"kind"`
			Shared bool   `json:"shared"`
			Owner  string `json:"owner"`
			Peers  []struct {
				Owner string `json:"owner"`
				Self  bool   `json:"self"`
			} `json:"peers"`
		} `json:"store"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
	require.Equal(t, "postgres", ready.Store.Kind)
	require.True(t, ready.Store.Shared)
	require.Contains(t, ready.Store.Owner, survivorOwner)
	require.Len(t, ready.Store.Peers, 1, "the dead gateway's lease ended")
	require.True(t, ready.Store.Peers[0].Self)
	return takeover, unavoidable
}

// startHAPair starts two gateways on the database dsn, side by side, each
// with haConfig.
func startHAPair(t *testing.T, dsn string, app *gaugeApp, hooks *haHooks) [2]*vigilProc {
	t.Helper()
	var procs [2]*vigilProc
	var wg sync.WaitGroup
	for i := range procs {
		dir := t.TempDir()
		addr := freePort(t)
		cfg := writeConfig(t, dir, haConfig(dir, addr, dsn, app, hooks))
		wg.Go(func() { procs[i] = startVigil(t, cfg, addr) })
	}
	wg.Wait()
	require.NotNil(t, procs[0])
	require.NotNil(t, procs[1])
	return procs
}
