package postgres

import (
	"context"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/testutil"
)

// defaultTestDSN is the machine's PostgreSQL, trust authentication.
const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDSN returns the DSN of the real server the tests use and fails,
// saying how to start one, when it does not answer.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("VIGIL_TEST_PG_DSN")
	if dsn == "" {
		dsn = defaultTestDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		r := newRedactor(dsn, "")
		t.Fatalf("no PostgreSQL answers at VIGIL_TEST_PG_DSN=%s: %v\n"+
			"start one with: eval \"$(scripts/pg-ensure.sh)\" (from the repository root), "+
			"or point VIGIL_TEST_PG_DSN at a server with trust authentication",
			safeDSN(dsn), r.wrap(err))
	}
	return dsn
}

// newTestCollector returns a Collector for dsn, closed when the test ends.
func newTestCollector(t testing.TB, dsn string, maxConns int, logger *slog.Logger) *Collector {
	t.Helper()
	c, err := New(&config.DatabaseCollectorConfig{
		DSN:      config.Secret(dsn),
		Timeout:  config.Duration(5 * time.Second),
		MaxConns: maxConns,
	}, logger)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// adapter runs Update as a prometheus.Collector, so a registry checks the
// output (no duplicate series, consistent labels) and gathers it.
type adapter struct {
	c   *Collector
	ctx context.Context
	err error
}

func (*adapter) Describe(chan<- *prometheus.Desc) {}

func (a *adapter) Collect(out chan<- prometheus.Metric) {
	ch := make(chan prometheus.Metric)
	done := make(chan error, 1)
	go func() {
		done <- a.c.Update(a.ctx, ch)
		close(ch)
	}()
	for m := range ch {
		out <- m
	}
	a.err = <-done
}

// families is a gathered collection by metric name.
type families map[string]*dto.MetricFamily

// gather runs one Update and returns its metrics, or its error.
func gather(ctx context.Context, c *Collector) (families, error) {
	reg := prometheus.NewPedanticRegistry()
	a := &adapter{c: c, ctx: ctx}
	reg.MustRegister(a)
	mfs, err := reg.Gather()
	if a.err != nil {
		return nil, a.err
	}
	if err != nil {
		return nil, err
	}
	out := families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out, nil
}

// mustGather is gather that fails the test on error.
func mustGather(t testing.TB, c *Collector) families {
	t.Helper()
	fs, err := gather(context.Background(), c)
	require.NoError(t, err)
	return fs
}

// value returns the value of the series of name whose labels include
// want (name=value pairs), and whether there is one.
func (fs families) value(name string, want ...string) (float64, bool) {
	mf, ok := fs[name]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// mustValue is value that fails the test when the series is missing.
func (fs families) mustValue(t testing.TB, name string, want ...string) float64 {
	t.Helper()
	v, ok := fs.value(name, want...)
	require.True(t, ok, "no series %s%v in %v", name, want, fs.names())
	return v
}

func (fs families) names() []string {
	var out []string
	for n := range fs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// shape describes the families without values: name, type, label names.
// It is what the golden file pins.
func (fs families) shape() string {
	var b strings.Builder
	for _, n := range fs.names() {
		mf := fs[n]
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		b.WriteString(n + " " + strings.ToLower(mf.GetType().String()) + " {" + strings.Join(ls, ",") + "}\n")
	}
	return b.String()
}

// debugLogger logs everything to buf.
func debugLogger(buf *testutil.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
