package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Bounds of the files the configuration reads. A secret is a token, a
// password or a DSN; a configuration file of a few hundred rules is tens of
// KiB. Anything larger is a mistake, such as /dev/zero or a log file named
// by accident, and would otherwise be read into memory whole.
const (
	// MaxSecretFileSize bounds a *_file secret (dsn_file, token_file,
	// secret_file).
	MaxSecretFileSize = 64 << 10
	// MaxConfigFileSize bounds the configuration file.
	MaxConfigFileSize = 4 << 20
)

// ErrFileTooLarge is why a file over its bound is refused.
var ErrFileTooLarge = errors.New("file too large")

// ErrNotRegular is why a named pipe, a device, a socket or a directory is
// refused where a file is expected.
var ErrNotRegular = errors.New("not a regular file")

// readLimited reads the regular file at path, of at most limit bytes. It
// opens without blocking, so a named pipe with no writer cannot hang start
// or reload, and checks the kind of file it opened (not the path, which could
// change in between) before reading.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %w (it is %s)", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %s", path, ErrFileTooLarge, sizeText(limit))
	}
	return data, nil
}

// ReadSecretFile reads a secret file with the bounds of the configuration's
// *_file secrets: a regular file of at most MaxSecretFileSize, opened
// without blocking. It is for secrets named outside the configuration,
// such as a command's --token-file.
func ReadSecretFile(path string) ([]byte, error) {
	return readLimited(path, MaxSecretFileSize)
}

// fileKind names a file mode for errors.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// sizeText writes a bound in KiB or MiB.
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
