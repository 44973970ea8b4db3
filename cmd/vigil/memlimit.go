package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// memLimitRatio is the share of the container's memory limit that Go's
// garbage collector aims to stay under, as Prometheus's
// --auto-gomemlimit.ratio: the rest is for memory Go does not manage
// (thread stacks, the TSDB's mapped files).
const memLimitRatio = 0.9

// setMemoryLimit sets Go's soft memory limit to memLimitRatio of the limit
// that limit reports (the container's cgroup limit), so that the collector
// works harder before the kernel kills vigil rather than after. GOMEMLIMIT
// in the environment wins; without a limit nothing changes. It returns the
// limit set, or 0.
func setMemoryLimit(logger *slog.Logger, limit func() (uint64, bool)) int64 {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("Go memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return 0
	}
	cgroup, ok := limit()
	if !ok {
		return 0
	}
	goLimit := int64(float64(cgroup) * memLimitRatio)
	debug.SetMemoryLimit(goLimit)
	logger.Info("Go memory limit set from the container's memory limit", "container_limit_bytes", cgroup,
		"go_memory_limit_bytes", goLimit)
	return goLimit
}
