package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveGradually(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: large without writing it.
	if err := f.Truncate(3*removeStep + 123); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := RemoveGradually(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file is still there: %v", err)
	}
	if err := RemoveGradually(path); err != nil {
		t.Fatalf("removing a file already gone: %v", err)
	}
}
