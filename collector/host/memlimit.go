package host

// unlimited is where a cgroup memory limit stops meaning anything: v1 writes
// "no limit" as a page-rounded 2^63.
const unlimited = 1 << 62

// MemoryLimit returns the memory limit of the process's own cgroup (v2
// memory.max, v1 memory.limit_in_bytes), and false when there is none or it
// cannot be read: vigil's main sets Go's memory limit from it, and the
// app's memory_usage signal is a percentage of it.
func MemoryLimit() (uint64, bool) { return MemoryLimitIn("/proc", "/sys/fs/cgroup") }

// MemoryLimitIn is MemoryLimit with /proc at procRoot and the cgroup
// hierarchy at cgroupRoot, for tests with fake trees.
func MemoryLimitIn(procRoot, cgroupRoot string) (uint64, bool) {
	paths, err := findCgroup(procRoot, cgroupRoot)
	if err != nil {
		return 0, false
	}
	var limit uint64
	if paths.v2 {
		limit, _, err = cgroupV2Memory(paths.memory)
	} else {
		limit, _, err = cgroupV1Memory(paths.memory)
	}
	if err != nil || limit == 0 || limit >= unlimited {
		return 0, false
	}
	return limit, true
}
