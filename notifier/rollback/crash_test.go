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

// TestDecideCrash: a decision the gateway died in the middle of is made
// again (by it or the other gateway) and rolls back, the same delivery id;
// the incident is not held off by a cooldown of its own rollback.
//
//   - before cooldown: the incident's decision was recorded but the cooldown
//     was not; the cooldown is written by the repeated decision and counts
//     from it, and holds another incident off.
//   - before incident record: nothing was written, no cooldown either.
func TestDecideCrash(t *testing.T) {
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
			after: func(t *testing.T, m *Manager, clk *clock) {
				last, inCooldown, err := m.lastRollback(m.cfg, config.EnvProduction, clk.Now())
				require.NoError(t, err)
				require.True(t, inCooldown)
				require.True(t, last.Equal(t0.Add(2*time.Minute)), "the cooldown counts from the decision: %s", last)

				// Another incident now is held off.
				msg, _, err := m.Decide(context.Background(), incident("inc-2", t0.Add(2*time.Minute), criticalApp()), config.EnvProduction)
				require.NoError(t, err)
				require.Nil(t, msg)
			},
		},
		{
			name:    "before incident record",
			prefix:  keyIncident,
			wantErr: "storing incident state",
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
