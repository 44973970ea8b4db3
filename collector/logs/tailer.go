package logs

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"gopkg.in/natefinch/lumberjack.v2"
)

const (
	// readBufferSize is the most read from a file at once; a line longer
	// than this is split into pieces of this size.
	readBufferSize = 256 << 10
	// headSize is how many leading bytes of a file are checksummed to tell
	// a rewritten file from the one a position belongs to.
	headSize = 256
	// perFileBudget bounds what one file may read in one round before the
	// other files of the log get their turn.
	perFileBudget = 8 << 20
)

// tailedFile is one open file of a log.
type tailedFile struct {
	id      fileID
	path    string
	f       *os.File
	offset  int64
	headLen int
	head    uint32
	// epoch is the reading of the file its position belongs to; written is
	// how far lines already went to the output file (a restart at an
	// unacknowledged offset does not write them twice).
	epoch   uint64
	written int64
	// gone is when the file stopped matching the log's globs (renamed away
	// or deleted); it is read until it has been quiet for the drain timeout.
	gone     time.Time
	lastData time.Time
}

// tailer follows the files of one log in one goroutine, so a log's lines
// reach its output file, Loki and its recent lines in file order.
type tailer struct {
	spec    logSpec
	logger  *slog.Logger
	pos     *positions
	ring    *ring
	stats   *logStats
	ship    *shipper // nil without Loki
	opts    *Options
	metrics *metrics

	out       io.WriteCloser
	files     map[fileID]*tailedFile
	buf       []byte
	lastTime  time.Time
	lastGlob  time.Time
	levelCtrs [6]prometheus.Counter
	bytesCtr  prometheus.Counter
	recent    []Line
	kept      []byte
}

func newTailer(spec logSpec, opts *Options, pos *positions, r *ring, st *logStats, ship *shipper, m *metrics, logger *slog.Logger) *tailer {
	t := &tailer{
		spec:    spec,
		logger:  logger.With("log", spec.name),
		pos:     pos,
		ring:    r,
		stats:   st,
		ship:    ship,
		opts:    opts,
		metrics: m,
		files:   map[fileID]*tailedFile{},
		buf:     make([]byte, readBufferSize),
	}
	for i, l := range levels {
		t.levelCtrs[i] = m.lines.WithLabelValues(spec.name, l)
	}
	t.bytesCtr = m.bytes.WithLabelValues(spec.name)
	m.outputErrors.WithLabelValues(spec.name)
	if spec.file != "" {
		t.out = &lumberjack.Logger{
			Filename:   spec.file,
			MaxSize:    spec.maxSizeMB,
			MaxBackups: spec.maxFiles,
			MaxAge:     spec.maxAgeDays,
			Compress:   spec.compress,
		}
	}
	return t
}

// run tails until ctx ends, then closes its files and output. Positions
// stay in the store for the next tailer of the same log.
func (t *tailer) run(ctx context.Context) {
	defer t.close()
	t.scan(true)
	for ctx.Err() == nil {
		busy := false
		for _, tf := range t.sortedFiles() {
			n, err := t.readFile(ctx, tf)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				t.logger.Warn("reading log file", "path", tf.path, "err", err)
			}
			if n > 0 {
				busy = true
			}
		}
		t.drain()
		if time.Since(t.lastGlob) >= t.opts.GlobInterval {
			t.scan(false)
		}
		if busy {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.opts.PollInterval):
		}
	}
}

func (t *tailer) close() {
	for id, tf := range t.files {
		_ = tf.f.Close()
		delete(t.files, id)
	}
	t.stats.setFiles(nil)
	if t.out != nil {
		if err := t.out.Close(); err != nil {
			t.logger.Warn("closing output file", "file", t.spec.file, "err", err)
		}
	}
}

func (t *tailer) sortedFiles() []*tailedFile {
	out := make([]*tailedFile, 0, len(t.files))
	for _, tf := range t.files {
		out = append(out, tf)
	}
	sort.Slice(out, func(i, j int) bool {
		// Rotated files first: their lines are older.
		if out[i].gone.IsZero() != out[j].gone.IsZero() {
			return !out[i].gone.IsZero()
		}
		return out[i].path < out[j].path
	})
	return out
}

// scan globs the log's paths, opens files not yet tailed and marks files no
// longer matched as gone. At start it also looks for files of saved
// positions that were renamed while vigil was stopped.
func (t *tailer) scan(start bool) {
	t.lastGlob = time.Now()
	matched := map[fileID]string{}
	for _, pattern := range t.spec.paths {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			t.logger.Warn("bad glob", "pattern", pattern, "err", err)
			continue
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id, ok := idOf(fi)
			if !ok {
				continue
			}
			if _, seen := matched[id]; !seen {
				matched[id] = p
			}
		}
	}
	var saved map[fileID]position
	if start {
		saved = map[fileID]position{}
		for _, p := range t.pos.forLog(t.spec.name) {
			saved[p.id()] = p
		}
	}
	now := time.Now()
	for id, p := range matched {
		if tf, ok := t.files[id]; ok {
			if tf.path != p {
				tf.path = p
				t.pos.rename(id, p)
			}
			tf.gone = time.Time{}
			continue
		}
		sp, hasSaved := saved[id]
		delete(saved, id)
		t.open(id, p, sp, hasSaved, time.Time{})
	}
	for id, tf := range t.files {
		if _, ok := matched[id]; !ok && tf.gone.IsZero() {
			tf.gone = now
		}
	}
	// Files with a saved position that no glob matches any more: find them
	// by inode in their old directory (rotated while vigil was stopped)
	// and read them to their end.
	for id, sp := range saved {
		p, ok := findInode(filepath.Dir(sp.Path), id)
		if !ok {
			t.pos.remove(id)
			continue
		}
		t.open(id, p, sp, true, now)
	}
	t.metrics.files.WithLabelValues(t.spec.name).Set(float64(len(t.files)))
	t.publishFiles()
}

// publishFiles tells Status which files the globs match and are followed.
func (t *tailer) publishFiles() {
	var paths []string
	for _, tf := range t.files {
		if tf.gone.IsZero() {
			paths = append(paths, tf.path)
		}
	}
	t.stats.setFiles(paths)
}

// open starts tailing a file: at its saved position when that position
// still fits the file, else at its beginning. The saved position is where
// Loki's acknowledgements reached, unless chunks past it are still with a
// running Loki client (a tailer restarted by a reload): then it is where
// the last tailer stopped reading, since those chunks will be answered.
func (t *tailer) open(id fileID, path string, sp position, hasSaved bool, gone time.Time) {
	f, err := os.Open(path)
	if err != nil {
		t.logger.Warn("opening log file", "path", path, "err", err)
		return
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return
	}
	if got, ok := idOf(fi); !ok || got != id {
		// Replaced between the glob and the open: the next scan sees it.
		_ = f.Close()
		return
	}
	tf := &tailedFile{id: id, path: path, f: f, gone: gone, lastData: time.Now()}
	if hasSaved {
		// The store's copy is current; saved may predate a reload.
		if cur, ok := t.pos.get(id); ok {
			sp = cur
		}
	}
	resume := sp.Offset
	if sp.pending > 0 {
		resume = sp.Written
	}
	if hasSaved && sp.Written <= fi.Size() && t.headMatches(tf, sp.HeadLen, sp.Head) {
		tf.offset, tf.written, tf.headLen, tf.head, tf.epoch = resume, sp.Written, sp.HeadLen, sp.Head, sp.epoch
		t.pos.rename(id, path)
	} else {
		if hasSaved {
			t.logger.Info("saved position does not fit the file; reading it from the start", "path", path)
		}
		tf.epoch = t.pos.reset(position{Log: t.spec.name, Path: path, Dev: id.Dev, Ino: id.Ino})
	}
	t.files[id] = tf
	t.logger.Debug("tailing", "path", path, "offset", tf.offset)
}

// headMatches reports whether the file's first n bytes have checksum sum.
func (t *tailer) headMatches(tf *tailedFile, n int, sum uint32) bool {
	if n == 0 {
		return true
	}
	b := make([]byte, n)
	if _, err := tf.f.ReadAt(b, 0); err != nil {
		return false
	}
	return crc32.ChecksumIEEE(b) == sum
}

// drain closes rotated or deleted files that have been quiet long enough.
func (t *tailer) drain() {
	changed := false
	for id, tf := range t.files {
		if tf.gone.IsZero() {
			continue
		}
		last := tf.gone
		if tf.lastData.After(last) {
			last = tf.lastData
		}
		if time.Since(last) < t.opts.DrainTimeout {
			continue
		}
		// A last look: lines written just before the app let go of it.
		fi, err := tf.f.Stat()
		if err == nil && fi.Size() > tf.offset {
			continue
		}
		// Forgetting the position of a file no glob matches is final: wait
		// until Loki has every line of it.
		if p, ok := t.pos.get(id); ok && p.Offset < tf.offset {
			continue
		}
		_ = tf.f.Close()
		delete(t.files, id)
		t.pos.remove(id)
		changed = true
		t.logger.Debug("finished rotated file", "path", tf.path)
	}
	if changed {
		t.metrics.files.WithLabelValues(t.spec.name).Set(float64(len(t.files)))
	}
}

// readFile reads tf's complete lines from its offset and processes them.
// It returns how many bytes it consumed.
func (t *tailer) readFile(ctx context.Context, tf *tailedFile) (int, error) {
	fi, err := tf.f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	switch {
	case size < tf.offset:
		t.logger.Info("log file truncated; reading it from the start", "path", tf.path, "offset", tf.offset, "size", size)
		t.restart(tf)
	case tf.offset > 0 && !t.headMatches(tf, tf.headLen, tf.head):
		t.logger.Info("log file rewritten; reading it from the start", "path", tf.path)
		t.restart(tf)
	}
	consumed := 0
	for tf.offset < size && consumed < perFileBudget {
		n, err := tf.f.ReadAt(t.buf, tf.offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return consumed, err
		}
		data := t.buf[:n]
		end := bytes.LastIndexByte(data, '\n') + 1
		if end == 0 {
			if n < len(t.buf) {
				break // a partial line: wait for its newline
			}
			end = n // longer than the buffer: ship it in pieces
		}
		if err := t.process(ctx, tf, data[:end]); err != nil {
			return consumed, err
		}
		consumed += end
		if n < len(t.buf) {
			break // read up to the end as it was; the caller polls again
		}
	}
	if consumed > 0 {
		tf.lastData = time.Now()
	}
	return consumed, nil
}

func (t *tailer) restart(tf *tailedFile) {
	tf.offset, tf.written, tf.headLen, tf.head = 0, 0, 0, 0
	tf.epoch = t.pos.reset(position{Log: t.spec.name, Path: tf.path, Dev: tf.id.Dev, Ino: tf.id.Ino})
}

// process sends a chunk of complete lines to Loki, the output file and the
// recent lines, then moves the file's read position past it. Lines below
// the log's level go nowhere (they are still counted). Lines before
// tf.written went to the output file before a restart and go only to Loki.
// When ctx ends before Loki takes the lines, nothing is written and the
// position stays.
func (t *tailer) process(ctx context.Context, tf *tailedFile, chunk []byte) error {
	now := time.Now()
	t.recent = t.recent[:0]
	t.kept = t.kept[:0]
	var (
		counts  [6]int
		entries []push.Entry
		size    int
		skipped bool // some line is not written as read: filtered or written before
	)
	off := tf.offset
	rest := chunk
	for len(rest) > 0 {
		var raw []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i+1], rest[i+1:]
		} else {
			raw, rest = rest, nil
		}
		off += int64(len(raw))
		line := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte{'\n'}), []byte{'\r'})
		lvl := parseLevelAs(line, t.spec.format)
		idx := levelIndex(lvl)
		counts[idx]++
		if !t.spec.keeps(idx) {
			skipped = true
			continue
		}
		// Strictly increasing timestamps: Loki drops a line identical to
		// another of the same stream with the same timestamp.
		if !now.After(t.lastTime) {
			now = t.lastTime.Add(time.Nanosecond)
		}
		t.lastTime = now
		s := string(line)
		if t.ship != nil {
			entries = append(entries, push.Entry{Timestamp: now, Line: s})
			size += len(s)
		}
		if off <= tf.written {
			skipped = true
			continue
		}
		t.kept = append(t.kept, raw...)
		t.recent = append(t.recent, Line{Time: now, Log: t.spec.name, File: tf.path, Level: lvl, Line: s})
	}
	end := tf.offset + int64(len(chunk))
	if t.ship != nil {
		id, epoch, pos := tf.id, tf.epoch, t.pos
		sh := &shipment{
			stats: t.stats, log: t.spec.name, stream: t.spec.stream, entries: entries, bytes: size,
			done: func(acked bool) { pos.resolve(id, epoch, end, acked) },
		}
		if err := t.ship.ship(ctx, sh); err != nil {
			return err
		}
	}
	out := chunk
	if skipped {
		out = t.kept
	}
	if t.out != nil && len(out) > 0 {
		_, err := t.out.Write(out)
		if err != nil {
			t.metrics.outputErrors.WithLabelValues(t.spec.name).Inc()
			t.logger.Error("writing lines to output file", "file", t.spec.file, "lines", len(t.recent), "err", err)
		}
		t.stats.outputWritten(t.spec.file, err)
	}
	if t.spec.echo != nil && len(out) > 0 {
		echoMtx.Lock()
		_, err := t.spec.echo.Write(out)
		echoMtx.Unlock()
		if err != nil {
			t.metrics.outputErrors.WithLabelValues(t.spec.name).Inc()
		}
	}
	t.ring.add(t.recent)
	t.stats.lines.Add(uint64(countAll(counts)))
	t.stats.lastLine.Store(now.UnixNano())
	for i, c := range counts {
		if c > 0 {
			t.levelCtrs[i].Add(float64(c))
		}
	}
	t.bytesCtr.Add(float64(len(chunk)))

	if tf.headLen < headSize {
		// The head grows with the file until it is headSize long.
		n := int(tf.offset) + len(chunk)
		if n > headSize {
			n = headSize
		}
		if n > tf.headLen {
			if int(tf.offset) == 0 {
				tf.head = crc32.ChecksumIEEE(chunk[:n])
			} else {
				b := make([]byte, n)
				if _, err := tf.f.ReadAt(b, 0); err == nil {
					tf.head = crc32.ChecksumIEEE(b)
				} else {
					n = tf.headLen
				}
			}
			tf.headLen = n
		}
	}
	tf.offset = end
	tf.written = max(tf.written, end)
	t.pos.advance(tf.id, tf.epoch, tf.path, end, tf.headLen, tf.head, t.ship == nil)
	return nil
}

// echoMtx keeps chunks echoed to vigil's stdout or stderr by different logs
// whole.
var echoMtx sync.Mutex

func countAll(c [6]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func levelIndex(l string) int {
	for i, v := range levels {
		if v == l {
			return i
		}
	}
	return len(levels) - 1
}

// idOf returns a file's device and inode.
func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true //nolint:unconvert // Dev's type differs between platforms.
}

// findInode looks in dir for a regular file with the given device and inode.
func findInode(dir string, id fileID) (string, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if got, ok := idOf(fi); ok && got == id {
			return p, true
		}
	}
	return "", false
}

// logSpec is one configured log, resolved.
type logSpec struct {
	name       string
	paths      []string
	file       string
	maxSizeMB  int
	maxFiles   int
	maxAgeDays int
	compress   bool
	lokiLabels model.LabelSet
	// stream is the Loki stream's labels: lokiLabels, service, environment.
	stream string
	// minLevel is the index in levels of the least severe level kept; lines
	// of unknown level are always kept (a stack trace's continuation lines
	// name none).
	minLevel int
	// format is "json", "text" or "" (any): where ParseLevel looks.
	format string
	// echo receives every kept line besides the output file (collectors.logs
	// output: stdout, stderr or both); nil for none.
	echo io.Writer
}

// keeps reports whether a line of level index idx passes the log's level.
func (s *logSpec) keeps(idx int) bool {
	return idx >= s.minLevel || levels[idx] == LevelUnknown
}
