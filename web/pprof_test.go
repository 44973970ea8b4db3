package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPprofHeap: the heap profile needs manage_roles, is a gzipped pprof
// profile with in-use samples, and an unknown profile is 404.
func TestPprofHeap(t *testing.T) {
	f := newAuthFixture(t)
	env := newTestEnv(t, f.withAuth)

	rec := serve(env.h, "127.0.0.1", http.MethodGet, "/debug/pprof/heap", "", nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/debug/pprof/heap", bearer(f.tokens["viewer"]), nil)
	require.Equal(t, http.StatusForbidden, rec.Code)

	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/debug/pprof/heap?gc=1", bearer(f.tokens["admin"]), nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	// A pprof profile is a gzipped protobuf whose string table names the
	// heap's sample types.
	zr, err := gzip.NewReader(rec.Body)
	require.NoError(t, err)
	raw, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.True(t, bytes.Contains(raw, []byte("inuse_space")), "no inuse_space sample type in the profile")

	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/debug/pprof/goroutine?debug=1", bearer(f.tokens["admin"]), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, strings.HasPrefix(rec.Body.String(), "goroutine profile:"), rec.Body.String())

	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/debug/pprof/cmdline", bearer(f.tokens["admin"]), nil)
	require.Equal(t, http.StatusNotFound, rec.Code)
}
