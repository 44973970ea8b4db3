package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
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

// The heap of a sidecar scraping many series is mostly the TSDB head and
// the scrape cache, which live as long as the series do, while what vigil
// allocates between collections is small: at 100,000 series about 0.3 MB
// a second once the series are known. A GOGC of
// sidecarGCPercent lets the heap grow by half its live size before the next
// collection, 68 MB of resident memory held for nothing at 137 MB live. So
// once the live heap passes gcHeadroom*100/sidecarGCPercent, GOGC is
// lowered to keep the growth near gcHeadroom bytes, and no lower than
// gcMinPercent, so that a burst of allocation (a query over every series)
// does not make the collector run back to back.
//
// A lower GOGC also means more collections for the same allocation, and
// each collection costs CPU in proportion to the live heap (about 1 ms per
// MB live on a 2-core test machine). While vigil allocates little (scrapes
// of known series) that is nothing; while it allocates fast (the signal
// rules reading 100,000 request series allocate 120 MB/s) a 32 MB headroom
// made the collector run four times a second: 0.70 cores against 0.44
// with GOGC 50 (docs/benchmarks.md). So the headroom is also at least what
// vigil allocates in gcCycleEvery seconds: the tuner makes the collector
// run no more often than about once per gcCycleEvery, unless GOGC 50,
// vigil's setting before the tuner, already did.
const (
	gcHeadroom   = 32 << 20
	gcMinPercent = 20
	gcCycleEvery = 5 // seconds
	// gcTuneEvery is how often the live heap is read. The first scrape of
	// a large target raises it within seconds; until the next reading the
	// previous GOGC holds, which is never above sidecarGCPercent.
	gcTuneEvery = 5 * time.Second
)

// gcPercentFor is the GOGC for a live heap of live bytes while vigil
// allocates alloc bytes a second.
func gcPercentFor(live, alloc uint64) int {
	if live == 0 {
		return sidecarGCPercent
	}
	headroom := max(uint64(gcHeadroom), min(alloc, math.MaxUint64/gcCycleEvery)*gcCycleEvery)
	if headroom >= live {
		return sidecarGCPercent
	}
	return max(min(int(headroom*100/live), sidecarGCPercent), gcMinPercent)
}

// Go's scavenger returns free heap pages to the system only above 110% of
// the heap goal, so the pages of a burst (the first scrape of a large
// target builds all its series at once) stay resident long after the heap
// has shrunk: 19 MB at 100,000 series. When tuneGC has just lowered GOGC
// because the live heap grew, and the heap then holds more than
// gcReleaseAbove bytes beyond its new goal, it hands them back once (a
// forced collection and the release of the free pages). It does not do so
// in the steady state: a forced collection empties the scrape's buffer
// pools, whose refill would bring the pages back.
const gcReleaseAbove = 8 << 20

// heapMetrics are the runtime/metrics tuneGC reads, in this order.
var heapMetrics = [...]string{
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/allocs:bytes",
}

// gcStep is one reading of tuneGC: from the GOGC in force (current),
// whether the last reading lowered it, the live heap, its goal, the heap's
// resident bytes and the allocation rate (bytes a second), it returns the
// GOGC to have, whether to set it (set), whether this reading lowered it,
// and whether to hand free pages back (free).
func gcStep(current int, lowered bool, live, goal, resident, alloc uint64) (next int, nowLowered, set, free bool) {
	// Changes of a point or two are not worth a call into the runtime.
	if p := gcPercentFor(live, alloc); p < current-2 || p > current+2 ||
		(p != current && (p == sidecarGCPercent || p == gcMinPercent)) {
		// The goal moves with it: look again next time.
		return p, p < current, true, false
	}
	return current, false, false, lowered && resident > goal+gcReleaseAbove
}

// allocRate is the allocation rate (bytes a second) tuneGC goes by, from
// the previous one and the runtime's count of bytes allocated at the last
// reading and now: the rate over the last gcTuneEvery, or half the
// previous rate if that is more, so that GOGC comes down over a few
// readings after a burst of allocation rather than at once.
func allocRate(prev, before, now uint64) uint64 {
	if before == 0 || now < before {
		return prev
	}
	return max((now-before)/uint64(gcTuneEvery/time.Second), prev/2)
}

// tuneGC sets GOGC from the live heap every gcTuneEvery (see gcHeadroom)
// and releases what a burst left resident (see gcReleaseAbove) until stop
// is called. The caller runs it only when GOGC is not in the environment.
func tuneGC(logger *slog.Logger) (stop func()) {
	done := make(chan struct{})
	go func() {
		samples := make([]metrics.Sample, len(heapMetrics))
		for i, name := range heapMetrics {
			samples[i].Name = name
		}
		t := time.NewTicker(gcTuneEvery)
		defer t.Stop()
		current := sidecarGCPercent
		// lowered is whether the last reading lowered GOGC.
		lowered := false
		// allocated is the runtime's count of bytes allocated at the last
		// reading, rate the allocation rate (allocRate).
		var allocated, rate uint64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(samples)
			var v [len(heapMetrics)]uint64
			for i, s := range samples {
				if s.Value.Kind() != metrics.KindUint64 {
					logger.Warn("Go runtime does not report its heap: GOGC stays", "metric", s.Name, "GOGC", current)
					return
				}
				v[i] = s.Value.Uint64()
			}
			rate, allocated = allocRate(rate, allocated, v[5]), v[5]
			var set, free bool
			current, lowered, set, free = gcStep(current, lowered, v[0], v[1], v[2]+v[3]+v[4], rate)
			if set {
				debug.SetGCPercent(current)
			}
			if free {
				debug.FreeOSMemory()
			}
		}
	}()
	return func() { close(done) }
}
