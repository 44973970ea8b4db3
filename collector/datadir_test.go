package collector

import (
	"testing"

	"github.com/stretchr/testify/require"
)

var fixtureBlockPaths = blockPaths{
	MountInfo:   "testdata/blockdev/mountinfo",
	SysDevBlock: "testdata/blockdev/sys/dev/block",
}

// TestCheckDataDir: the mount of data_dir is found in mountinfo (the
// longest mount point that holds it) and its device is dm-crypt itself or
// is built on a dm-crypt device (LVM on LUKS).
func TestCheckDataDir(t *testing.T) {
	cases := []struct {
		dir       string
		mount     string
		device    string
		encrypted bool
		err       string
	}{
		{dir: "/vigil-test/crypt/vigil/data", mount: "/vigil-test/crypt", device: "253:1", encrypted: true},
		{dir: "/vigil-test/lvm on luks/data", mount: "/vigil-test/lvm on luks", device: "253:2", encrypted: true},
		{dir: "/vigil-test/plain/data", mount: "/vigil-test/plain", device: "8:2"},
		{dir: "/vigil-test/plain/over/data", mount: "/vigil-test/plain/over", device: "8:1"},
		{dir: "/vigil-test/plainer", mount: "/", device: "8:1"},
		{dir: "/vigil-test/overlay/data", err: "no block device of its own"},
		{dir: "/vigil-test/gone/data", err: "device 253:9"},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			got, err := checkDataDir(fixtureBlockPaths, tc.dir)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.mount, got.MountPoint)
			require.Equal(t, tc.device, got.Device)
			require.Equal(t, tc.encrypted, got.Encrypted)
		})
	}
	_, err := checkDataDir(blockPaths{MountInfo: "testdata/blockdev/missing"}, "/x")
	require.ErrorContains(t, err, "read mounts")
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/end\04`: `/end\04`, `/back\\x`: `/back\\x`} {
		require.Equal(t, want, unescapeMount(in), in)
	}
}
