package local

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noUnnamed is set once the outbox's file system (or a missing /proc) has
// shown that it cannot make unnamed files: writeUnnamed then leaves every
// write to writeFileAtomic.
var noUnnamed atomic.Bool

// writeUnnamed writes data to an unnamed file in path's folder (O_TMPFILE)
// and links it in at path (linkat through /proc/self/fd, as open(2)
// describes), so that the file appears whole or not at all, and a process
// that dies midway leaves nothing (the kernel frees an unnamed file when it
// is closed). done is false, with nothing written, where unnamed files cannot
// be made.
func writeUnnamed(path string, data []byte) (done bool, err error) {
	if noUnnamed.Load() {
		return false, nil
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if unsupported(err) {
			noUnnamed.Store(true)
			return false, nil
		}
		return true, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return true, err
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if _, serr := os.Stat("/proc/self/fd"); serr != nil {
			noUnnamed.Store(true) // no /proc: nothing was written
			return false, nil
		}
	}
	if err != nil {
		return true, &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
	}
	return true, nil
}

// unsupported reports whether err from an O_TMPFILE open means that the
// kernel or the file system cannot make unnamed files.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL)
}
