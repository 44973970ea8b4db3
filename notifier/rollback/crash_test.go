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

// failKV fails the writes of the keys under prefix while failing is set, as
// a gateway that died before writing them would leave the store.
type failKV struct {
	*notifier.MemKV
	prefix  string
	failing bool
}

func (kv *failKV) Put(key string, v []byte) error {
	if kv.failing && strings.HasPrefix(key, kv.prefix) {
		return errors.New("killed")
	}
	return kv.MemKV.Put(key, v)
}

func (kv *failKV) PutIfAbsent(key string, v []byte) (bool, error) {
	if kv.failing && strings.HasPrefix(key, kv.prefix) {
		return false, errors.New("killed")
	}
	return kv.MemKV.PutIfAbsent(key, v)
}

func (kv *failKV) CompareAndSwap(key string, old, v []byte) (bool, error) {
	if kv.failing && strings.HasPrefix(key, kv.prefix) {
		return false, errors.New("killed")
	}
	return kv.MemKV.CompareAndSwap(key, old, v)
}

// TestDecideCrash: a decision the gateway died in the middle of is made
// again (by it or the other gateway) and rolls back, the same delivery id;
// the incident is not held off by a cooldown of its own rollback, and the
// cooldown then holds another incident off.
//
//   - before cooldown: nothing was written.
//   - before incident record: the cooldown was claimed for the incident's
//     rollback but its decision was not recorded.
func TestDecideCrash(t *testing.T) {
	heldOff := func(t *testing.T, m *Manager, clk *clock) {
		c, err := m.readCooldown(m.cfg.service, config.EnvProduction)
		require.NoError(t, err)
		require.True(t, c.holds(m.cfg, clk.Now(), "rb_inc-2"))
		require.True(t, c.at.Equal(t0.Add(2*time.Minute+time.Second)), "the cooldown counts from the decision: %s", c.at)
		require.Equal(t, "rb_inc-1", c.id)

		msg, _, err := m.Decide(context.Background(), incident("inc-2", t0.Add(2*time.Minute), criticalApp()), config.EnvProduction)
		require.NoError(t, err)
		require.Nil(t, msg)
	}
	for _, tc := range []struct {
		name    string
		prefix  string
		wantErr string
		after   func(t *testing.T, m *Manager, clk *clock)
	}{
		{
			name:    "before cooldown",
			prefix:  keyCooldown,
			wantErr: "storing cooldown",
			after:   heldOff,
		},
		{
			name:    "before incident record",
			prefix:  keyIncident,
			wantErr: "storing incident state",
			after:   heldOff,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(t0)
			kv := &failKV{MemKV: notifier.NewMemKV(), prefix: tc.prefix}
			m := newManager(t, kv, clk, testConfig("http://127.0.0.1:1/rollback"))
			_, err := m.RecordDeploy(Deploy{Version: "2.0.0"})
			require.NoError(t, err)
			clk.Set(t0.Add(2 * time.Minute))
			inc := incident("inc-1", t0.Add(time.Minute), criticalApp())

			kv.failing = true
			_, _, err = m.Decide(ctx, inc, config.EnvProduction)
			require.ErrorContains(t, err, tc.wantErr)

			kv.failing = false
			clk.Add(time.Second)
			msg, rec, err := m.Decide(ctx, inc, config.EnvProduction)
			require.NoError(t, err)
			require.NotNil(t, msg, "the incident's own rollback is held off")
			require.Equal(t, "rb_inc-1", msg.DeliveryID)
			require.Equal(t, "rb_inc-1", rec.DeliveryID)
			if tc.after != nil {
				tc.after(t, m, clk)
			}
		})
	}
}
