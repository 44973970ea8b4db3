package host

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  uint64 // 0: none
	}{
		{"v2 limit", map[string]string{
			"proc/self/cgroup":                        "0::/kubepods/pod1/ctr\n",
			"cgroup/cgroup.controllers":               "cpu memory",
			"cgroup/kubepods/pod1/ctr/memory.max":     "134217728\n",
			"cgroup/kubepods/pod1/ctr/memory.current": "50000000\n",
			"cgroup/kubepods/pod1/ctr/memory.stat":    "inactive_file 0\n",
		}, 128 << 20},
		{"v2 max", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"cgroup/cgroup.controllers": "cpu memory",
			"cgroup/memory.max":         "max\n",
		}, 0},
		{"v1 limit", map[string]string{
			"proc/self/cgroup":                    "4:memory:/docker/abc\n",
			"cgroup/memory/tasks":                 "",
			"cgroup/memory/memory.limit_in_bytes": "268435456\n",
			"cgroup/memory/memory.usage_in_bytes": "1000\n",
			"cgroup/memory/memory.stat":           "total_inactive_file 0\n",
		}, 256 << 20},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                    "4:memory:/\n",
			"cgroup/memory/tasks":                 "",
			"cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
			"cgroup/memory/memory.usage_in_bytes": "1000\n",
			"cgroup/memory/memory.stat":           "total_inactive_file 0\n",
		}, 0},
		{"no cgroup", map[string]string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.files)
			got, ok := MemoryLimitIn(filepath.Join(root, "proc"), filepath.Join(root, "cgroup"))
			require.Equal(t, tc.want != 0, ok)
			require.Equal(t, tc.want, got)
		})
	}
}
