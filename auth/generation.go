package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/notifier"
)

// This file keeps two gateways that share one store in agreement on the
// runtime users and roles. The KV holds a generation under genKey that every
// change moves; a Directory reloads its entries when the value moved since
// it last loaded them. A change claims the generation by compare-and-swap
// from the value its state was loaded at, writes its entry, then releases
// the claim with the next generation: a change made on stale state (the
// other gateway changed something in between) loses the swap, reloads and
// is checked again, so two creates of one name give one user and one
// "exists already".

const (
	// genKey holds the generation: "<n>" when no change is under way,
	// "<n> claimed until <unix nanoseconds>" while one is.
	genKey = "generation"
	// RefreshInterval is how often, at most, the Directory reads the
	// generation on the authentication path (one KV Get, and a reload
	// while it is claimed): a token removed or a user deleted on the other
	// gateway stops working here within it.
	RefreshInterval = 2 * time.Second
	// claimTTL is how long a claim holds: a gateway that died between its
	// claim and its release blocks changes this long, then is overruled.
	claimTTL = 10 * time.Second
	// changeAttempts bounds a change's retries on conflicts and its waits
	// on another gateway's claim (claimWait each).
	changeAttempts = 20
	claimWait      = 50 * time.Millisecond
)

// errStale is why commit refuses a change made on state the other gateway
// moved past: change reloads and runs it again.
var errStale = errors.New("auth: runtime users changed on another gateway")

// generation is the parsed value of genKey.
type generation struct {
	n            int64
	claimedUntil time.Time // zero when not claimed
}

func parseGeneration(b []byte, found bool) (generation, error) {
	if !found {
		return generation{}, nil
	}
	num, until, claimed := strings.Cut(string(b), " claimed until ")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return generation{}, fmt.Errorf("auth: %s %q is not a generation", genKey, b)
	}
	g := generation{n: n}
	if claimed {
		ns, err := strconv.ParseInt(until, 10, 64)
		if err != nil {
			return generation{}, fmt.Errorf("auth: %s %q is not a generation", genKey, b)
		}
		g.claimedUntil = time.Unix(0, ns)
	}
	return g, nil
}

func (g generation) bytes() []byte {
	s := strconv.FormatInt(g.n, 10)
	if !g.claimedUntil.IsZero() {
		s += " claimed until " + strconv.FormatInt(g.claimedUntil.UnixNano(), 10)
	}
	return []byte(s)
}

// refresh reloads the runtime entries when RefreshInterval has passed
// since the last look and the generation moved. A store that cannot be
// read keeps the entries in force (logged): refusing everyone because the
// store is down would lock operators out while nothing can change either.
func (d *Directory) refresh() {
	now := d.now()
	if now.UnixNano()-d.checked.Load() < int64(RefreshInterval) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.UnixNano()-d.checked.Load() < int64(RefreshInterval) {
		return // another request looked meanwhile
	}
	if _, err := d.sync(); err != nil {
		d.logger.Error("Runtime users not reloaded; the ones loaded before stay in force", "err", err)
	}
	d.checked.Store(now.UnixNano())
}

// sync reloads the runtime entries when the generation moved since they
// were loaded, or is claimed, and returns the generation read; d.mu is
// held.
func (d *Directory) sync() (generation, error) {
	raw, found, err := d.kv.Get(genKey)
	if err != nil {
		return generation{}, fmt.Errorf("auth: reading the %s: %w", genKey, err)
	}
	g, err := parseGeneration(raw, found)
	if err != nil {
		return generation{}, err
	}
	// A claimed generation does not say whether the claimant's entry is
	// written yet, and a claimant that died never moves it again: while
	// it is claimed every look reloads.
	if found == d.loaded && bytes.Equal(raw, d.seen) && g.claimedUntil.IsZero() {
		return g, nil
	}
	set, err := loadSet(d.kv, d.logger)
	if err != nil {
		return generation{}, err
	}
	d.seen, d.loaded = raw, found
	d.install(set)
	return g, nil
}

// install makes set the runtime entries in force; d.mu is held. Before the
// first configuration there is no authenticator to build.
func (d *Directory) install(set runtimeSet) {
	res := resolve(d.cfg, set)
	if !d.applied {
		d.set, d.res = set, res
		return
	}
	a, err := build(d.cfg, res)
	if err != nil {
		// Runtime hashes are checked when written; only a hand-edited
		// store gets here. Keep what is in force.
		d.logger.Error("Runtime users from the store left out: they do not build", "err", err)
		return
	}
	d.set, d.res = set, res
	d.auth.Store(a)
}

// loadSet reads every runtime entry from kv. An entry that cannot be
// decoded is logged and left out.
func loadSet(kv KV, logger *slog.Logger) (runtimeSet, error) {
	set := runtimeSet{users: map[string]runtimeUser{}, roles: map[string]runtimeRole{}}
	users, err := kv.List(userKeyPrefix)
	if err != nil {
		return set, fmt.Errorf("auth: loading runtime users: %w", err)
	}
	for key, v := range users {
		var u runtimeUser
		if err := json.Unmarshal(v, &u); err != nil || u.Name != strings.TrimPrefix(key, userKeyPrefix) || !validName.MatchString(u.Name) {
			logger.Error("Ignoring a runtime user that cannot be read", "key", key, "err", err)
			continue
		}
		set.users[u.Name] = u
	}
	roles, err := kv.List(roleKeyPrefix)
	if err != nil {
		return set, fmt.Errorf("auth: loading runtime roles: %w", err)
	}
	for key, v := range roles {
		var r runtimeRole
		if err := json.Unmarshal(v, &r); err != nil || r.Name != strings.TrimPrefix(key, roleKeyPrefix) || !validName.MatchString(r.Name) {
			logger.Error("Ignoring a runtime role that cannot be read", "key", key, "err", err)
			continue
		}
		set.roles[r.Name] = r
	}
	return set, nil
}

// change runs fn, one change checked against d.set and ending in commit,
// on freshly loaded entries; d.mu is held. When another gateway changed
// something in between (commit's claim lost) or holds a claim, it reloads
// and runs fn again, a bounded number of times.
func (d *Directory) change(fn func() error) error {
	for range changeAttempts {
		g, err := d.sync()
		if err != nil {
			return err
		}
		if !g.claimedUntil.IsZero() {
			if d.now().Before(g.claimedUntil) {
				// Wait without d.mu, so that authentication goes on
				// meanwhile; the next round loads the state afresh.
				d.mu.Unlock()
				d.sleep(claimWait)
				d.mu.Lock()
				continue
			}
			// The claimant died between claim and release: overrule it.
			d.logger.Warn("Overruling a stale claim on the runtime users", "generation", g.n)
			if _, err := notifier.Swap(d.kv, genKey, d.seen, generation{n: g.n + 1}.bytes()); err != nil {
				return fmt.Errorf("auth: writing the %s: %w", genKey, err)
			}
			continue
		}
		d.gen = g
		err = fn()
		if !errors.Is(err, errStale) {
			return err
		}
	}
	return conflictf("users and roles are being changed on another gateway at the same time; try again")
}

// writeEntry writes the changed entry (value nil deletes it) under a claim
// of the generation the state was loaded at, and releases the claim with
// the next generation. It returns errStale, having written nothing, when
// the generation moved; d.mu is held.
func (d *Directory) writeEntry(key string, value any) error {
	var b []byte
	if value != nil {
		var err error
		if b, err = json.Marshal(value); err != nil {
			return fmt.Errorf("auth: encoding %s: %w", key, err)
		}
	}
	var old []byte
	if d.loaded {
		old = d.seen
	}
	claim := generation{n: d.gen.n + 1, claimedUntil: d.now().Add(claimTTL)}.bytes()
	ok, err := notifier.Swap(d.kv, genKey, old, claim)
	if err != nil {
		return fmt.Errorf("auth: claiming the %s: %w", genKey, err)
	}
	if !ok {
		return errStale
	}
	// From here the claim is ours; release it whatever the write does, so
	// that the other gateway does not wait for claimTTL.
	if value == nil {
		err = d.kv.Delete(key)
	} else {
		err = d.kv.Put(key, b)
	}
	if err != nil {
		err = fmt.Errorf("auth: writing %s: %w", key, err)
	}
	next := generation{n: d.gen.n + 2}.bytes()
	released, rerr := notifier.Swap(d.kv, genKey, claim, next)
	switch {
	case rerr != nil:
		d.logger.Error("Claim on the runtime users not released; the other gateway waits until it expires", "err", rerr)
	case !released:
		d.logger.Warn("Claim on the runtime users was overruled before its release (a change took longer than the claim)")
		// The write may have landed after the gateway that overruled
		// reloaded: move the generation again so that every gateway
		// reloads what the store holds now.
		if berr := d.bump(); berr != nil {
			d.logger.Error("Generation of the runtime users not moved after a late write", "err", berr)
		}
	case err == nil:
		// The state commit swaps in is what the store holds now. After a
		// failed write d.seen stays behind, and the next look reloads.
		d.seen, d.loaded = next, true
	}
	return err
}

// bump moves the generation on. A claim stays, with the new number: its
// claimant's release then fails and bumps in turn, so that it too reloads
// rather than keep state made before the late write; d.mu is held.
func (d *Directory) bump() error {
	for range changeAttempts {
		raw, found, err := d.kv.Get(genKey)
		if err != nil {
			return err
		}
		g, err := parseGeneration(raw, found)
		if err != nil {
			return err
		}
		if !found {
			raw = nil
		}
		g.n++
		ok, err := notifier.Swap(d.kv, genKey, raw, g.bytes())
		if err != nil || ok {
			return err
		}
	}
	return errors.New("auth: the generation is still contended")
}
