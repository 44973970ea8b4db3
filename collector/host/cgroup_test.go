package host

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
	"github.com/stretchr/testify/require"
)

// writeTree writes files (path relative to root -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
}

func TestFindCgroup(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    cgroupPaths // relative to the cgroup root
		wantErr bool
	}{
		{
			name: "v2 nested",
			files: map[string]string{
				"proc/self/cgroup":                    "0::/kubepods/pod1/ctr\n",
				"cgroup/cgroup.controllers":           "cpu memory\n",
				"cgroup/kubepods/pod1/ctr/cpu.max":    "max 100000\n",
				"cgroup/kubepods/pod1/ctr/memory.max": "max\n",
			},
			want: cgroupPaths{v2: true, cpu: "kubepods/pod1/ctr", cpuacct: "kubepods/pod1/ctr", memory: "kubepods/pod1/ctr"},
		},
		{
			name: "v2 path outside the namespace falls back to the root",
			files: map[string]string{
				"proc/self/cgroup":          "0::/../other\n",
				"cgroup/cgroup.controllers": "cpu memory\n",
			},
			want: cgroupPaths{v2: true, cpu: ".", cpuacct: ".", memory: "."},
		},
		{
			name: "v1 with separate mounts and nested paths",
			files: map[string]string{
				"proc/self/cgroup":                  "4:memory:/docker/abc\n3:cpu:/docker/abc\n2:cpuacct:/docker/abc\n0::/\n",
				"cgroup/memory/docker/abc/tasks":    "",
				"cgroup/cpu/docker/abc/tasks":       "",
				"cgroup/cpuacct/docker/abc/tasks":   "",
				"cgroup/unified/cgroup.controllers": "",
			},
			want: cgroupPaths{cpu: "cpu/docker/abc", cpuacct: "cpuacct/docker/abc", memory: "memory/docker/abc"},
		},
		{
			name: "v1 joint cpu,cpuacct mount",
			files: map[string]string{
				"proc/self/cgroup":         "3:cpu,cpuacct:/\n4:memory:/\n",
				"cgroup/cpu,cpuacct/tasks": "",
				"cgroup/memory/tasks":      "",
			},
			want: cgroupPaths{cpu: "cpu,cpuacct", cpuacct: "cpu,cpuacct", memory: "memory"},
		},
		{
			name:    "no cgroup file",
			files:   map[string]string{"cgroup/cgroup.controllers": ""},
			wantErr: true,
		},
		{
			name: "v1 without cpu or memory mounts",
			files: map[string]string{
				"proc/self/cgroup":  "1:pids:/\n",
				"cgroup/pids/tasks": "",
			},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			cgroupRoot := filepath.Join(root, "cgroup")
			got, err := findCgroup(filepath.Join(root, "proc"), cgroupRoot)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			abs := func(p string) string { return filepath.Join(cgroupRoot, p) }
			require.Equal(t, cgroupPaths{v2: tt.want.v2, cpu: abs(tt.want.cpu), cpuacct: abs(tt.want.cpuacct), memory: abs(tt.want.memory)}, got)
		})
	}
}

func TestCgroupLimits(t *testing.T) {
	const hostTotal = 8 << 30
	tests := []struct {
		name      string
		v2        bool
		files     map[string]string
		wantCores float64 // 0: no CPU limit
		wantUsage float64
		wantLimit uint64 // 0: no memory limit
		wantWS    uint64
	}{
		{
			name: "v2 unlimited",
			v2:   true,
			files: map[string]string{
				"cpu.max": "max 100000\n", "cpu.stat": "usage_usec 1\n",
				"memory.max": "max\n", "memory.current": "100\n", "memory.stat": "inactive_file 10\n",
			},
		},
		{
			name: "v2 quota without period, working set floors at 0",
			v2:   true,
			files: map[string]string{
				"cpu.max": "150000\n", "cpu.stat": "usage_usec 2500000\nuser_usec 1\n",
				"memory.max": "1048576\n", "memory.current": "100\n", "memory.stat": "file 10\ninactive_file 200\n",
			},
			wantCores: 1.5, wantUsage: 2.5, wantLimit: 1 << 20, wantWS: 0,
		},
		{
			name: "v2 memory limit above the host's memory is no limit",
			v2:   true,
			files: map[string]string{
				"memory.max": "17179869184\n", "memory.current": "100\n", "memory.stat": "inactive_file 10\n",
			},
		},
		{
			name: "v2 missing files",
			v2:   true,
		},
		{
			name: "v1 unlimited",
			files: map[string]string{
				"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n", "cpuacct.usage": "5\n",
				"memory.limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "100\n", "memory.stat": "total_inactive_file 10\n",
			},
		},
		{
			name: "v1 limited",
			files: map[string]string{
				"cpu.cfs_quota_us": "300000\n", "cpu.cfs_period_us": "100000\n", "cpuacct.usage": "7000000000\n",
				"memory.limit_in_bytes": "2147483648\n", "memory.usage_in_bytes": "1073741924\n",
				"memory.stat": "inactive_file 1\ntotal_inactive_file 100\n",
			},
			wantCores: 3, wantUsage: 7, wantLimit: 2 << 30, wantWS: 1 << 30,
		},
		{
			name: "v1 limit with an unreadable usage falls back to the host",
			files: map[string]string{
				"cpu.cfs_quota_us": "300000\n", "cpu.cfs_period_us": "100000\n",
				"memory.limit_in_bytes": "2147483648\n", "memory.usage_in_bytes": "garbage\n", "memory.stat": "total_inactive_file 100\n",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tt.files)
			c := &Collector{
				logger: slog.New(slog.DiscardHandler),
				cgroup: cgroupPaths{v2: tt.v2, cpu: dir, cpuacct: dir, memory: dir},
			}
			cores, usage, ok := c.cgroupCPU()
			require.Equal(t, tt.wantCores != 0, ok)
			require.InDelta(t, tt.wantCores, cores, 1e-12)
			require.InDelta(t, tt.wantUsage, usage, 1e-12)

			limit, ws, ok := c.cgroupMemory(hostTotal)
			require.Equal(t, tt.wantLimit != 0, ok)
			require.Equal(t, tt.wantLimit, limit)
			require.Equal(t, tt.wantWS, ws)
		})
	}
}

func TestFsType(t *testing.T) {
	mounts := []*procfs.MountInfo{
		{MountPoint: "/", FSType: "ext4"},
		{MountPoint: "/data", FSType: "xfs"},
		{MountPoint: "/data", FSType: "nfs4"}, // mounted over the first
		{MountPoint: "/database", FSType: "btrfs"},
	}
	tests := []struct{ path, want string }{
		{"/", "ext4"},
		{"/data", "nfs4"},
		{"/data/", "nfs4"},
		{"/data/pg", "nfs4"},
		{"/database", "btrfs"},
		{"/dat", "ext4"},
		{"/var/lib", "ext4"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			require.Equal(t, tt.want, fsType(mounts, tt.path))
		})
	}
	require.Empty(t, fsType(nil, "/"))
}
