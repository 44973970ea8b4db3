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
type position struct {
	Log     string `json:"log"`
	Path    string `json:"path"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Offset  int64  `json:"offset"`
	HeadLen int    `json:"head_len"`
	Head    uint32 `json:"head_crc32"`
}

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

// set records a file's position.
func (p *positions) set(pos position) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	p.files[pos.id()] = pos
	p.dirty = true
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
