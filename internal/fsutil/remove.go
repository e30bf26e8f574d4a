// Package fsutil holds file helpers the storage layers share.
package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// removeStep and removePause pace RemoveGradually.
const (
	removeStep  = 32 << 20
	removePause = 5 * time.Millisecond
)

// RemoveGradually removes a file, first cutting it down from the end a
// step at a time with a pause between steps. Freeing a gigabyte at once
// can hold a file system's journal for hundreds of milliseconds (ext4
// mounted with discard trims every freed extent in the commit), and every
// fsync on that file system, the Raft log's among them, waits for it;
// freed in steps, others get their turn between them. A file already gone
// is not an error.
func RemoveGradually(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for size := fi.Size() - removeStep; size > 0; size -= removeStep {
		if err := os.Truncate(path, size); err != nil {
			break // remove it at once, then
		}
		time.Sleep(removePause)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
