package local

import (
	"os"
	"path/filepath"
	"syscall"
)

// writeNewFile writes data to a new file at path, which must not exist yet
// (where it does, the write fails or replaces it), so that the file appears under its name whole or not at all. Where the file
// system allows it (Linux, see newfile_linux.go) the file is written unnamed
// and then linked in: three system calls, no temporary name, and nothing left
// behind by a process that dies midway. Elsewhere it is writeFileAtomic.
// The file is readable by its owner only. It does not fsync.
func writeNewFile(path string, data []byte) error {
	if done, err := writeUnnamed(path, data); done {
		return err
	}
	return writeFileAtomic(path, data)
}

// writeFileAtomic writes data to a new temporary file next to path and
// renames it into place (replacing a file there), so that nobody ever reads
// a partial file, and a process that dies midway leaves only the temporary
// file (see RemoveTemp). The temporary file is created 0600 under a name of
// our own (no chmod). It does not fsync: the file survives the process, not
// a crash of the machine, as the database does (SQLite in WAL mode with
// synchronous=NORMAL).
func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), tempPrefix+randomHex(8))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syscall.Rename(tmp, path)
		if err != nil {
			err = &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
