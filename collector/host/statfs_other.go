//go:build !linux

package host

import (
	"errors"
	"fmt"
)

// statfs is Linux only, as the rest of this collector: /proc and /sys.
func statfs(path string) (Fs, error) {
	return Fs{}, fmt.Errorf("statfs %s: %w", path, errors.ErrUnsupported)
}
