package rollback

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/storetest"
)

// gatewayPair is the rollback Managers of two gateways sharing one
// PostgreSQL schema, one clock and one deploy controller; a's KV is an
// InterleaveKV.
type gatewayPair struct {
	a, b *Manager
	hook *storetest.InterleaveKV
	clk  *clock
	ctl  *controller
}

func newGatewayPair(t *testing.T) *gatewayPair {
	stores := storetest.SharedPostgres(t, 2)
	p := &gatewayPair{clk: newClock(t0), ctl: newController(t, []byte(testSecret))}
	p.hook = &storetest.InterleaveKV{AtomicKV: stores[0].KV("rollback").(notifier.AtomicKV)}
	p.a = newManager(t, p.hook, p.clk, testConfig(p.ctl.srv.URL))
	p.b = newManager(t, stores[1].KV("rollback"), p.clk, testConfig(p.ctl.srv.URL))
	return p
}

// between makes b's f run right after a's first read of key.
func (p *gatewayPair) between(op, key string, f func()) {
	p.hook.Match = func(o, k string) bool { return o == op && k == key }
	p.hook.Between = f
}

// deliver sends the messages Decide returned, as the notifier does, and
// returns the controller's calls.
func (p *gatewayPair) deliver(t *testing.T, msgs ...*notifier.Message) []call {
	for _, msg := range msgs {
		if msg != nil {
			_, err := p.a.Receiver().Notify(context.Background(), msg)
			require.NoError(t, err)
		}
	}
	return p.ctl.Calls()
}

// meeting makes two gateways (0 and 1) wait for each other after their
// first read of each of its keys, until the other has read it too or is
// done: both read before either writes.
type meeting struct {
	off     bool // set before the gateways run, to let a setup call pass
	arrived [2]map[string]chan struct{}
	once    [2]map[string]*sync.Once
}

func newMeeting(keys ...string) *meeting {
	m := &meeting{}
	for i := range 2 {
		m.arrived[i], m.once[i] = map[string]chan struct{}{}, map[string]*sync.Once{}
		for _, k := range keys {
			m.arrived[i][k], m.once[i][k] = make(chan struct{}), &sync.Once{}
		}
	}
	return m
}

func (m *meeting) arrive(i int, key string) {
	if m.off || m.once[i][key] == nil {
		return
	}
	m.once[i][key].Do(func() { close(m.arrived[i][key]) })
	<-m.arrived[1-i][key]
}

func (m *meeting) done(i int) {
	for k, once := range m.once[i] {
		once.Do(func() { close(m.arrived[i][k]) })
	}
}

// meetKV is gateway i's KV in a meeting.
type meetKV struct {
	notifier.AtomicKV
	m *meeting
	i int
}

func (kv *meetKV) Get(key string) ([]byte, bool, error) {
	v, ok, err := kv.AtomicKV.Get(key)
	kv.m.arrive(kv.i, key)
	return v, ok, err
}

var cooldownKey = pairKey(keyCooldown, "checkout", config.EnvProduction)

// TestSharedManualRollback: operators who press rollback on both gateways
// at once get one call to the deploy controller; the other is told about
// the cooldown.
func TestSharedManualRollback(t *testing.T) {
	ctx := context.Background()

	t.Run("interleaved", func(t *testing.T) {
		p := newGatewayPair(t)
		_, err := p.a.RecordDeploy(Deploy{Version: "2.0.0"})
		require.NoError(t, err)
		var errB error
		p.between("get", cooldownKey, func() { _, errB = p.b.FireNow(ctx, "from b", "bob") })
		_, errA := p.a.FireNow(ctx, "from a", "alice")
		require.NoError(t, errB, "b went first")
		require.ErrorIs(t, errA, ErrCooldown)
		require.Len(t, p.ctl.Calls(), 1)
		kept, err := p.a.ManualRollbacks(0)
		require.NoError(t, err)
		require.Len(t, kept, 1)
		require.Equal(t, "bob", kept[0].By)
	})

	t.Run("concurrent", func(t *testing.T) {
		p := newGatewayPair(t)
		_, err := p.a.RecordDeploy(Deploy{Version: "2.0.0"})
		require.NoError(t, err)
		const each = 5
		var (
			wg       sync.WaitGroup
			mtx      sync.Mutex
			fired    int
			cooldown int
		)
		for range each {
			for _, m := range []*Manager{p.a, p.b} {
				wg.Go(func() {
					_, err := m.FireNow(ctx, "error spike", "alice")
					mtx.Lock()
					defer mtx.Unlock()
					if err == nil {
						fired++
					} else {
						require.ErrorIs(t, err, ErrCooldown)
						cooldown++
					}
				})
			}
		}
		wg.Wait()
		require.Equal(t, 1, fired)
		require.Equal(t, 2*each-1, cooldown)
		require.Len(t, p.ctl.Calls(), 1)
	})
}

// TestSharedDecide: the automatic decision on two gateways at once.
func TestSharedDecide(t *testing.T) {
	ctx := context.Background()
	prod := config.EnvProduction

	t.Run("two incidents, one rollback", func(t *testing.T) {
		p := newGatewayPair(t)
		_, err := p.a.RecordDeploy(Deploy{Version: "2.0.0"})
		require.NoError(t, err)
		p.clk.Set(t0.Add(2 * time.Minute))
		var msgB *notifier.Message
		p.between("get", cooldownKey, func() {
			var err error
			msgB, _, err = p.b.Decide(ctx, incident("inc-2", t0.Add(time.Minute), criticalApp()), prod)
			require.NoError(t, err)
		})
		msgA, _, err := p.a.Decide(ctx, incident("inc-1", t0.Add(time.Minute), criticalApp()), prod)
		require.NoError(t, err)
		require.NotNil(t, msgB, "b went first")
		require.Nil(t, msgA, "a is held off by b's rollback")
		require.Equal(t, 1.0, decisionCount(p.a, DecisionCooldown))
		require.Len(t, p.deliver(t, msgA, msgB), 1)
	})

	t.Run("one incident, one decision", func(t *testing.T) {
		p := newGatewayPair(t)
		_, err := p.a.RecordDeploy(Deploy{Version: "2.0.0"})
		require.NoError(t, err)
		p.clk.Set(t0.Add(2 * time.Minute))
		inc := incident("inc-1", t0.Add(time.Minute), criticalApp())
		var msgB *notifier.Message
		p.between("get", cooldownKey, func() {
			var err error
			msgB, _, err = p.b.Decide(ctx, inc, prod)
			require.NoError(t, err)
		})
		msgA, _, err := p.a.Decide(ctx, inc, prod)
		require.NoError(t, err)
		require.NotNil(t, msgA)
		require.NotNil(t, msgB)
		require.Equal(t, "rb_inc-1", msgA.DeliveryID)
		require.Equal(t, "rb_inc-1", msgB.DeliveryID)
		require.JSONEq(t, string(msgB.Payload), string(msgA.Payload))
		require.Equal(t, 1.0, decisionCount(p.a, DecisionAlreadyFired), "a repeats b's decision")
		require.Equal(t, 0.0, decisionCount(p.a, DecisionFired))
		// The controller deduplicates on webhook-id: one rollback.
		calls := p.deliver(t, msgA, msgB)
		require.Len(t, calls, 2)
		require.Equal(t, calls[0].header.Get("webhook-id"), calls[1].header.Get("webhook-id"))
	})
}

// TestSharedDeploys: deploys recorded on two gateways at once are both
// kept, under their own IDs, and the newer is the last; a version change
// both gateways see in *_build_info is one deploy.
func TestSharedDeploys(t *testing.T) {
	t.Run("recorded at once", func(t *testing.T) {
		p := newGatewayPair(t)
		_, err := p.a.RecordDeploy(Deploy{Version: "1.0.0", At: t0})
		require.NoError(t, err)
		var dB Deploy
		p.between("get", pairKey(keyLast, "checkout", config.EnvProduction), func() {
			var err error
			dB, err = p.b.RecordDeploy(Deploy{Version: "3.0.0", At: t0.Add(2 * time.Minute)})
			require.NoError(t, err)
		})
		dA, err := p.a.RecordDeploy(Deploy{Version: "2.0.0", At: t0.Add(time.Minute)})
		require.NoError(t, err)
		require.NotEqual(t, dA.ID, dB.ID)
		all, err := p.b.Deploys(0)
		require.NoError(t, err)
		var versions []string
		for _, d := range all {
			versions = append(versions, d.Version+"<"+d.PreviousVersion)
		}
		require.Equal(t, []string{"3.0.0<2.0.0", "2.0.0<1.0.0", "1.0.0<"}, versions)
		last, ok, err := p.a.LastDeploy()
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "3.0.0", last.Version, "the newer deploy is the last whatever the order of the writes")
		for _, d := range []Deploy{dA, dB} {
			got, ok, err := p.a.Deploy(d.ID)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, d.Version, got.Version)
		}
	})

	t.Run("build info seen by both", func(t *testing.T) {
		// Both gateways read the seen version, then both read the last
		// deploy, before either writes: the interleaving of two scrapes
		// of the same change.
		stores := storetest.SharedPostgres(t, 2)
		clk := newClock(t0)
		seen, last := pairKey(keySeen, "checkout", config.EnvProduction), pairKey(keyLast, "checkout", config.EnvProduction)
		meet := newMeeting(seen, last)
		var gw [2]*Manager
		for i := range gw {
			gw[i] = newManager(t, &meetKV{AtomicKV: stores[i].KV("rollback").(notifier.AtomicKV), m: meet, i: i}, clk, testConfig("http://127.0.0.1:1/rollback"))
		}
		meet.off = true
		_, err := gw[0].ObserveBuildInfo("", "", "1.0.0")
		require.NoError(t, err)
		meet.off = false
		var (
			wg       sync.WaitGroup
			recorded [2]*Deploy
		)
		for i := range gw {
			wg.Go(func() {
				defer meet.done(i)
				var err error
				recorded[i], err = gw[i].ObserveBuildInfo("", "", "2.0.0")
				require.NoError(t, err)
			})
		}
		wg.Wait()
		all, err := gw[0].Deploys(0)
		require.NoError(t, err)
		require.Len(t, all, 1, "one deploy of 2.0.0")
		require.True(t, (recorded[0] == nil) != (recorded[1] == nil), "one gateway recorded it: %v", recorded)
	})

	t.Run("build info", func(t *testing.T) {
		p := newGatewayPair(t)
		seen := pairKey(keySeen, "checkout", config.EnvProduction)
		_, err := p.a.ObserveBuildInfo("", "", "1.0.0")
		require.NoError(t, err)
		var dB *Deploy
		p.between("get", seen, func() {
			var err error
			dB, err = p.b.ObserveBuildInfo("", "", "2.0.0")
			require.NoError(t, err)
		})
		dA, err := p.a.ObserveBuildInfo("", "", "2.0.0")
		require.NoError(t, err)
		require.NotNil(t, dB, "b saw the change first")
		require.Nil(t, dA)
		all, err := p.a.Deploys(0)
		require.NoError(t, err)
		require.Len(t, all, 1)
		require.Equal(t, "2.0.0", all[0].Version)
		require.Equal(t, "1.0.0", all[0].PreviousVersion)
	})
}
