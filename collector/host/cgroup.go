package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupPaths are the directories of the process's own cgroup. With cgroup
// v2 all three are the one directory of the unified hierarchy; with v1 each
// controller has its own. An empty path means that controller is not found,
// and host figures are used for it.
type cgroupPaths struct {
	v2      bool
	cpu     string // v2: cpu.max, cpu.stat; v1: cpu.cfs_quota_us, cpu.cfs_period_us
	cpuacct string // v1 only: cpuacct.usage
	memory  string // v2: memory.max, memory.current, memory.stat; v1: memory.limit_in_bytes, ...
}

// errNoLimit says a cgroup sets no limit ("max", -1, or no such file).
var errNoLimit = errors.New("no limit")

// findCgroup locates the process's cgroup from <procRoot>/self/cgroup.
// A unified hierarchy (cgroup.controllers at the root) is v2; otherwise the
// v1 controllers are looked for, each under its own mount (cpu and cpuacct
// are often mounted together as "cpu,cpuacct").
//
// Without a cgroup namespace, the path in /proc/self/cgroup is the host's
// (/docker/<id>) while the container sees its own cgroup at the mount's
// root, so a path that does not exist falls back to the root.
func findCgroup(procRoot, cgroupRoot string) (cgroupPaths, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return cgroupPaths{}, fmt.Errorf("read own cgroup: %w", err)
	}
	type line struct {
		controllers []string
		path        string
	}
	var lines []line
	unified := -1
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) != 3 {
			continue
		}
		l := line{path: fields[2]}
		if fields[1] != "" {
			l.controllers = strings.Split(fields[1], ",")
		}
		lines = append(lines, l)
		if fields[0] == "0" && fields[1] == "" {
			unified = len(lines) - 1
		}
	}
	if err := sc.Err(); err != nil {
		return cgroupPaths{}, fmt.Errorf("read own cgroup: %w", err)
	}

	if isFile(filepath.Join(cgroupRoot, "cgroup.controllers")) {
		if unified < 0 {
			return cgroupPaths{}, fmt.Errorf("unified hierarchy at %s but no v2 entry in %s/self/cgroup", cgroupRoot, procRoot)
		}
		dir := within(cgroupRoot, lines[unified].path)
		return cgroupPaths{v2: true, cpu: dir, cpuacct: dir, memory: dir}, nil
	}

	v1 := func(controller string) string {
		for _, l := range lines {
			if !slices.Contains(l.controllers, controller) {
				continue
			}
			for _, mount := range []string{controller, strings.Join(l.controllers, ",")} {
				if m := filepath.Join(cgroupRoot, mount); isDir(m) {
					return within(m, l.path)
				}
			}
		}
		return ""
	}
	p := cgroupPaths{cpu: v1("cpu"), cpuacct: v1("cpuacct"), memory: v1("memory")}
	if p.cpu == "" && p.memory == "" {
		return p, fmt.Errorf("no cpu or memory cgroup under %s", cgroupRoot)
	}
	return p, nil
}

// within returns root/path when that directory exists, else root.
func within(root, path string) string {
	if dir := filepath.Join(root, path); isDir(dir) {
		return dir
	}
	return root
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// cgroupCPU returns the CPU limit in cores and the CPU seconds used by the
// cgroup, and false when no CPU limit applies or it cannot be read.
func (c *Collector) cgroupCPU() (limit, usage float64, ok bool) {
	var err error
	if c.cgroup.v2 {
		limit, usage, err = cgroupV2CPU(c.cgroup.cpu)
	} else {
		limit, usage, err = cgroupV1CPU(c.cgroup.cpu, c.cgroup.cpuacct)
	}
	if err != nil {
		if !errors.Is(err, errNoLimit) {
			c.logger.Debug("cannot read the cgroup's CPU figures, using the host's", "err", err)
		}
		return 0, 0, false
	}
	return limit, usage, true
}

func cgroupV2CPU(dir string) (limit, usage float64, err error) {
	if dir == "" {
		return 0, 0, errNoLimit
	}
	data, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, errNoLimit // the root cgroup has no cpu.max
	}
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 || len(fields) > 2 {
		return 0, 0, fmt.Errorf("%s/cpu.max: unexpected %q", dir, data)
	}
	if fields[0] == "max" {
		return 0, 0, errNoLimit
	}
	quota, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s/cpu.max: %w", dir, err)
	}
	period := 100000.0 // the kernel's default when only the quota is written
	if len(fields) == 2 {
		if period, err = strconv.ParseFloat(fields[1], 64); err != nil {
			return 0, 0, fmt.Errorf("%s/cpu.max: %w", dir, err)
		}
	}
	if quota <= 0 || period <= 0 {
		return 0, 0, errNoLimit
	}
	usec, err := statField(filepath.Join(dir, "cpu.stat"), "usage_usec")
	if err != nil {
		return 0, 0, err
	}
	return quota / period, float64(usec) / 1e6, nil
}

func cgroupV1CPU(cpuDir, cpuacctDir string) (limit, usage float64, err error) {
	if cpuDir == "" || cpuacctDir == "" {
		return 0, 0, errNoLimit
	}
	quota, err := readInt(filepath.Join(cpuDir, "cpu.cfs_quota_us"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, errNoLimit // a kernel without CFS bandwidth control
	}
	if err != nil {
		return 0, 0, err
	}
	if quota <= 0 { // -1 is unlimited
		return 0, 0, errNoLimit
	}
	period, err := readInt(filepath.Join(cpuDir, "cpu.cfs_period_us"))
	if err != nil {
		return 0, 0, err
	}
	if period <= 0 {
		return 0, 0, errNoLimit
	}
	ns, err := readInt(filepath.Join(cpuacctDir, "cpuacct.usage"))
	if err != nil {
		return 0, 0, err
	}
	return float64(quota) / float64(period), float64(ns) / 1e9, nil
}

// cgroupMemory returns the memory limit and working set (usage minus
// inactive file cache, which the kernel reclaims before it kills) of the
// cgroup, and false when no limit applies or it cannot be read. A limit at
// or above the host's memory is no limit: v1 writes "unlimited" as a huge
// page-rounded number, and a percent of memory the host does not have
// would understate the pressure.
func (c *Collector) cgroupMemory(hostTotal uint64) (limit, workingSet uint64, ok bool) {
	var err error
	if c.cgroup.v2 {
		limit, workingSet, err = cgroupV2Memory(c.cgroup.memory)
	} else {
		limit, workingSet, err = cgroupV1Memory(c.cgroup.memory)
	}
	if err != nil {
		if !errors.Is(err, errNoLimit) {
			c.logger.Debug("cannot read the cgroup's memory figures, using the host's", "err", err)
		}
		return 0, 0, false
	}
	if limit == 0 || limit >= hostTotal {
		return 0, 0, false
	}
	return limit, workingSet, true
}

func cgroupV2Memory(dir string) (limit, workingSet uint64, err error) {
	if dir == "" {
		return 0, 0, errNoLimit
	}
	data, err := os.ReadFile(filepath.Join(dir, "memory.max"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, errNoLimit
	}
	if err != nil {
		return 0, 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, 0, errNoLimit
	}
	if limit, err = strconv.ParseUint(s, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%s/memory.max: %w", dir, err)
	}
	current, err := readInt(filepath.Join(dir, "memory.current"))
	if err != nil {
		return 0, 0, err
	}
	inactive, err := statField(filepath.Join(dir, "memory.stat"), "inactive_file")
	if err != nil {
		return 0, 0, err
	}
	return limit, workingSetOf(current, inactive), nil
}

func cgroupV1Memory(dir string) (limit, workingSet uint64, err error) {
	if dir == "" {
		return 0, 0, errNoLimit
	}
	l, err := readInt(filepath.Join(dir, "memory.limit_in_bytes"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, errNoLimit
	}
	if err != nil {
		return 0, 0, err
	}
	if l <= 0 {
		return 0, 0, errNoLimit
	}
	usage, err := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return 0, 0, err
	}
	// total_ counts the hierarchy below too, as usage_in_bytes does.
	inactive, err := statField(filepath.Join(dir, "memory.stat"), "total_inactive_file")
	if err != nil {
		return 0, 0, err
	}
	return uint64(l), workingSetOf(usage, inactive), nil
}

func workingSetOf(usage, inactive int64) uint64 {
	return uint64(max(usage-inactive, 0))
}

// readInt reads a file that holds one integer.
func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// statField reads one "key value" line of a cgroup stat file.
func statField(path, key string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
