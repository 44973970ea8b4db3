package rollback

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// Deploy sources counted in vigil_deploys_recorded_total.
const (
	sourceAPI       = "api"
	sourceBuildInfo = "build_info"
)

// KV key prefixes. Service and environment are path-escaped so that a "/" in
// them cannot collide with another pair.
const (
	keyDeploy   = "deploy/"    // deploy/<seq, 20 digits> → Deploy
	keyLast     = "last/"      // last/<service>/<env> → Deploy, survives trimming
	keySeen     = "seen/"      // seen/<service>/<env> → version last seen in *_build_info
	keyCooldown = "cooldown/"  // cooldown/<service>/<env> → "<time> <delivery id>" of the last rollback
	keyIncident = "incident/"  // incident/<id> → RollbackRecord
	keyManual   = "manual/"    // manual/<unix ns, 20 digits>/<delivery id> → ManualRollback
	keyAnalysis = "analysis/"  // analysis/<deploy id> → figures of a failed analysis
	keySeq      = "seq/deploy" // → last sequence number given to a deploy
)

func pairKey(prefix, service, env string) string {
	return prefix + url.PathEscape(service) + "/" + url.PathEscape(env)
}

// Deploy is one version of a service going out to an environment.
type Deploy struct {
	// ID names the deploy in the API (/api/v1/deploys/:id/analysis); it is
	// given when the deploy is recorded.
	ID              string    `json:"id,omitempty"`
	Service         string    `json:"service"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previous_version,omitempty"`
	Environment     string    `json:"environment"`
	At              time.Time `json:"at"`
	By              string    `json:"by,omitempty"`
	// Strategy is canary, blue-green or rolling; a deploy with one is
	// judged by deploy analysis (analysis/). Empty is no analysis.
	Strategy string `json:"strategy,omitempty"`
}

// UnmarshalJSON accepts "time" as well as "at", as the issue writes the
// deploy API's fields.
func (d *Deploy) UnmarshalJSON(b []byte) error {
	type plain Deploy
	var v struct {
		plain
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*d = Deploy(v.plain)
	if d.At.IsZero() {
		d.At = v.Time
	}
	return nil
}

// RecordDeploy stores a deploy. Service and Environment default to the
// configured ones, At to now; PreviousVersion is filled from the last deploy
// of the same service and environment when empty (a redeploy of the same
// version keeps that deploy's previous version). Only the newest deploys are
// kept (Options.KeepDeploys).
func (m *Manager) RecordDeploy(d Deploy) (Deploy, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return m.recordDeploy(d, sourceAPI)
}

// recordDeploy needs m.mtx held.
func (m *Manager) recordDeploy(d Deploy, source string) (Deploy, error) {
	d.Version = strings.TrimSpace(d.Version)
	if d.Version == "" {
		return Deploy{}, errors.New("deploy: version is required")
	}
	if d.Service == "" {
		d.Service = m.cfg.service
	}
	if d.Environment == "" {
		d.Environment = m.cfg.environment
	}
	if d.Strategy == "" && source == sourceBuildInfo {
		d.Strategy = m.cfg.strategy
	}
	if err := CheckStrategy(d.Strategy); err != nil {
		return Deploy{}, err
	}
	if d.At.IsZero() {
		d.At = m.now()
	}
	d.At = d.At.UTC()
	// Another gateway sharing the store may record a deploy of the same
	// service at the same time: the last deploy is swapped from the one
	// this read, and when that fails, read again and placed again.
	for range notifier.ModifyAttempts {
		out, done, err := m.placeDeploy(d)
		if err != nil {
			return Deploy{}, err
		}
		if done {
			m.deploys.WithLabelValues(source).Inc()
			m.logger.Info("deploy recorded", "service", out.Service, "environment", out.Environment,
				"version", out.Version, "previous_version", out.PreviousVersion, "by", out.By, "source", source)
			return out, nil
		}
	}
	return Deploy{}, fmt.Errorf("deploy: the last deploy of %q in %q is still contended after %d tries", d.Service, d.Environment, notifier.ModifyAttempts)
}

// placeDeploy puts d into the history after the deploys of its service and
// environment that are older, and makes it the last deploy when it is the
// newest. It reports false, having written nothing, when the last deploy
// changed since it read it.
func (m *Manager) placeDeploy(d Deploy) (Deploy, bool, error) {
	lastKey := pairKey(keyLast, d.Service, d.Environment)
	lastRaw, ok, err := m.kv.Get(lastKey)
	if err != nil {
		return Deploy{}, false, fmt.Errorf("deploy: reading last deploy: %w", err)
	}
	var last Deploy
	if ok {
		if err := json.Unmarshal(lastRaw, &last); err != nil {
			return Deploy{}, false, fmt.Errorf("deploy: decoding last deploy: %w", err)
		}
	} else {
		lastRaw = nil
	}
	all, err := m.kv.List(keyDeploy)
	if err != nil {
		return Deploy{}, false, fmt.Errorf("deploy: listing deploys: %w", err)
	}
	hist, err := decodeDeploys(all)
	if err != nil {
		return Deploy{}, false, err
	}
	// The last deploy follows deploy time, not arrival: a deploy recorded
	// late with an earlier time (a backfill, a CI job that retried) goes
	// into the history where its time puts it and changes nothing newer.
	backdated := ok && d.At.Before(last.At)
	var before, after *storedDeploy
	if backdated {
		before, after = neighbours(hist, d)
	} else if ok {
		before = &storedDeploy{Deploy: last}
	}
	if before != nil && d.PreviousVersion == "" {
		d.PreviousVersion = before.Version
		if before.Version == d.Version {
			d.PreviousVersion = before.PreviousVersion
		}
	}
	seq, err := m.nextSeq(hist)
	if err != nil {
		return Deploy{}, false, err
	}
	d.ID = strconv.FormatUint(seq, 10)
	b, err := json.Marshal(d)
	if err != nil {
		return Deploy{}, false, fmt.Errorf("deploy: encoding: %w", err)
	}
	if !backdated {
		swapped, err := notifier.Swap(m.kv, lastKey, lastRaw, b)
		if err != nil {
			return Deploy{}, false, fmt.Errorf("deploy: storing last deploy: %w", err)
		}
		if !swapped {
			return Deploy{}, false, nil
		}
	}
	key := fmt.Sprintf("%s%020d", keyDeploy, seq)
	if err := m.kv.Put(key, b); err != nil {
		return Deploy{}, false, fmt.Errorf("deploy: storing: %w", err)
	}
	if backdated {
		if err := m.relink(after, before, d, last, all, lastRaw); err != nil {
			return Deploy{}, false, err
		}
	}
	// Trim the oldest by deploy time, which may be the one just added.
	hist = append(hist, storedDeploy{Deploy: d, key: key, seq: seq})
	slices.SortStableFunc(hist, func(a, b storedDeploy) int { return a.At.Compare(b.At) })
	for len(hist) > m.keep {
		if err := m.kv.Delete(hist[0].key); err != nil {
			return Deploy{}, false, fmt.Errorf("deploy: trimming old deploys: %w", err)
		}
		hist = hist[1:]
	}
	return d, true, nil
}

// nextSeq numbers a deploy: from a counter every gateway sharing the store
// increments, so that no two deploys get one number, and above every kept
// deploy (those of versions that numbered from the history).
func (m *Manager) nextSeq(hist []storedDeploy) (uint64, error) {
	var top int64
	if len(hist) > 0 {
		top = int64(hist[len(hist)-1].seq)
	}
	n, err := notifier.Incr(m.kv, keySeq, 1)
	if err == nil && n <= top {
		n, err = notifier.Incr(m.kv, keySeq, top-n+1)
	}
	if err != nil {
		return 0, fmt.Errorf("deploy: numbering: %w", err)
	}
	return uint64(n), nil
}

// ErrBadStrategy is returned for a deploy whose strategy is not one of
// config.Strategies.
var ErrBadStrategy = errors.New("strategy must be one of " + strings.Join(config.Strategies, ", "))

// CheckStrategy returns ErrBadStrategy (wrapped) unless s is empty or a
// known strategy.
func CheckStrategy(s string) error {
	if s == "" || slices.Contains(config.Strategies, s) {
		return nil
	}
	return fmt.Errorf("deploy: strategy %q: %w", s, ErrBadStrategy)
}

// Deploy returns the kept deploy with the given ID.
func (m *Manager) Deploy(id string) (Deploy, bool, error) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return Deploy{}, false, nil
	}
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return m.deployByID(n)
}

// deployByID needs m.mtx held.
func (m *Manager) deployByID(n uint64) (Deploy, bool, error) {
	b, ok, err := m.kv.Get(fmt.Sprintf("%s%020d", keyDeploy, n))
	if err != nil || !ok {
		return Deploy{}, false, err
	}
	var d Deploy
	if err := json.Unmarshal(b, &d); err != nil {
		return Deploy{}, false, fmt.Errorf("deploy %d: decoding: %w", n, err)
	}
	d.ID = strconv.FormatUint(n, 10)
	return d, true, nil
}

// LastDeploy returns the newest deploy of the configured service and
// environment.
func (m *Manager) LastDeploy() (Deploy, bool, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return m.lastDeploy(m.cfg.service, m.cfg.environment)
}

// lastDeploy returns the newest deploy of service in env.
func (m *Manager) lastDeploy(service, env string) (Deploy, bool, error) {
	b, ok, err := m.kv.Get(pairKey(keyLast, service, env))
	if err != nil {
		return Deploy{}, false, fmt.Errorf("deploy: reading last deploy: %w", err)
	}
	if !ok {
		return Deploy{}, false, nil
	}
	var d Deploy
	if err := json.Unmarshal(b, &d); err != nil {
		return Deploy{}, false, fmt.Errorf("deploy: decoding last deploy: %w", err)
	}
	return d, true, nil
}

// Deploys returns up to limit deploys, newest deploy time first (the order
// of arrival among equal times, latest first); all kept ones when limit is
// not positive.
func (m *Manager) Deploys(limit int) ([]Deploy, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	all, err := m.kv.List(keyDeploy)
	if err != nil {
		return nil, fmt.Errorf("deploys: listing: %w", err)
	}
	hist, err := decodeDeploys(all)
	if err != nil {
		return nil, fmt.Errorf("deploys: %w", err)
	}
	slices.SortStableFunc(hist, func(a, b storedDeploy) int { return b.At.Compare(a.At) })
	if limit > 0 && len(hist) > limit {
		hist = hist[:limit]
	}
	out := make([]Deploy, len(hist))
	for i, h := range hist {
		out[i] = h.Deploy
	}
	return out, nil
}

// storedDeploy is a deploy with its KV key and sequence number.
type storedDeploy struct {
	Deploy
	key string
	seq uint64
}

// decodeDeploys returns the stored deploys in order of arrival.
func decodeDeploys(all map[string][]byte) ([]storedDeploy, error) {
	out := make([]storedDeploy, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		n, err := strconv.ParseUint(strings.TrimPrefix(k, keyDeploy), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("deploy: bad key %q: %w", k, err)
		}
		var d Deploy
		if err := json.Unmarshal(all[k], &d); err != nil {
			return nil, fmt.Errorf("deploy: decoding %s: %w", k, err)
		}
		if d.ID == "" {
			// Recorded before deploys had IDs: the key's number is it.
			d.ID = strconv.FormatUint(n, 10)
		}
		out = append(out, storedDeploy{Deploy: d, key: k, seq: n})
	}
	return out, nil
}

// neighbours returns the deploys of d's service and environment just before
// d (the latest at or before its time) and just after it (the earliest
// later one); nil when there is none.
func neighbours(hist []storedDeploy, d Deploy) (before, after *storedDeploy) {
	for i := range hist {
		h := &hist[i]
		if h.Service != d.Service || h.Environment != d.Environment {
			continue
		}
		if !h.At.After(d.At) {
			if before == nil || !h.At.Before(before.At) {
				before = h
			}
		} else if after == nil || h.At.Before(after.At) {
			after = h
		}
	}
	return before, after
}

// relink makes the deploy that follows a backdated one d name d as its
// previous version, when it named what came before d (or nothing): it
// followed d, not d's predecessor. A previous version given by hand stays.
// The last deploy's record is rewritten when it is that deploy. Both are
// swapped from the values read (all, lastRaw): a record another gateway
// rewrote in between is left as it wrote it.
func (m *Manager) relink(after, before *storedDeploy, d, last Deploy, all map[string][]byte, lastRaw []byte) error {
	if after == nil || after.Version == d.Version {
		return nil
	}
	was := ""
	if before != nil {
		was = before.Version
	}
	if after.PreviousVersion != "" && after.PreviousVersion != was {
		return nil
	}
	oldPrev := after.PreviousVersion
	after.PreviousVersion = d.Version
	b, err := json.Marshal(after.Deploy)
	if err != nil {
		return fmt.Errorf("deploy: encoding: %w", err)
	}
	if swapped, err := notifier.Swap(m.kv, after.key, all[after.key], b); err != nil {
		return fmt.Errorf("deploy: storing: %w", err)
	} else if !swapped {
		return nil
	}
	if last.Version == after.Version && last.At.Equal(after.At) && last.PreviousVersion == oldPrev {
		if _, err := notifier.Swap(m.kv, pairKey(keyLast, d.Service, d.Environment), lastRaw, b); err != nil {
			return fmt.Errorf("deploy: storing last deploy: %w", err)
		}
	}
	return nil
}

// ObserveBuildInfo takes the version label of the app's *_build_info metric,
// as last scraped. The first version seen for a service and environment is
// only remembered; a change records a deploy by "build_info" and returns it. A version already
// recorded as the last deploy (through the API) is not recorded twice. Service
// and environment default to the configured ones; an empty version is
// ignored. During a rolling deploy across several targets, call it with one
// target's version (the newest), or the versions will flap.
func (m *Manager) ObserveBuildInfo(service, environment, version string) (*Deploy, error) {
	version = strings.TrimSpace(version)
	if version == "" {
		return nil, nil
	}
	m.mtx.Lock()
	defer m.mtx.Unlock()
	if service == "" {
		service = m.cfg.service
	}
	if environment == "" {
		environment = m.cfg.environment
	}
	seenKey := pairKey(keySeen, service, environment)
	b, seen, err := m.kv.Get(seenKey)
	if err != nil {
		return nil, fmt.Errorf("build info: reading last seen version: %w", err)
	}
	if string(b) == version && seen {
		return nil, nil
	}
	if !seen {
		b = nil
	}
	// Both gateways of a pair scrape the app and see it change at once:
	// the one that swaps the seen version records the deploy.
	swapped, err := notifier.Swap(m.kv, seenKey, b, []byte(version))
	if err != nil {
		return nil, fmt.Errorf("build info: storing version: %w", err)
	}
	if !swapped || !seen {
		return nil, nil
	}
	last, haveDeploy, err := m.lastDeploy(service, environment)
	if err != nil {
		return nil, m.unsee(seenKey, version, b, err)
	}
	if haveDeploy && last.Version == version {
		return nil, nil
	}
	d, err := m.recordDeploy(Deploy{
		Service: service, Environment: environment, Version: version,
		// What ran before is the version seen before, on record or not.
		PreviousVersion: string(b), By: sourceBuildInfo,
	}, sourceBuildInfo)
	if err != nil {
		return nil, m.unsee(seenKey, version, b, err)
	}
	return &d, nil
}

// unsee puts the seen version back from version to prev after err kept the
// change from being recorded, so that the next scrape (here or on the other
// gateway) records it rather than find it seen.
func (m *Manager) unsee(seenKey, version string, prev []byte, err error) error {
	if _, rerr := notifier.Swap(m.kv, seenKey, []byte(version), prev); rerr != nil {
		return errors.Join(err, fmt.Errorf("build info: restoring the seen version: %w", rerr))
	}
	return err
}
