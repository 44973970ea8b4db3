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
)

// Deploy sources counted in vigil_deploys_recorded_total.
const (
	sourceAPI       = "api"
	sourceBuildInfo = "build_info"
)

// KV key prefixes. Service and environment are path-escaped so that a "/" in
// them cannot collide with another pair.
const (
	keyDeploy   = "deploy/"   // deploy/<seq, 20 digits> → Deploy
	keyLast     = "last/"     // last/<service>/<env> → Deploy, survives trimming
	keySeen     = "seen/"     // seen/<service>/<env> → version last seen in *_build_info
	keyCooldown = "cooldown/" // cooldown/<service>/<env> → time of the last rollback
	keyIncident = "incident/" // incident/<id> → RollbackRecord
	keyManual   = "manual/"   // manual/<unix ns, 20 digits> → ManualRollback
)

func pairKey(prefix, service, env string) string {
	return prefix + url.PathEscape(service) + "/" + url.PathEscape(env)
}

// Deploy is one version of a service going out to an environment.
type Deploy struct {
	Service         string    `json:"service"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previous_version,omitempty"`
	Environment     string    `json:"environment"`
	At              time.Time `json:"at"`
	By              string    `json:"by,omitempty"`
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
	if d.At.IsZero() {
		d.At = m.now()
	}
	d.At = d.At.UTC()
	last, ok, err := m.lastDeploy(d.Service, d.Environment)
	if err != nil {
		return Deploy{}, err
	}
	if ok && d.PreviousVersion == "" {
		d.PreviousVersion = last.Version
		if last.Version == d.Version {
			d.PreviousVersion = last.PreviousVersion
		}
	}
	all, err := m.kv.List(keyDeploy)
	if err != nil {
		return Deploy{}, fmt.Errorf("deploy: listing deploys: %w", err)
	}
	keys := slices.Sorted(maps.Keys(all))
	var seq uint64
	if len(keys) > 0 {
		n, err := strconv.ParseUint(strings.TrimPrefix(keys[len(keys)-1], keyDeploy), 10, 64)
		if err != nil {
			return Deploy{}, fmt.Errorf("deploy: bad key %q: %w", keys[len(keys)-1], err)
		}
		seq = n
	}
	b, err := json.Marshal(d)
	if err != nil {
		return Deploy{}, fmt.Errorf("deploy: encoding: %w", err)
	}
	if err := m.kv.Put(fmt.Sprintf("%s%020d", keyDeploy, seq+1), b); err != nil {
		return Deploy{}, fmt.Errorf("deploy: storing: %w", err)
	}
	if err := m.kv.Put(pairKey(keyLast, d.Service, d.Environment), b); err != nil {
		return Deploy{}, fmt.Errorf("deploy: storing last deploy: %w", err)
	}
	// keys does not hold the one just added: keep m.keep-1 of them.
	for len(keys) > m.keep-1 {
		if err := m.kv.Delete(keys[0]); err != nil {
			return Deploy{}, fmt.Errorf("deploy: trimming old deploys: %w", err)
		}
		keys = keys[1:]
	}
	m.deploys.WithLabelValues(source).Inc()
	m.logger.Info("deploy recorded", "service", d.Service, "environment", d.Environment,
		"version", d.Version, "previous_version", d.PreviousVersion, "by", d.By, "source", source)
	return d, nil
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

// Deploys returns up to limit deploys, newest first; all kept ones when limit
// is not positive.
func (m *Manager) Deploys(limit int) ([]Deploy, error) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	out, err := newest[Deploy](m.kv, keyDeploy, limit)
	if err != nil {
		return nil, fmt.Errorf("deploys: %w", err)
	}
	return out, nil
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
	if !seen {
		return nil, m.putSeen(seenKey, version)
	}
	if string(b) == version {
		return nil, nil
	}
	if err := m.putSeen(seenKey, version); err != nil {
		return nil, err
	}
	last, haveDeploy, err := m.lastDeploy(service, environment)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	return &d, nil
}

func (m *Manager) putSeen(key, version string) error {
	if err := m.kv.Put(key, []byte(version)); err != nil {
		return fmt.Errorf("build info: storing version: %w", err)
	}
	return nil
}
