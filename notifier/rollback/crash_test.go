package rollback

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

// cooldownFailKV fails the writes of the cooldown while failing is set, as
// a crash between the incident's record and the cooldown would leave them.
type cooldownFailKV struct {
	*notifier.MemKV
	failing bool
}

func (kv *cooldownFailKV) Put(key string, v []byte) error {
	if kv.failing && strings.HasPrefix(key, keyCooldown) {
		return errors.New("killed")
	}
	return kv.MemKV.Put(key, v)
}

// TestDecideCrashBeforeCooldown: a decision whose cooldown was not written
// (the gateway died after recording the incident's decision) is repeated,
// the same delivery id, and the cooldown written then; the incident is not
// held off by a cooldown of its own rollback.
func TestDecideCrashBeforeCooldown(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	kv := &cooldownFailKV{MemKV: notifier.NewMemKV()}
	m := newManager(t, kv, clk, testConfig("http://127.0.0.1:1/rollback"))
	_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
	require.NoError(t, err)
	clk.Set(t0.Add(2 * time.Minute))
	inc := incident("inc-1", t0.Add(time.Minute), criticalApp())

	kv.failing = true
	_, _, err = m.Decide(ctx, inc, config.EnvProduction)
	require.ErrorContains(t, err, "storing cooldown")

	kv.failing = false
	clk.Add(time.Second)
	msg, rec, err := m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.NotNil(t, msg, "the incident's own rollback is not held off")
	require.Equal(t, "rb_inc-1", msg.DeliveryID)
	require.Equal(t, "rb_inc-1", rec.DeliveryID)
	last, inCooldown, err := m.lastRollback(m.cfg, config.EnvProduction, clk.Now())
	require.NoError(t, err)
	require.True(t, inCooldown)
	require.True(t, last.Equal(t0.Add(2*time.Minute)), "the cooldown counts from the decision: %s", last)

	// Another incident now is held off.
	msg, _, err = m.Decide(ctx, incident("inc-2", t0.Add(2*time.Minute), criticalApp()), config.EnvProduction)
	require.NoError(t, err)
	require.Nil(t, msg)
}

// incidentFailKV fails the writes of the incidents' records while failing
// is set.
type incidentFailKV struct {
	*notifier.MemKV
	failing bool
}

func (kv *incidentFailKV) Put(key string, v []byte) error {
	if kv.failing && strings.HasPrefix(key, keyIncident) {
		return errors.New("killed")
	}
	return kv.MemKV.Put(key, v)
}

// TestDecideCrashBeforeIncidentRecord: a gateway that died before it
// recorded the incident's decision left no cooldown behind either, so the
// decision, made again (by the other gateway), rolls back.
func TestDecideCrashBeforeIncidentRecord(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	kv := &incidentFailKV{MemKV: notifier.NewMemKV()}
	m := newManager(t, kv, clk, testConfig("http://127.0.0.1:1/rollback"))
	_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
	require.NoError(t, err)
	clk.Set(t0.Add(2 * time.Minute))
	inc := incident("inc-1", t0.Add(time.Minute), criticalApp())

	kv.failing = true
	_, _, err = m.Decide(ctx, inc, config.EnvProduction)
	require.ErrorContains(t, err, "storing incident state")

	kv.failing = false
	msg, _, err := m.Decide(ctx, inc, config.EnvProduction)
	require.NoError(t, err)
	require.NotNil(t, msg, "a cooldown of the incident's own unrecorded decision held its rollback off")
	require.Equal(t, "rb_inc-1", msg.DeliveryID)
}
