// Package blobfs is the storage.BlobStore on a local file system: the blob
// store of the desktop and self-hosted shapes, where each node keeps the
// blobs it has written or fetched under one directory.
//
// A blob with reference "sha256:abcdef…" lives in Root/sha256/ab/cdef…; the
// two-character fan-out keeps directories small enough to list. A blob is
// written to a temporary file under Root/tmp, synced, and renamed into
// place, so a file under its final name is always complete: a crash leaves at
// worst a temporary file, which Open removes.
package blobfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// staleTempAge is how old a temporary file must be for Open to remove it.
// Open does not remove younger ones because another process may share Root
// and be writing them; a Put keeps its temporary file for the time of one
// write and two syncs, far below this.
const staleTempAge = time.Minute

// dirMode keeps blobs private to the user running Nebula: node outputs may
// hold anything a workflow fetched.
const dirMode = 0o700

// Config configures a Store.
type Config struct {
	// Root is the directory holding the blobs. Open creates it, with mode
	// 0700, when it is missing.
	Root string
}

// Store is a directory of blobs. It implements storage.BlobStore and is safe
// for concurrent use, also by several processes sharing Root. It holds no
// open files, so it needs no Close.
type Store struct {
	blobs string // Root/sha256: the fan-out directories
	tmp   string // Root/tmp: blobs being written
}

var _ storage.BlobStore = (*Store)(nil)

// Open opens the blob directory cfg.Root, creating it and its layout when
// missing, and removes the temporary files a crash left behind.
func Open(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("blobfs: Config.Root is empty")
	}
	s := &Store{
		blobs: filepath.Join(cfg.Root, "sha256"),
		tmp:   filepath.Join(cfg.Root, "tmp"),
	}
	if err := s.createLayout(cfg.Root); err != nil {
		return nil, fmt.Errorf("blobfs: open %s: %w", cfg.Root, err)
	}
	if err := s.removeStaleTemps(time.Now().Add(-staleTempAge)); err != nil {
		return nil, fmt.Errorf("blobfs: open %s: %w", cfg.Root, err)
	}
	return s, nil
}

// createLayout creates root, tmp, and all 256 fan-out directories, and syncs
// the directories that list them. Creating every fan-out directory here
// rather than on first use means Put never makes a directory entry other
// than its blob's, so syncing the blob's directory is all it needs to be
// durable, even when concurrent Puts race.
func (s *Store) createLayout(root string) error {
	_, err := os.Stat(root)
	rootIsNew := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(root, dirMode); err != nil {
		return err
	}
	for _, dir := range []string{s.tmp, s.blobs} {
		if err := mkdir(dir); err != nil {
			return err
		}
	}
	const hexDigits = "0123456789abcdef"
	for _, hi := range hexDigits {
		for _, lo := range hexDigits {
			if err := mkdir(filepath.Join(s.blobs, string(hi)+string(lo))); err != nil {
				return err
			}
		}
	}
	syncs := []string{s.blobs, root}
	if rootIsNew {
		syncs = append(syncs, filepath.Dir(root))
	}
	for _, dir := range syncs {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// mkdir creates dir unless it exists.
func mkdir(dir string) error {
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// removeStaleTemps removes the temporary files last written before cutoff.
func (s *Store) removeStaleTemps(cutoff time.Time) error {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // renamed or removed by another process meanwhile
		}
		if err != nil {
			return err
		}
		if !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(s.tmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// path returns the file of a digest that storage.ParseBlobRef validated: the
// name is built from hex digits only, never from caller text.
func (s *Store) path(digest string) string {
	return filepath.Join(s.blobs, digest[:2], digest[2:])
}

// Put stores data durably and returns its reference.
func (s *Store) Put(ctx context.Context, data []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	ref := storage.BlobRef(data)
	digest, _ := storage.ParseBlobRef(ref) // cannot fail on BlobRef's result
	final := s.path(digest)
	dir := filepath.Dir(final)

	// A blob of the right size under its final name is complete, since it
	// was synced before the rename that named it. A file of another size
	// was damaged, and is replaced below.
	if stored(final, len(data)) {
		// The Put that renamed it may not have synced the directory yet;
		// syncing it here makes this return a durability promise too.
		if err := syncDir(dir); err != nil {
			return "", fmt.Errorf("blobfs: put %s: %w", ref, err)
		}
		return ref, nil
	}
	if err := s.write(final, data); err != nil {
		// A concurrent Put may have stored the same bytes meanwhile, and
		// made this rename fail where the OS refuses to replace a file
		// that a reader holds open (Windows): the blob is stored either
		// way.
		if !stored(final, len(data)) {
			return "", fmt.Errorf("blobfs: put %s: %w", ref, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("blobfs: put %s: %w", ref, err)
	}
	return ref, nil
}

// stored reports whether name is a regular file of size bytes.
func stored(name string, size int) bool {
	info, err := os.Stat(name)
	return err == nil && info.Mode().IsRegular() && info.Size() == int64(size)
}

// write writes data to a synced temporary file and renames it to final. The
// temporary file is removed if anything fails before the rename.
func (s *Store) write(final string, data []byte) (err error) {
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), final)
}

// Get returns the content of ref after checking that it hashes to ref.
func (s *Store) Get(ctx context.Context, ref string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	digest, err := storage.ParseBlobRef(ref)
	if err != nil {
		return nil, fmt.Errorf("blobfs: get: %w", err)
	}
	data, err := os.ReadFile(s.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", ref, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blobfs: get %s: %w", ref, err)
	}
	if got := storage.BlobRef(data); got != ref {
		return nil, fmt.Errorf("blob %s: %w: stored content hashes to %s", ref, storage.ErrCorrupt, got)
	}
	return data, nil
}

// Has reports whether ref is stored.
func (s *Store) Has(ctx context.Context, ref string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	digest, err := storage.ParseBlobRef(ref)
	if err != nil {
		return false, fmt.Errorf("blobfs: has: %w", err)
	}
	_, err = os.Stat(s.path(digest))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("blobfs: has %s: %w", ref, err)
	}
}

// Delete removes ref. It does not sync the directory: a blob that a crash
// brings back is still valid content, which the next Delete removes.
func (s *Store) Delete(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	digest, err := storage.ParseBlobRef(ref)
	if err != nil {
		return fmt.Errorf("blobfs: delete: %w", err)
	}
	if err := os.Remove(s.path(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobfs: delete %s: %w", ref, err)
	}
	return nil
}

// Size returns the total size in bytes of the stored blobs, not counting
// temporary files. It walks the whole store, so it is meant for occasional
// accounting, not for every request.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var total int64
	err := filepath.WalkDir(s.blobs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted during the walk
		}
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("blobfs: size: %w", err)
	}
	return total, nil
}

// syncDir makes the entries of dir durable, so that a renamed blob survives a
// crash under its new name. Windows offers no way to sync a directory
// through package os; there durability rests on NTFS journaling the rename.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
