package local

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Both ways of writing a new file leave exactly that file, whole, readable by
// its owner only, and nothing else in the folder.
func TestWriteNewFile(t *testing.T) {
	for name, write := range map[string]func(string, []byte) error{
		"writeNewFile":    writeNewFile,
		"writeFileAtomic": writeFileAtomic,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			data := bytes.Repeat([]byte("a line of a message\r\n"), 1000)
			path := filepath.Join(dir, "m.eml")
			if err := write(path, data); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
				t.Errorf("mode %v, want readable by its owner only", perm)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("folder holds %d entries, want only the file", len(entries))
			}
			if err := write(filepath.Join(dir, "missing", "m.eml"), data); err == nil {
				t.Errorf("write into a missing folder succeeded, want an error")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("a failed write left %d entries, want only the first file", len(entries))
			}
		})
	}
}
