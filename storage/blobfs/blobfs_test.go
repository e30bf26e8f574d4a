package blobfs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/storage/storagetest"
)

func openTestStore(t testing.TB, root string) *Store {
	t.Helper()
	s, err := Open(Config{Root: root})
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.RunBlobStore(t, func(t *testing.T) storage.BlobStore {
		return openTestStore(t, t.TempDir())
	})
}

// blobPath returns where the documented layout puts ref under root; the
// tests build it independently of Store so that they check the layout too.
func blobPath(t *testing.T, root, ref string) string {
	t.Helper()
	digest, ok := strings.CutPrefix(ref, "sha256:")
	if !ok {
		t.Fatalf("blobPath(%q): not a sha256 reference", ref)
	}
	return filepath.Join(root, "sha256", digest[:2], digest[2:])
}

func put(t *testing.T, s *Store, data []byte) string {
	t.Helper()
	ref, err := s.Put(t.Context(), data)
	if err != nil {
		t.Fatalf("Put(%q): %v", data, err)
	}
	return ref
}

// wantTemps fails t unless the temporary directory of root holds exactly
// the names in want, in any order.
func wantTemps(t *testing.T, root string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{} // compares equal to an empty want
	for _, e := range entries {
		got = append(got, e.Name()) // sorted by ReadDir
	}
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("temporary files = %q, want %q", got, want)
	}
}

func TestLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "missing", "blobs")
	s := openTestStore(t, root)
	data := []byte("abc")
	ref := put(t, s, data)

	got, err := os.ReadFile(blobPath(t, root, ref))
	if err != nil {
		t.Fatalf("blob file: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("blob file holds %q, want %q", got, data)
	}
	wantTemps(t, root)

	if runtime.GOOS != "windows" { // no Unix permission bits there
		for _, name := range []string{root, filepath.Join(root, "sha256", "ba"), blobPath(t, root, ref)} {
			info, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v, want no access for group and others", name, perm)
			}
		}
	}

	// A second store on the same root sees what the first stored.
	reopened := openTestStore(t, root)
	got, err = reopened.Get(t.Context(), ref)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get after reopening = %q, %v; want %q", got, err, data)
	}
}

// TestConcurrentPutsOneFile checks what the conformance suite cannot see:
// racing Puts of one content leave a single file and no temporary ones.
func TestConcurrentPutsOneFile(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root)
	data := bytes.Repeat([]byte("same output "), 10_000)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 32 {
		wg.Go(func() {
			<-start
			if _, err := s.Put(t.Context(), data); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()

	wantTemps(t, root)
	if size, err := s.Size(t.Context()); err != nil || size != int64(len(data)) {
		t.Errorf("Size = %d, %v; want %d", size, err, len(data))
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		root string
	}{
		{"EmptyRoot", ""},
		{"RootIsFile", file},
		{"RootUnderFile", filepath.Join(file, "blobs")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Open(Config{Root: tc.root}); err == nil {
				t.Errorf("Open(%q) = %v, want an error", tc.root, s)
			}
		})
	}
}

func TestCorruption(t *testing.T) {
	data := []byte("the output of a node, large enough to be a blob")
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		// repairs says whether a new Put of the content replaces the
		// damaged file: Put trusts a file of the right size, since it was
		// synced before being renamed, and rewrites any other.
		repairs bool
	}{
		{"FlippedByte", func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b }, false},
		{"Truncated", func(b []byte) []byte { return b[:len(b)-1] }, true},
		{"Emptied", func(b []byte) []byte { return nil }, true},
		{"Extended", func(b []byte) []byte { return append(b, 0) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			root := t.TempDir()
			s := openTestStore(t, root)
			ref := put(t, s, data)
			name := blobPath(t, root, ref)
			if err := os.WriteFile(name, tc.corrupt(bytes.Clone(data)), 0o600); err != nil {
				t.Fatal(err)
			}

			_, err := s.Get(ctx, ref)
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Get(corrupt) error = %v, want %v", err, storage.ErrCorrupt)
			}
			if !strings.Contains(err.Error(), ref) {
				t.Errorf("Get(corrupt) error %q does not name %s", err, ref)
			}

			put(t, s, data)
			got, err := s.Get(ctx, ref)
			if repaired := err == nil && bytes.Equal(got, data); repaired != tc.repairs {
				t.Errorf("after a new Put, Get = %q, %v; want repaired = %v", got, err, tc.repairs)
			}

			// Deleting and storing again always repairs.
			if err := s.Delete(ctx, ref); err != nil {
				t.Fatal(err)
			}
			put(t, s, data)
			if got, err := s.Get(ctx, ref); err != nil || !bytes.Equal(got, data) {
				t.Errorf("after Delete and Put, Get = %q, %v; want %q", got, err, data)
			}
		})
	}
}

func TestOpenRemovesStaleTemps(t *testing.T) {
	tests := []struct {
		name string
		age  time.Duration
		kept bool
	}{
		{"put-stale", 2 * staleTempAge, false},
		{"put-just-stale", staleTempAge + time.Second, false},
		{"put-recent", staleTempAge / 2, true},
		{"put-new", 0, true},
		{"put-future", -time.Hour, true}, // clock stepped back: not ours to judge
	}
	root := t.TempDir()
	s := openTestStore(t, root)
	ref := put(t, s, []byte("survives reopening"))

	now := time.Now()
	var kept []string
	for _, tc := range tests {
		name := filepath.Join(root, "tmp", tc.name)
		if err := os.WriteFile(name, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		mtime := now.Add(-tc.age)
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if tc.kept {
			kept = append(kept, tc.name)
		}
	}

	reopened := openTestStore(t, root)
	wantTemps(t, root, kept...)
	if ok, err := reopened.Has(t.Context(), ref); !ok || err != nil {
		t.Errorf("Has(%s) after reopening = %v, %v; want true", ref, ok, err)
	}
}

func TestSize(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openTestStore(t, root)
	small := bytes.Repeat([]byte{1}, 100)
	large := bytes.Repeat([]byte{2}, 70_000)

	steps := []struct {
		name string
		do   func() error
		want int64
	}{
		{"Empty", func() error { return nil }, 0},
		{"PutSmall", func() error { _, err := s.Put(ctx, small); return err }, 100},
		{"PutLarge", func() error { _, err := s.Put(ctx, large); return err }, 70_100},
		{"PutSmallAgain", func() error { _, err := s.Put(ctx, small); return err }, 70_100},
		{"PutEmpty", func() error { _, err := s.Put(ctx, nil); return err }, 70_100},
		{"TempFileIgnored", func() error {
			return os.WriteFile(filepath.Join(root, "tmp", "put-1"), large, 0o600)
		}, 70_100},
		{"DeleteLarge", func() error { return s.Delete(ctx, storage.BlobRef(large)) }, 100},
		{"DeleteAbsent", func() error { return s.Delete(ctx, storage.BlobRef(large)) }, 100},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, err := s.Size(ctx)
		if err != nil {
			t.Fatalf("%s: Size: %v", step.name, err)
		}
		if got != step.want {
			t.Errorf("%s: Size = %d, want %d", step.name, got, step.want)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root)
	ref := put(t, s, []byte("stored"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, []byte("new")); return err }},
		{"Get", func() error { _, err := s.Get(ctx, ref); return err }},
		{"Has", func() error { _, err := s.Has(ctx, ref); return err }},
		{"Delete", func() error { return s.Delete(ctx, ref) }},
		{"Size", func() error { _, err := s.Size(ctx); return err }},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s error = %v, want %v", tc.name, err, context.Canceled)
		}
	}
	if _, err := os.Stat(blobPath(t, root, ref)); errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete with a canceled context removed the blob")
	}
}

// benchData returns 5 MiB, the size of a large node output or a small
// WebAssembly module.
func benchData() []byte {
	data := make([]byte, 5<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return data
}

// BenchmarkPut5MiB measures storing new content: one write and two syncs.
// Each iteration changes the first bytes so that Put cannot skip the write,
// and deletes the blob afterwards so that the benchmark does not fill the
// disk; the unlink is cheap next to the syncs.
func BenchmarkPut5MiB(b *testing.B) {
	s, err := Open(Config{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	data := benchData()
	b.SetBytes(int64(len(data)))
	var n uint64
	for b.Loop() {
		n++
		for i := range 8 {
			data[i] = byte(n >> (8 * i))
		}
		ref, err := s.Put(ctx, data)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Delete(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet5MiB measures reading and verifying a blob.
func BenchmarkGet5MiB(b *testing.B) {
	s, err := Open(Config{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	data := benchData()
	ref, err := s.Put(ctx, data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Get(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
}
