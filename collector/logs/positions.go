package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
)

// fileID names a file by device and inode: it survives renames.
type fileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// position is how far one file has been read. Head is a checksum of the
// file's first HeadLen bytes: when the bytes at the start of the file change
// (the file was truncated and rewritten past the old offset, or the inode was
// reused by a new file) the offset no longer applies.
//
// Offset is where the next start reads from: every line before it is done
// (with Loki configured, Loki stored it). Written is how far lines went to
// the output file and the recent lines; with Loki it runs ahead of Offset by
// the lines not yet acknowledged, and after a restart those lines go to Loki
// again but not to the output file.
type position struct {
	Log     string `json:"log"`
	Path    string `json:"path"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Offset  int64  `json:"offset"`
	Written int64  `json:"written"`
	HeadLen int    `json:"head_len"`
	Head    uint32 `json:"head_crc32"`

	// epoch names one reading of the file from its start; an
	// acknowledgement of an older reading (before a truncation) is ignored.
	epoch uint64
	// pending counts chunks handed to Loki and not yet resolved.
	pending int
}

// epochs hands out position epochs, unique within the process.
var epochs atomic.Uint64

func (p position) id() fileID { return fileID{Dev: p.Dev, Ino: p.Ino} }

// positionsFile is the on-disk form of the positions.
type positionsFile struct {
	Version int        `json:"version"`
	Files   []position `json:"files"`
}

// positions holds every tailed file's offset and writes them to
// <data_dir>/logs/positions.json atomically (a temporary file renamed over
// the old one, after fsync), so a crash leaves the old or the new file,
// never a torn one.
type positions struct {
	path string

	mtx   sync.Mutex
	files map[fileID]position
	dirty bool
	// saving serialises saves, so an older snapshot never lands last.
	saving sync.Mutex
}

// loadPositions reads the positions file; a missing file is empty.
func loadPositions(path string) (*positions, error) {
	p := &positions{path: path, files: map[fileID]position{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	var pf positionsFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("decode positions %s: %w", path, err)
	}
	for _, f := range pf.Files {
		// Files written before "written" existed.
		f.Written = max(f.Written, f.Offset)
		f.epoch = epochs.Add(1)
		p.files[f.id()] = f
	}
	return p, nil
}

// forLog returns the positions saved for one log.
func (p *positions) forLog(log string) []position {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	var out []position
	for _, f := range p.files {
		if f.Log == log {
			out = append(out, f)
		}
	}
	return out
}

// get returns a file's position.
func (p *positions) get(id fileID) (position, bool) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	pos, ok := p.files[id]
	return pos, ok
}

// reset records a file read from offset 0 from now on, under a new epoch,
// which it returns.
func (p *positions) reset(pos position) uint64 {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	pos.Offset, pos.Written, pos.pending = 0, 0, 0
	pos.epoch = epochs.Add(1)
	p.files[pos.id()] = pos
	p.dirty = true
	return pos.epoch
}

// advance records that a file of the given epoch was read and written up to
// read (with head as its checksum and path as its name). done says the
// lines are finished (no Loki): Offset moves too; otherwise one more chunk
// waits for Loki's answer (see resolve).
func (p *positions) advance(id fileID, epoch uint64, path string, read int64, headLen int, head uint32, done bool) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	pos, ok := p.files[id]
	if !ok || pos.epoch != epoch {
		return
	}
	pos.Path, pos.Written, pos.HeadLen, pos.Head = path, max(pos.Written, read), headLen, head
	if done {
		pos.Offset = max(pos.Offset, read)
	} else {
		pos.pending++
	}
	p.files[id] = pos
	p.dirty = true
}

// resolve records Loki's answer for a chunk that ends at end: acked moves
// Offset there; otherwise the client stopped before an answer and the chunk
// is read again at the next start.
func (p *positions) resolve(id fileID, epoch uint64, end int64, acked bool) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	pos, ok := p.files[id]
	if !ok || pos.epoch != epoch {
		return
	}
	pos.pending--
	if acked && end > pos.Offset {
		pos.Offset = end
		p.dirty = true
	}
	p.files[id] = pos
}

// rename records a file's new path.
func (p *positions) rename(id fileID, path string) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if pos, ok := p.files[id]; ok && pos.Path != path {
		pos.Path = path
		p.files[id] = pos
		p.dirty = true
	}
}

// remove forgets a file.
func (p *positions) remove(id fileID) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if _, ok := p.files[id]; ok {
		delete(p.files, id)
		p.dirty = true
	}
}

// save writes the positions if they changed since the last save.
func (p *positions) save() error {
	p.saving.Lock()
	defer p.saving.Unlock()
	p.mtx.Lock()
	if !p.dirty {
		p.mtx.Unlock()
		return nil
	}
	pf := positionsFile{Version: 1, Files: make([]position, 0, len(p.files))}
	for _, f := range p.files {
		pf.Files = append(pf.Files, f)
	}
	p.dirty = false
	p.mtx.Unlock()

	sort.Slice(pf.Files, func(i, j int) bool {
		a, b := pf.Files[i], pf.Files[j]
		if a.Log != b.Log {
			return a.Log < b.Log
		}
		return a.Path < b.Path
	})
	data, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode positions: %w", err)
	}
	if err := writeFileAtomic(p.path, data); err != nil {
		p.mtx.Lock()
		p.dirty = true
		p.mtx.Unlock()
		return err
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write positions: %w", err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write positions %s: %w", path, werr)
	}
	return nil
}
