package collector

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// blockPaths are where Linux tells which device holds a directory and
// whether that device is dm-crypt; tests point them at fixture files.
type blockPaths struct {
	// MountInfo is /proc/self/mountinfo.
	MountInfo string
	// SysDevBlock is /sys/dev/block, with one MAJ:MIN entry per device.
	SysDevBlock string
}

var linuxBlockPaths = blockPaths{MountInfo: "/proc/self/mountinfo", SysDevBlock: "/sys/dev/block"}

// errUnknownDevice means the directory is on a filesystem without a block
// device of its own (overlay, tmpfs, NFS), so vigil cannot tell whether the
// disk underneath is encrypted.
var errUnknownDevice = errors.New("no block device of its own")

// dataDirDevice is the mount that holds a directory and whether its device
// is dm-crypt encrypted (itself or a device under it, as with LVM on LUKS).
type dataDirDevice struct {
	MountPoint string
	Device     string // MAJ:MIN
	Source     string // the mount source, such as /dev/mapper/data
	Encrypted  bool
}

// checkDataDir finds the mount of dir in paths.MountInfo and reads the
// device-mapper uuid of its device: a CRYPT- prefix is dm-crypt (LUKS or
// plain).
func checkDataDir(paths blockPaths, dir string) (dataDirDevice, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dataDirDevice{}, fmt.Errorf("data_dir %q: %w", dir, err)
	}
	abs = existingAncestor(abs)
	f, err := os.Open(paths.MountInfo)
	if err != nil {
		return dataDirDevice{}, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var best dataDirDevice
	var fstype string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent MAJ:MIN root mountpoint options [optional...] - fstype source superoptions
		fs := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fs {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if len(fs) < 5 || sep < 0 || sep+2 >= len(fs) {
			continue
		}
		mp := unescapeMount(fs[4])
		if !underMount(abs, mp) || len(mp) < len(best.MountPoint) {
			continue
		}
		// A later mount on the same point hides the earlier one.
		best = dataDirDevice{MountPoint: mp, Device: fs[2], Source: unescapeMount(fs[sep+2])}
		fstype = fs[sep+1]
	}
	if err := sc.Err(); err != nil {
		return dataDirDevice{}, fmt.Errorf("read mounts: %w", err)
	}
	if best.MountPoint == "" {
		return dataDirDevice{}, fmt.Errorf("no mount holds %s", abs)
	}
	if strings.HasPrefix(best.Device, "0:") {
		return best, fmt.Errorf("%s is on %s (%s): %w", abs, best.MountPoint, fstype, errUnknownDevice)
	}
	best.Encrypted, err = isCrypt(paths.SysDevBlock, best.Device, 0)
	return best, err
}

// isCrypt reports whether the device MAJ:MIN, or a device it is built on,
// is dm-crypt.
func isCrypt(sysDevBlock, dev string, depth int) (bool, error) {
	if depth > 8 {
		return false, nil
	}
	base := filepath.Join(sysDevBlock, dev)
	if _, err := os.Stat(base); err != nil {
		return false, fmt.Errorf("device %s: %w", dev, err)
	}
	if uuid, err := os.ReadFile(filepath.Join(base, "dm", "uuid")); err == nil && strings.HasPrefix(string(uuid), "CRYPT-") {
		return true, nil
	}
	slaves, _ := os.ReadDir(filepath.Join(base, "slaves"))
	for _, s := range slaves {
		b, err := os.ReadFile(filepath.Join(base, "slaves", s.Name(), "dev"))
		if err != nil {
			continue
		}
		if ok, _ := isCrypt(sysDevBlock, strings.TrimSpace(string(b)), depth+1); ok {
			return true, nil
		}
	}
	return false, nil
}

// existingAncestor returns p, or its nearest parent that exists, with
// symlinks resolved: data_dir may not be created yet.
func existingAncestor(p string) string {
	for q := p; ; q = filepath.Dir(q) {
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(r, strings.TrimPrefix(p, q))
		}
		if q == filepath.Dir(q) {
			return p
		}
	}
}

func underMount(p, mp string) bool {
	return mp == "/" || p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
