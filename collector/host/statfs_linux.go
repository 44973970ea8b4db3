package host

import (
	"fmt"
	"syscall"
)

func statfs(path string) (Fs, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Fs{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := uint64(st.Bsize)
	return Fs{Size: st.Blocks * bsize, Free: st.Bfree * bsize, Avail: st.Bavail * bsize}, nil
}
