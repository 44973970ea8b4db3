package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// releaseStartupPages tells the kernel, once vigil has warmed up, that the
// pages of its own executable are cold. vigil links Prometheus's scrape,
// TSDB, rules and API packages; their package initialisers touch code and
// read-only data spread over most of the 50 MB binary, and the kernel's
// fault-around maps their neighbours too, so about 35 MB of file-backed pages
// stay resident although only about 10 MB is used after start-up. These are
// clean pages of the executable: MADV_PAGEOUT drops them, and those vigil
// still uses come back from the page cache on first touch. Writable mappings
// (data, heap) are left alone. Set VIGIL_KEEP_STARTUP_PAGES=1 to skip it.
func releaseStartupPages(logger *slog.Logger, after time.Duration, stop <-chan struct{}) {
	if os.Getenv("VIGIL_KEEP_STARTUP_PAGES") != "" {
		return
	}
	select {
	case <-time.After(after):
	case <-stop:
		return
	}
	before := residentFileKB()
	n, err := pageOutExecutable()
	if err != nil {
		logger.Debug("could not release start-up pages", "err", err)
		return
	}
	logger.Debug("released start-up pages of the executable", "mappings", n,
		"file_backed_kb_before", before, "file_backed_kb_after", residentFileKB())
}

// pageOutExecutable advises MADV_PAGEOUT on every read-only mapping of the
// running executable and returns how many mappings it advised.
func pageOutExecutable() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(s.Text())
		if len(fields) < 6 || fields[5] != exe || strings.ContainsRune(fields[1], 'w') {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			// EINVAL before Linux 5.4, which has no MADV_PAGEOUT.
			return n, fmt.Errorf("madvise %s: %w", fields[0], errno)
		}
		n++
	}
	return n, s.Err()
}

// residentFileKB is RssFile of this process, in kB; 0 when unknown.
func residentFileKB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb
		}
	}
	return 0
}
