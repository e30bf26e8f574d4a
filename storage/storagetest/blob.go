package storagetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/nebula-engine/nebula/storage"
)

// RunBlobStore runs the blob store conformance suite as subtests of t.
// newStore must return an empty store, independent of every other one it
// returned; it is called once per subtest and should release the store with
// t.Cleanup.
func RunBlobStore(t *testing.T, newStore func(t *testing.T) storage.BlobStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.BlobStore)
	}{
		{"RoundTrip", testBlobRoundTrip},
		{"KnownRef", testBlobKnownRef},
		{"PutTwice", testBlobPutTwice},
		{"NoAliasing", testBlobNoAliasing},
		{"HasDelete", testBlobHasDelete},
		{"NotFound", testBlobNotFound},
		{"InvalidRefs", testBlobInvalidRefs},
		{"ConcurrentPuts", testBlobConcurrentPuts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// blobData returns n bytes that are the same on every run and differ for
// each seed, and that do not compress, as real outputs over the log threshold
// often do not.
func blobData(seed uint64, n int) []byte {
	data := make([]byte, n)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rand.NewChaCha8(key).Read(data)
	return data
}

// putBlob stores data and fails t unless the store returns BlobRef(data).
func putBlob(t *testing.T, s storage.BlobStore, data []byte) string {
	t.Helper()
	ref, err := s.Put(t.Context(), data)
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(data), err)
	}
	if want := storage.BlobRef(data); ref != want {
		t.Fatalf("Put(%d bytes) = %q, want BlobRef = %q", len(data), ref, want)
	}
	return ref
}

// wantBlob fails t unless ref holds exactly want.
func wantBlob(t *testing.T, s storage.BlobStore, ref string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), ref)
	if err != nil {
		t.Fatalf("Get(%s): %v", ref, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s) = %s, want %s", ref, describeBlob(got), describeBlob(want))
	}
}

// wantHas fails t unless Has(ref) reports want.
func wantHas(t *testing.T, s storage.BlobStore, ref string, want bool) {
	t.Helper()
	got, err := s.Has(t.Context(), ref)
	if err != nil {
		t.Fatalf("Has(%s): %v", ref, err)
	}
	if got != want {
		t.Fatalf("Has(%s) = %v, want %v", ref, got, want)
	}
}

// describeBlob summarizes data for a failure message, which must not print
// megabytes.
func describeBlob(data []byte) string {
	const head = 16
	if len(data) <= head {
		return fmt.Sprintf("%d bytes %x", len(data), data)
	}
	return fmt.Sprintf("%d bytes %x... (%s)", len(data), data[:head], storage.BlobRef(data))
}

func testBlobRoundTrip(t *testing.T, s storage.BlobStore) {
	tests := []struct {
		name string
		data []byte
	}{
		{"Empty", []byte{}},
		{"OneByte", []byte{0}},
		{"Binary", []byte{0x00, 0xff, 0xfe, '\n', 0x00, 0x80}},
		{"64KiB", blobData(1, 64<<10)},
		{"5MiB", blobData(2, 5<<20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := putBlob(t, s, tc.data)
			wantHas(t, s, ref, true)
			wantBlob(t, s, ref, tc.data)
		})
	}
	// Nil and empty are the same content.
	if ref := putBlob(t, s, nil); ref != storage.BlobRef([]byte{}) {
		t.Errorf("Put(nil) = %q, want the reference of empty content", ref)
	}
}

// testBlobKnownRef pins the reference format to published SHA-256 test
// vectors, so that every driver and every node name content alike.
func testBlobKnownRef(t *testing.T, s storage.BlobStore) {
	tests := []struct {
		data string
		ref  string
	}{
		{"", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tc := range tests {
		if got := storage.BlobRef([]byte(tc.data)); got != tc.ref {
			t.Errorf("BlobRef(%q) = %q, want %q", tc.data, got, tc.ref)
		}
		ref, err := s.Put(t.Context(), []byte(tc.data))
		wantErr(t, fmt.Sprintf("Put(%q)", tc.data), err, nil)
		if ref != tc.ref {
			t.Errorf("Put(%q) = %q, want %q", tc.data, ref, tc.ref)
		}
		digest, err := storage.ParseBlobRef(ref)
		wantErr(t, fmt.Sprintf("ParseBlobRef(%q)", ref), err, nil)
		if want := strings.TrimPrefix(tc.ref, "sha256:"); digest != want {
			t.Errorf("ParseBlobRef(%q) = %q, want %q", ref, digest, want)
		}
	}
}

func testBlobPutTwice(t *testing.T, s storage.BlobStore) {
	data := blobData(3, 1000)
	first := putBlob(t, s, data)
	second := putBlob(t, s, bytes.Clone(data))
	if first != second {
		t.Fatalf("second Put = %q, first = %q", second, first)
	}
	wantBlob(t, s, first, data)
}

// testBlobNoAliasing checks that the store neither keeps the slice given to
// Put nor hands out one it keeps: callers reuse buffers.
func testBlobNoAliasing(t *testing.T, s storage.BlobStore) {
	want := blobData(4, 100)
	data := bytes.Clone(want)
	ref := putBlob(t, s, data)
	data[0] ^= 0xff
	wantBlob(t, s, ref, want)

	got, err := s.Get(t.Context(), ref)
	wantErr(t, "Get", err, nil)
	got[0] ^= 0xff
	wantBlob(t, s, ref, want)
}

func testBlobHasDelete(t *testing.T, s storage.BlobStore) {
	ctx := t.Context()
	data := blobData(5, 100)
	ref := storage.BlobRef(data)
	wantHas(t, s, ref, false)
	putBlob(t, s, data)
	wantHas(t, s, ref, true)

	wantErr(t, "Delete", s.Delete(ctx, ref), nil)
	wantHas(t, s, ref, false)
	_, err := s.Get(ctx, ref)
	wantErr(t, "Get(deleted)", err, storage.ErrNotFound)
	wantErr(t, "Delete(again)", s.Delete(ctx, ref), nil)

	// A deleted blob can be stored again.
	putBlob(t, s, data)
	wantBlob(t, s, ref, data)
}

func testBlobNotFound(t *testing.T, s storage.BlobStore) {
	ctx := t.Context()
	putBlob(t, s, []byte("stored"))
	ref := storage.BlobRef([]byte("never stored"))
	_, err := s.Get(ctx, ref)
	wantErr(t, "Get(never stored)", err, storage.ErrNotFound)
	wantHas(t, s, ref, false)
	wantErr(t, "Delete(never stored)", s.Delete(ctx, ref), nil)
}

// invalidRefs are strings that are not canonical references: each must be
// refused before a driver uses it to name anything.
func invalidRefs() []string {
	digest := strings.TrimPrefix(storage.BlobRef([]byte("abc")), "sha256:")
	return []string{
		"",
		"x",
		"sha256:",
		"sha256:" + strings.Repeat("z", 64),
		"sha256:" + strings.ToUpper(digest),
		"SHA256:" + digest,
		"sha512:" + digest,
		"sha256:" + digest[:63],
		"sha256:" + digest + "0",
		"sha256:" + digest + "\n",
		" sha256:" + digest,
		"sha256:../../etc/passwd",
		// Traversals of the exact digest length.
		"sha256:" + strings.Repeat("../", 21) + "a",
		"sha256:" + digest[:2] + "/" + digest[3:],
		"sha256:" + digest[:62] + "\x00a",
		digest,
	}
}

func testBlobInvalidRefs(t *testing.T, s storage.BlobStore) {
	ctx := t.Context()
	for _, ref := range invalidRefs() {
		_, err := storage.ParseBlobRef(ref)
		wantErr(t, fmt.Sprintf("ParseBlobRef(%q)", ref), err, storage.ErrInvalidRef)
		_, err = s.Get(ctx, ref)
		wantErr(t, fmt.Sprintf("Get(%q)", ref), err, storage.ErrInvalidRef)
		_, err = s.Has(ctx, ref)
		wantErr(t, fmt.Sprintf("Has(%q)", ref), err, storage.ErrInvalidRef)
		wantErr(t, fmt.Sprintf("Delete(%q)", ref), s.Delete(ctx, ref), storage.ErrInvalidRef)
	}
}

// testBlobConcurrentPuts races goroutines that all store one shared blob
// and each store one of their own: every Put must succeed, and the shared
// one must end up stored once, intact.
func testBlobConcurrentPuts(t *testing.T, s storage.BlobStore) {
	ctx := t.Context()
	shared := blobData(6, 256<<10)
	own := make([][]byte, concurrency)
	for i := range own {
		own[i] = blobData(uint64(100+i), 4<<10+i)
	}
	var (
		wg         sync.WaitGroup
		start      = make(chan struct{})
		sharedRefs = make([]string, concurrency)
		ownRefs    = make([]string, concurrency)
	)
	for i := range concurrency {
		wg.Go(func() {
			put := func(data []byte) string {
				ref, err := s.Put(ctx, data)
				if err != nil {
					t.Errorf("goroutine %d: Put(%d bytes): %v", i, len(data), err)
				}
				return ref
			}
			<-start
			// Half the goroutines store their own blob first, so that
			// shared and distinct writes interleave.
			if i%2 == 0 {
				sharedRefs[i] = put(shared)
				ownRefs[i] = put(own[i])
			} else {
				ownRefs[i] = put(own[i])
				sharedRefs[i] = put(shared)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	want := storage.BlobRef(shared)
	for i, ref := range sharedRefs {
		if ref != want {
			t.Errorf("goroutine %d: Put(shared) = %q, want %q", i, ref, want)
		}
	}
	wantBlob(t, s, want, shared)
	for i, data := range own {
		if want := storage.BlobRef(data); ownRefs[i] != want {
			t.Errorf("goroutine %d: Put(own) = %q, want %q", i, ownRefs[i], want)
		}
		wantBlob(t, s, ownRefs[i], data)
	}
}
