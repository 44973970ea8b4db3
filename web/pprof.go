package web

import (
	"runtime"
	rpprof "runtime/pprof"
	"strconv"

	"github.com/gin-gonic/gin"
)

// pprofProfile serves one of the Go runtime's named profiles (heap, allocs,
// goroutine, threadcreate, block, mutex) for `go tool pprof`, as
// Prometheus's /debug/pprof/<name> does: ?debug=1 for text, ?gc=1 to
// collect before a heap profile. It is behind manage_roles: a profile names
// the code paths that hold memory, which is for the operator alone. CPU
// profiles, traces and the command line are not served.
func (h *Handler) pprofProfile(c *gin.Context) {
	p := rpprof.Lookup(c.Param("name"))
	if p == nil {
		writeNotFound(c.Writer)
		return
	}
	if p.Name() == "heap" && c.Query("gc") != "" {
		runtime.GC()
	}
	debug, _ := strconv.Atoi(c.Query("debug"))
	c.Header("X-Content-Type-Options", "nosniff")
	if debug != 0 {
		c.Header("Content-Type", "text/plain; charset=utf-8")
	} else {
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Disposition", `attachment; filename="`+p.Name()+`"`)
	}
	_ = p.WriteTo(c.Writer, debug)
}
