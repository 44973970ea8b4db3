package auth_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// haPair returns two Directories, gateways A and B, on the same "auth"
// space of shared PostgreSQL stores, with cfg applied and one clock.
func haPair(t *testing.T, cfg *config.Config, clock *fakeClock) (a, b *auth.Directory) {
	t.Helper()
	stores := storetest.SharedPostgres(t, 2)
	var dirs [2]*auth.Directory
	for i, s := range stores {
		d, err := auth.NewDirectory(s.KV("auth"), nil)
		require.NoError(t, err)
		d.SetClock(clock.now)
		require.NoError(t, d.ApplyConfig(cfg))
		dirs[i] = d
	}
	return dirs[0], dirs[1]
}

func TestHARevokedTokenRefusedOnOtherGateway(t *testing.T) {
	admin, ci, ci2 := newToken(t), newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	clock := newFakeClock()
	a, b := haPair(t, cfg, clock)

	_, err := a.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"viewer"}, Tokens: []string{ci.hash, ci2.hash}})
	require.NoError(t, err)
	require.Equal(t, "ci", whoIs(a, ci.plain))
	clock.add(auth.RefreshInterval)
	require.Equal(t, "ci", whoIs(b, ci.plain), "B sees a user created on A after one refresh interval")
	u, err := b.User("ci")
	require.NoError(t, err)
	require.Equal(t, 2, u.Tokens)

	// A revokes one token: B refuses it once the interval has passed.
	_, err = a.UpdateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"viewer"}, Tokens: []string{ci2.hash}})
	require.NoError(t, err)
	require.Equal(t, "", whoIs(a, ci.plain))
	clock.add(auth.RefreshInterval)
	require.Equal(t, "", whoIs(b, ci.plain), "a token revoked on A is refused on B")
	require.Equal(t, "ci", whoIs(b, ci2.plain))

	// A deletes the user: its last token stops working on B too.
	_, err = a.DeleteUser("alice", "ci")
	require.NoError(t, err)
	clock.add(auth.RefreshInterval)
	require.Equal(t, "", whoIs(b, ci2.plain), "a user deleted on A is refused on B")
	_, err = b.User("ci")
	require.ErrorIs(t, err, auth.ErrNotFound)

	// B's changes are checked against what A wrote, even within the
	// interval: B creates the name A just created and is told it exists.
	_, err = a.CreateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"viewer"}})
	require.NoError(t, err)
	_, err = b.CreateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"admin"}, Tokens: []string{ci.hash}})
	require.ErrorIs(t, err, auth.ErrConflict)
	require.Contains(t, err.Error(), "exists already")
	// Nor may B give a token A gave to someone else.
	_, err = a.UpdateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"viewer"}, Tokens: []string{ci.hash}})
	require.NoError(t, err)
	_, err = b.CreateUser("alice", auth.UserSpec{Name: "other", Roles: []string{"viewer"}, Tokens: []string{ci.hash}})
	require.ErrorIs(t, err, auth.ErrConflict)
	require.Contains(t, err.Error(), "belongs to another user")
	require.Equal(t, "ops", whoIs(b, ci.plain))
}

// TestHAStaleChangeLosesTheClaim lets gateway B create a user between A's
// read of the store and A's write of the same name: A must not overwrite
// B's user, and answers "exists already".
func TestHAStaleChangeLosesTheClaim(t *testing.T) {
	admin, tokA, tokB := newToken(t), newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	shared := notifier.NewMemKV()
	b, err := auth.NewDirectory(shared, nil)
	require.NoError(t, err)
	require.NoError(t, b.ApplyConfig(cfg))

	var armed atomic.Bool
	ikv := &storetest.InterleaveKV{
		AtomicKV: shared,
		Match:    func(op, key string) bool { return armed.Load() && op == "list" && key == "user/" },
		Between: func() {
			_, err := b.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"viewer"}, Tokens: []string{tokB.hash}})
			require.NoError(t, err)
		},
	}
	a, err := auth.NewDirectory(ikv, nil)
	require.NoError(t, err)
	require.NoError(t, a.ApplyConfig(cfg))
	// A's next look at the store reloads (the generation moves under it
	// from a change of its own on another name) and B writes in between.
	_, err = b.CreateRole("alice", auth.RoleSpec{Name: "deployer", Permissions: []string{config.PermDeploy}})
	require.NoError(t, err)
	armed.Store(true)

	_, err = a.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"admin"}, Tokens: []string{tokA.hash}})
	require.ErrorIs(t, err, auth.ErrConflict)
	require.Contains(t, err.Error(), "exists already")
	require.Equal(t, "ci", whoIs(a, tokB.plain), "A reloaded B's user")
	require.Equal(t, "", whoIs(a, tokA.plain))
	u, err := a.User("ci")
	require.NoError(t, err)
	require.Equal(t, []string{"viewer"}, u.Roles, "B's user is left as B wrote it")
}

// TestHAConcurrentCreatesOneWins creates one name on both gateways at once,
// many times over: each time exactly one succeeds and the other is told
// the user exists.
func TestHAConcurrentCreatesOneWins(t *testing.T) {
	admin := newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	a, b := haPair(t, cfg, newFakeClock())
	for i := range 10 {
		name := fmt.Sprintf("user%d", i)
		toks := []token{newToken(t), newToken(t)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, d := range []*auth.Directory{a, b} {
			wg.Go(func() {
				_, errs[j] = d.CreateUser("alice", auth.UserSpec{Name: name, Roles: []string{"viewer"}, Tokens: []string{toks[j].hash}})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.True(t, errors.Is(err, auth.ErrConflict) && strings.Contains(err.Error(), "exists already"), "%s: %v", name, err)
		}
		require.Equal(t, 1, won, "%s: %v", name, errs)
		// Both gateways agree on whose token the user has.
		winner := 0
		if errs[0] != nil {
			winner = 1
		}
		for _, d := range []*auth.Directory{a, b} {
			_, err := d.CreateRole("alice", auth.RoleSpec{Name: "r" + name + fmt.Sprint(d == a)})
			require.NoError(t, err, "a change reloads")
			require.Equal(t, name, whoIs(d, toks[winner].plain))
			require.Equal(t, "", whoIs(d, toks[1-winner].plain))
		}
	}
}

// TestHALastManagerKeptAcrossGateways: A deletes one of two runtime
// managers while B deletes the other in between A's read and A's write.
// Checked against what it read, each delete leaves a manager; checked
// against the store under the generation's claim, A's is refused.
func TestHALastManagerKeptAcrossGateways(t *testing.T) {
	viewer, m1, m2 := newToken(t), newToken(t), newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: vic, role: viewer, tokens: [%q]}\n", viewer.hash), "")
	shared := notifier.NewMemKV()
	b, err := auth.NewDirectory(shared, nil)
	require.NoError(t, err)
	require.NoError(t, b.ApplyConfig(cfg))
	for _, u := range []struct {
		name string
		tok  token
	}{{"m1", m1}, {"m2", m2}} {
		_, err := b.CreateUser("vic", auth.UserSpec{Name: u.name, Roles: []string{"admin"}, Tokens: []string{u.tok.hash}})
		require.NoError(t, err)
	}
	var armed atomic.Bool
	a, err := auth.NewDirectory(&storetest.InterleaveKV{
		AtomicKV: shared,
		Match:    func(op, key string) bool { return armed.Load() && op == "list" && key == "user/" },
		Between: func() {
			_, err := b.DeleteUser("m1", "m2")
			require.NoError(t, err)
		},
	}, nil)
	require.NoError(t, err)
	require.NoError(t, a.ApplyConfig(cfg))
	// A's state is current; B's next change moves the generation, so A's
	// delete reloads first, and B deletes m2 right after that read.
	_, err = b.CreateRole("m1", auth.RoleSpec{Name: "spare"})
	require.NoError(t, err)
	armed.Store(true)
	_, err = a.DeleteUser("m2", "m1")
	require.ErrorIs(t, err, auth.ErrConflict)
	require.Contains(t, err.Error(), "no one could manage users")
	require.Equal(t, "m1", whoIs(a, m1.plain), "m1 is kept")
	require.Equal(t, "", whoIs(a, m2.plain))
}
