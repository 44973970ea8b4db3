package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// deadClaimKV is gateway A's view of the shared KV when A dies between its
// claim of the generation and its release: armed, it runs beforeWrite
// before A's entry write and fails every swap from a claimed generation
// (the release).
type deadClaimKV struct {
	notifier.AtomicKV
	armed       atomic.Bool
	beforeWrite func()
}

func (kv *deadClaimKV) hook() {
	if kv.armed.Load() && kv.beforeWrite != nil {
		kv.beforeWrite()
	}
}

func (kv *deadClaimKV) Put(key string, value []byte) error {
	kv.hook()
	return kv.AtomicKV.Put(key, value)
}

func (kv *deadClaimKV) Delete(key string) error {
	kv.hook()
	return kv.AtomicKV.Delete(key)
}

func (kv *deadClaimKV) CompareAndSwap(key string, old, value []byte) (bool, error) {
	if kv.armed.Load() && bytes.Contains(old, []byte("claimed")) {
		return false, errors.New("gateway died")
	}
	return kv.AtomicKV.CompareAndSwap(key, old, value)
}

// deadClaimPair returns gateway A on a deadClaimKV and gateway B on the
// shared KV behind it, and a runtime user "ci" with tok made on A and seen
// on B.
func deadClaimPair(t *testing.T, clock *fakeClock) (a, b *auth.Directory, akv *deadClaimKV, tok token) {
	t.Helper()
	admin := newToken(t)
	tok = newToken(t)
	cfg := cfgWith(t, config.EnvProduction, fmt.Sprintf("  - {name: alice, role: admin, tokens: [%q]}\n", admin.hash), "")
	shared := notifier.NewMemKV()
	akv = &deadClaimKV{AtomicKV: shared}
	var err error
	a, err = auth.NewDirectory(akv, nil)
	require.NoError(t, err)
	b, err = auth.NewDirectory(shared, nil)
	require.NoError(t, err)
	for _, d := range []*auth.Directory{a, b} {
		d.SetClock(clock.now)
		require.NoError(t, d.ApplyConfig(cfg))
	}
	_, err = a.CreateUser("alice", auth.UserSpec{Name: "ci", Roles: []string{"viewer"}, Tokens: []string{tok.hash}})
	require.NoError(t, err)
	clock.add(auth.RefreshInterval)
	require.Equal(t, "ci", whoIs(b, tok.plain))
	return a, b, akv, tok
}

// TestHADeletedUserRefusedWhenClaimNotReleased: B looks at the generation
// between A's claim and A's delete of a user, and A never releases the
// claim (it died, or the store refused the release). The generation B saw
// no longer moves, yet the user is gone from the store: B must refuse its
// token within RefreshInterval, not keep it until someone's next change.
func TestHADeletedUserRefusedWhenClaimNotReleased(t *testing.T) {
	clock := newFakeClock()
	a, b, akv, tok := deadClaimPair(t, clock)
	akv.beforeWrite = func() {
		clock.add(auth.RefreshInterval)
		require.Equal(t, "ci", whoIs(b, tok.plain), "B looks during A's claim, before the delete")
	}
	akv.armed.Store(true)
	_, _ = a.DeleteUser("alice", "ci")
	for range 3 {
		clock.add(auth.RefreshInterval)
		require.Equal(t, "", whoIs(b, tok.plain), "a user deleted on A is refused on B")
	}
}

// TestHADeadClaimTakenOver: a claim A never released holds B's changes off
// for the claim's 10 s, no longer; then B overrules it and changes go on
// on both gateways.
func TestHADeadClaimTakenOver(t *testing.T) {
	clock := newFakeClock()
	a, b, akv, tok := deadClaimPair(t, clock)
	akv.armed.Store(true)
	_, _ = a.DeleteUser("alice", "ci")
	akv.armed.Store(false)

	_, err := b.CreateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"viewer"}})
	require.ErrorIs(t, err, auth.ErrConflict, "A's claim holds")
	clock.add(10 * time.Second)
	_, err = b.CreateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"viewer"}})
	require.NoError(t, err, "A's claim is overruled once expired")
	_, err = b.User("ci")
	require.ErrorIs(t, err, auth.ErrNotFound)
	require.Equal(t, "", whoIs(b, tok.plain))

	_, err = a.CreateUser("alice", auth.UserSpec{Name: "dev", Roles: []string{"viewer"}})
	require.NoError(t, err, "A changes again after B's takeover")
	_, err = a.User("ops")
	require.NoError(t, err, "A reloaded B's change")
	clock.add(auth.RefreshInterval)
	_, err = b.User("dev")
	require.NoError(t, err)
}

// TestHALateWriteAfterTakeoverSeen: A's delete of a user is so slow that
// its claim expires and B overrules it and changes something itself before
// A's delete lands. A's release then fails; the generation must still move
// after A's write, or B keeps the deleted user's token working.
func TestHALateWriteAfterTakeoverSeen(t *testing.T) {
	clock := newFakeClock()
	a, b, akv, tok := deadClaimPair(t, clock)
	akv.beforeWrite = func() {
		akv.armed.Store(false) // A's own release is not refused: it fails because B moved on
		clock.add(10 * time.Second)
		_, err := b.CreateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"viewer"}})
		require.NoError(t, err, "B overrules A's expired claim")
		require.Equal(t, "ci", whoIs(b, tok.plain))
	}
	akv.armed.Store(true)
	_, err := a.DeleteUser("alice", "ci")
	require.NoError(t, err, "the delete is written")
	clock.add(auth.RefreshInterval)
	require.Equal(t, "", whoIs(b, tok.plain), "a user deleted on A is refused on B")
	require.Equal(t, "", whoIs(a, tok.plain))
	_, err = a.User("ops")
	require.NoError(t, err, "A reloaded B's change")
}

// TestHAAuthenticationNotHeldByClaimWait: while a change on B waits for
// A's claim to be released or to expire, B still authenticates, and sees
// A's changes: the wait does not hold the Directory.
func TestHAAuthenticationNotHeldByClaimWait(t *testing.T) {
	clock := newFakeClock()
	a, b, akv, tok := deadClaimPair(t, clock)
	akv.armed.Store(true)
	_, _ = a.DeleteUser("alice", "ci")
	akv.armed.Store(false)

	sleeping, release := make(chan struct{}, 1), make(chan struct{})
	auth.SetSleep(b, func(time.Duration) {
		select {
		case sleeping <- struct{}{}:
		default:
		}
		<-release
	})
	done := make(chan error, 1)
	go func() {
		_, err := b.CreateUser("alice", auth.UserSpec{Name: "ops", Roles: []string{"viewer"}})
		done <- err
	}()
	<-sleeping
	clock.add(auth.RefreshInterval)
	who := make(chan string, 1)
	go func() { who <- whoIs(b, tok.plain) }()
	select {
	case w := <-who:
		require.Equal(t, "", w, "the user A deleted is refused")
	case <-time.After(10 * time.Second): // a bound on a deadlock, not a measure
		close(release)
		t.Fatal("authentication waited for a change waiting on a claim")
	}
	close(release)
	require.ErrorIs(t, <-done, auth.ErrConflict)
}
