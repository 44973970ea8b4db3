// Package proc holds what the benchmarks share: a loopback listener and a
// process's CPU time and memory read from /proc.
package proc

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
)

// Listen listens on a free loopback port, or ends the benchmark.
func Listen() net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return l
}

// FreeAddr is a loopback address free a moment ago, for a process to listen on.
func FreeAddr() string {
	l := Listen()
	defer l.Close()
	return l.Addr().String()
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// StatCPU is the CPU time in /proc/<pid>/stat content: user + system, and
// with children the time of waited-for children too (cutime, cstime).
func StatCPU(stat []byte, children bool) float64 {
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 > len(stat) {
		return 0
	}
	f := strings.Fields(string(stat[i+2:]))
	idx := []int{11, 12}
	if children {
		idx = append(idx, 13, 14)
	}
	var total float64
	for _, j := range idx {
		if j < len(f) {
			v, _ := strconv.ParseFloat(f[j], 64)
			total += v
		}
	}
	return total / clockTicks
}

// CPUSeconds is pid's user + system CPU time, 0 when it cannot be read.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return StatCPU(b, false)
}

// Memory is a process's memory in MB, from /proc/<pid>/status.
type Memory struct {
	RSS  float64 // VmRSS
	HWM  float64 // VmHWM, the peak RSS
	Anon float64 // RssAnon: the process's own pages, without its executable's
}

// MemoryOf reads pid's memory; zero when it cannot be read.
func MemoryOf(pid int) Memory {
	var m Memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb / 1024
		case "VmHWM:":
			m.HWM = kb / 1024
		case "RssAnon:":
			m.Anon = kb / 1024
		}
	}
	return m
}
