package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// seedPath is the user's specification, relative to the repository's root.
// A clone has no ../shared: SeedDocument then reads the copy committed in
// internal/testutil/testdata, which must be kept equal to it.
const seedPath = "../shared/seed/000_263c6f56cf808b22.txt"

// SeedDocument returns the seed document and where it was read from: the
// specification itself when it is beside the repository, else the committed
// copy (a clone has no ../shared).
func SeedDocument(t testing.TB) (text, from string) {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Dir(self)
	root := filepath.Join(dir, "..", "..")
	for _, p := range []string{filepath.Join(root, filepath.FromSlash(seedPath)), filepath.Join(dir, "testdata", "seed.md")} {
		b, err := os.ReadFile(p)
		if err == nil {
			return string(b), p
		}
	}
	t.Fatalf("the seed document is neither at %s nor in internal/testutil/testdata/seed.md", seedPath)
	return "", ""
}

// SeedBlock returns the fenced YAML block of the seed document whose first
// line is the comment heading (such as "# User management configuration"),
// as the seed writes it, heading included.
func SeedBlock(t testing.TB, heading string) string {
	t.Helper()
	doc, from := SeedDocument(t)
	for _, block := range strings.Split(doc, "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if first, _, _ := strings.Cut(block, "\n"); strings.TrimSpace(first) == heading {
			return block
		}
	}
	t.Fatalf("%s has no yaml block headed %q", from, heading)
	return ""
}
