package rollback

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
)

func benchManager(b *testing.B, url string, cooldown time.Duration) (*Manager, *clock) {
	b.Helper()
	clk := newClock(t0)
	m, err := New(&Options{KV: notifier.NewMemKV(), Clock: clk.Now}, slog.New(slog.DiscardHandler), nil)
	require.NoError(b, err)
	cfg := testConfig(url)
	cfg.Rollback.Cooldown = config.Duration(cooldown)
	require.NoError(b, m.ApplyConfig(cfg))
	_, err = m.RecordDeploy(Deploy{Version: "1.0.0"})
	require.NoError(b, err)
	return m, clk
}

// BenchmarkDecide measures a decision that fires (no cooldown), including
// the payload and the KV writes.
func BenchmarkDecide(b *testing.B) {
	m, _ := benchManager(b, "http://127.0.0.1:1/", 0)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		msg, _, err := m.Decide(ctx, incident("inc-"+strconv.Itoa(i), t0.Add(time.Minute), criticalApp()), "")
		if err != nil || msg == nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideNotDue measures the common case: an incident that does not
// call for a rollback.
func BenchmarkDecideNotDue(b *testing.B) {
	m, _ := benchManager(b, "http://127.0.0.1:1/", 0)
	ctx := context.Background()
	inc := incident("inc", t0.Add(-time.Minute), criticalApp())
	b.ReportAllocs()
	for b.Loop() {
		if msg, _, err := m.Decide(ctx, inc, ""); err != nil || msg != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordDeploy records deploys with a full history of 100.
func BenchmarkRecordDeploy(b *testing.B) {
	m, _ := benchManager(b, "http://127.0.0.1:1/", 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := m.RecordDeploy(Deploy{Version: strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiverNotify delivers a signed rollback call to a local
// controller stand-in (keep-alive connection).
func BenchmarkReceiverNotify(b *testing.B) {
	ctl := newController(b, []byte(testSecret))
	m, _ := benchManager(b, ctl.srv.URL, 0)
	msg, _, err := m.Manual(context.Background(), "bench", "bench")
	require.NoError(b, err)
	r := m.Receiver()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Notify(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
