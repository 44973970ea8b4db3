package logs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRotatedWhileStopped: a file renamed out of the glob while vigil was
// stopped is found by inode and read to its end; the new file at the path
// is read from its start.
func TestRotatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	src, dataDir := filepath.Join(dir, "src"), filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	cfg := testConfig(src, out, "")
	a := filepath.Join(src, "a.log")

	appendLines(t, a, 0, 50)
	r1 := start(t, testOptions(dataDir), cfg)
	eventually(t, "50 lines", func() bool { return sumLines(r1) == 50 })
	r1.stop(t)

	appendLines(t, a, 50, 60)
	require.NoError(t, os.Rename(a, a+".1"))
	appendLines(t, a, 60, 80)

	r2 := start(t, testOptions(dataDir), cfg)
	eventually(t, "30 more lines", func() bool { return sumLines(r2) == 30 })
	eventually(t, "the rotated file to be drained", func() bool {
		return r2.m.pos.forLog("app") != nil && len(r2.m.pos.forLog("app")) == 1
	})
	r2.stop(t)
	requireExactlyOnce(t, "output file", outputLines(t, out), 80)
}

// TestRewrittenFile: a file cut and rewritten past its old offset between
// two polls is recognised by its first bytes and read from its start.
func TestRewrittenFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o755))
	out := filepath.Join(dir, "out", "app.log")
	r := start(t, testOptions(filepath.Join(dir, "data")), testConfig(src, out, ""))
	a := filepath.Join(src, "a.log")

	appendLines(t, a, 0, 20)
	eventually(t, "20 lines", func() bool { return sumLines(r) == 20 })
	f, err := os.OpenFile(a, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	writeLines(t, f, 20, 80)
	require.NoError(t, f.Close())
	eventually(t, "80 lines", func() bool { return sumLines(r) == 80 })
	r.stop(t)
	requireExactlyOnce(t, "output file", outputLines(t, out), 80)
}
