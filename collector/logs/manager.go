package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/vigil-sh/vigil/config"
)

// Options configure the Manager. Only DataDir is required.
type Options struct {
	// DataDir holds logs/positions.json.
	DataDir string
	// RecentLines is how many lines per log Lines can return (default 1000).
	RecentLines int
	// PollInterval is how often files are checked for new lines when they
	// have none (default 250ms).
	PollInterval time.Duration
	// GlobInterval is how often the globs are matched again (default 1s).
	GlobInterval time.Duration
	// SaveInterval is how often positions are saved (default 1s).
	SaveInterval time.Duration
	// DrainTimeout is how long a rotated or deleted file is kept open after
	// its last line (default 5s).
	DrainTimeout time.Duration
	// StopTimeout bounds how long Run waits, once its context ends, for the
	// Loki client to flush (default 30s).
	StopTimeout time.Duration
	// LokiMinBackoff, LokiMaxBackoff and LokiMaxRetries are the Loki
	// client's retry schedule (defaults 500ms, 5m, 10: about 8.5 minutes).
	LokiMinBackoff time.Duration
	LokiMaxBackoff time.Duration
	LokiMaxRetries int
	// LokiTimeout bounds one push request (default 10s).
	LokiTimeout time.Duration
	// Stdout and Stderr receive the lines of logs whose output is stdout,
	// both or stderr (default os.Stdout and os.Stderr).
	Stdout, Stderr io.Writer
}

func (o *Options) withDefaults() *Options {
	c := *o
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.RecentLines <= 0 {
		c.RecentLines = 1000
	}
	def(&c.PollInterval, 250*time.Millisecond)
	def(&c.GlobInterval, time.Second)
	def(&c.SaveInterval, time.Second)
	def(&c.DrainTimeout, 5*time.Second)
	def(&c.StopTimeout, 30*time.Second)
	def(&c.LokiMinBackoff, defaultMinBackoff)
	def(&c.LokiMaxBackoff, defaultMaxBackoff)
	def(&c.LokiTimeout, defaultPushTimeout)
	if c.LokiMaxRetries <= 0 {
		c.LokiMaxRetries = defaultMaxRetries
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	return &c
}

// Line is one log line as kept for GET /api/v1/logs.
type Line struct {
	Time  time.Time `json:"time"`
	Log   string    `json:"log"`
	File  string    `json:"file"`
	Level string    `json:"level"`
	Line  string    `json:"line"`
}

// Manager runs one tailer per configured log and the Loki client they share.
type Manager struct {
	opts    *Options
	logger  *slog.Logger
	metrics *metrics
	pos     *positions

	mtx      sync.Mutex
	specs    map[string]logSpec
	lokiCfg  *lokiKey
	shipper  *shipper
	rings    map[string]*ring
	stats    map[string]*logStats
	tailers  map[string]*runningTailer
	runCtx   context.Context // set while Run runs
	stopping bool
	// draining counts Loki clients replaced by a reload that are still
	// pushing what they held. Tailers start only while it is 0: they
	// resume where those clients' answers leave the positions.
	draining int
	// drained is closed when draining falls to 0; nil while it is 0.
	drained chan struct{}
}

// lokiKey is what a Loki client is built from; a change restarts it.
type lokiKey struct {
	loki        config.LokiConfig
	service     string
	environment string
}

type runningTailer struct {
	spec   logSpec
	ship   *shipper
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Manager whose positions live in opts.DataDir/logs.
func New(opts *Options, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if opts == nil || opts.DataDir == "" {
		return nil, errors.New("logs: a data directory is required")
	}
	dir := filepath.Join(opts.DataDir, "logs")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	pos, err := loadPositions(filepath.Join(dir, "positions.json"))
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	return &Manager{
		opts:    opts.withDefaults(),
		logger:  logger,
		metrics: newMetrics(reg),
		pos:     pos,
		specs:   map[string]logSpec{},
		rings:   map[string]*ring{},
		stats:   map[string]*logStats{},
		tailers: map[string]*runningTailer{},
	}, nil
}

// ApplyConfig tails the logs of cfg.Collectors.Logs: logs added start,
// logs removed stop, logs whose settings changed restart at their saved
// positions. A change of the Loki settings, service or environment starts
// a new Loki client and restarts every tailer once the old client pushed
// what it held (at most StopTimeout): ApplyConfig does not wait for that,
// and Status, Lines and later reloads do not either. On error nothing
// changes.
func (m *Manager) ApplyConfig(cfg *config.Config) error {
	specs := map[string]logSpec{}
	for i, lc := range cfg.Collectors.Logs {
		spec, err := specFor(cfg, i, lc, m.opts)
		if err != nil {
			return fmt.Errorf("logs: %w", err)
		}
		if _, dup := specs[spec.name]; dup {
			return fmt.Errorf("collectors.logs[%d]: name %q is used twice", i, spec.name)
		}
		specs[spec.name] = spec
	}
	var key *lokiKey
	if l := cfg.Collectors.Loki; l != nil && l.URL != "" {
		key = &lokiKey{loki: *l, service: cfg.Service, environment: cfg.Environment}
	}

	m.mtx.Lock()
	defer m.mtx.Unlock()
	var oldShipper *shipper
	if !reflect.DeepEqual(key, m.lokiCfg) {
		var sh *shipper
		if key != nil {
			var err error
			sh, err = newShipper(cfg, pushSettings{
				minBackoff: m.opts.LokiMinBackoff, maxBackoff: m.opts.LokiMaxBackoff,
				maxRetries: m.opts.LokiMaxRetries, timeout: m.opts.LokiTimeout,
			}, m.metrics, m.savePositions, m.logger.With("component", "loki"))
			if err != nil {
				return fmt.Errorf("logs: %w", err)
			}
		}
		oldShipper, m.shipper, m.lokiCfg = m.shipper, sh, key
	}
	// Stop tailers of removed or changed logs, and all of them when the
	// Loki client changed: they hold the old one.
	for name, rt := range m.tailers {
		if spec, ok := specs[name]; ok && reflect.DeepEqual(spec, rt.spec) && rt.ship == m.shipper {
			continue
		}
		rt.stop()
		delete(m.tailers, name)
	}
	for name := range m.specs {
		if _, ok := specs[name]; !ok {
			delete(m.rings, name)
			delete(m.stats, name)
			m.metrics.forget(name)
		}
	}
	m.specs = specs
	for name := range specs {
		if _, ok := m.rings[name]; !ok {
			m.rings[name] = newRing(m.opts.RecentLines)
		}
		if _, ok := m.stats[name]; !ok {
			m.stats[name] = &logStats{}
		}
	}
	if oldShipper != nil {
		// Its tailers have stopped. New tailers start where its
		// acknowledgements end, so they wait for it (see drain).
		m.draining++
		if m.drained == nil {
			m.drained = make(chan struct{})
		}
		go m.drain(oldShipper)
	}
	m.startTailersLocked()
	return nil
}

// drain lets a Loki client replaced by a reload push what it holds, for at
// most StopTimeout, without holding the lock: a Loki that hangs or fails
// delays only the restart of the tailers. The chunks it could not push
// stay unacknowledged, so the tailers started afterwards read them again.
func (m *Manager) drain(sh *shipper) {
	sh.close(m.opts.StopTimeout)
	m.mtx.Lock()
	defer m.mtx.Unlock()
	m.draining--
	if m.draining == 0 {
		close(m.drained)
		m.drained = nil
		m.startTailersLocked()
	}
}

// savePositions saves the positions; the Loki client calls it after each
// push, before the next.
func (m *Manager) savePositions() {
	if err := m.pos.save(); err != nil {
		m.logger.Error("saving log positions", "err", err)
	}
}

func (rt *runningTailer) stop() {
	rt.cancel()
	<-rt.done
}

// startTailersLocked starts a tailer for every configured log without one,
// unless Run is not running or an old Loki client is still draining.
func (m *Manager) startTailersLocked() {
	if m.runCtx == nil || m.stopping || m.draining > 0 {
		return
	}
	for name, spec := range m.specs {
		if _, ok := m.tailers[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(m.runCtx)
		rt := &runningTailer{spec: spec, ship: m.shipper, cancel: cancel, done: make(chan struct{})}
		t := newTailer(spec, m.opts, m.pos, m.rings[name], m.stats[name], m.shipper, m.metrics, m.logger)
		go func() {
			defer close(rt.done)
			t.run(ctx)
		}()
		m.tailers[name] = rt
	}
}

// Run tails the configured logs until ctx ends. When it returns every
// tailer has stopped, output files are closed, positions are saved and the
// Loki client, and any a reload replaced, has flushed (or StopTimeout
// passed; see shipper).
func (m *Manager) Run(ctx context.Context) error {
	m.mtx.Lock()
	if m.runCtx != nil {
		m.mtx.Unlock()
		return errors.New("logs: Run called twice")
	}
	m.runCtx = ctx
	m.startTailersLocked()
	m.mtx.Unlock()

	tick := time.NewTicker(m.opts.SaveInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := m.pos.save(); err != nil {
				m.logger.Error("saving log positions", "err", err)
			}
			continue
		case <-ctx.Done():
		}
		break
	}

	m.mtx.Lock()
	m.stopping = true
	for name, rt := range m.tailers {
		rt.stop()
		delete(m.tailers, name)
	}
	sh := m.shipper
	m.shipper, m.lokiCfg = nil, nil
	drained := m.drained
	m.mtx.Unlock()

	// The clients' last acknowledgements move positions: save after them.
	// While an old client drains no tailer ran, so sh holds nothing.
	if drained != nil {
		<-drained
	}
	if sh != nil {
		sh.close(m.opts.StopTimeout)
	}
	err := m.pos.save()
	if err != nil {
		err = fmt.Errorf("logs: %w", err)
	}
	return err
}

// Lines returns the last limit lines of a log, oldest first; limit <= 0
// returns every line kept.
func (m *Manager) Lines(log string, limit int) ([]Line, error) {
	m.mtx.Lock()
	r, ok := m.rings[log]
	m.mtx.Unlock()
	if !ok {
		return nil, fmt.Errorf("no log %q", log)
	}
	return r.last(limit), nil
}

// Names returns the configured logs' names, sorted.
func (m *Manager) Names() []string {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return slices.Sorted(maps.Keys(m.specs))
}

// specFor resolves one collectors.logs entry. An entry without a name is
// called log<index>.
func specFor(cfg *config.Config, i int, lc config.LogConfig, opts *Options) (logSpec, error) {
	name := lc.Name
	if name == "" {
		name = fmt.Sprintf("log%d", i)
	}
	app := lc.Labels["app"]
	if app == "" {
		app = "app"
	}
	spec := logSpec{
		name:      name,
		paths:     append([]string(nil), lc.Paths...),
		file:      lc.File,
		maxSizeMB: lc.MaxSize.Megabytes(),
		maxFiles:  lc.MaxFiles,
		compress:  lc.Compress,
		lokiLabels: model.LabelSet{
			"app": model.LabelValue(app),
			"log": model.LabelValue(name),
		},
	}
	if d := time.Duration(lc.MaxAge); d > 0 {
		spec.maxAgeDays = int((d + 24*time.Hour - 1) / (24 * time.Hour))
	}
	spec.stream = streamLabels(cfg, spec.lokiLabels)
	if lc.Level != "" {
		spec.minLevel = slices.Index(levels, strings.ToLower(lc.Level))
		if spec.minLevel < 0 || spec.minLevel > levelIndex(LevelFatal) {
			return spec, fmt.Errorf("collectors.logs[%d]: level %q is not one of debug, info, warn, error, fatal", i, lc.Level)
		}
	}
	switch f := strings.ToLower(lc.Format); f {
	case "", "json", "text":
		spec.format = f
	default:
		return spec, fmt.Errorf("collectors.logs[%d]: format %q is not one of json, text", i, lc.Format)
	}
	switch o := strings.ToLower(lc.Output); o {
	case "", "file":
	case "stdout", "both":
		spec.echo = opts.Stdout
	case "stderr":
		spec.echo = opts.Stderr
	default:
		return spec, fmt.Errorf("collectors.logs[%d]: output %q is not one of stdout, stderr, file, both", i, lc.Output)
	}
	if (lc.Output == "file" || lc.Output == "both") && lc.File == "" {
		return spec, fmt.Errorf("collectors.logs[%d]: output %q needs file", i, lc.Output)
	}
	return spec, nil
}
