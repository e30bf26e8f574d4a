package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// BlobStore keeps large immutable values (node outputs over the log
// threshold, WebAssembly modules) outside the replicated log, which then
// carries only their references.
//
// Blobs are content-addressed: the reference is derived from the content, so
// writing the same bytes twice is harmless, two nodes that store the same
// output agree on its reference without coordinating, and every node can
// verify what it reads.
type BlobStore interface {
	// Put stores data and returns its reference, BlobRef(data). Putting
	// content that is already stored is a no-op returning the same
	// reference. When Put returns, the blob is durable: a reference may be
	// committed to the log as soon as Put succeeds.
	Put(ctx context.Context, data []byte) (string, error)
	// Get returns the content of ref. It returns an error wrapping
	// ErrNotFound when ref is not stored, ErrCorrupt when the stored bytes
	// do not hash to ref, and ErrInvalidRef when ref is malformed.
	Get(ctx context.Context, ref string) ([]byte, error)
	// Has reports whether ref is stored, without reading or verifying it.
	Has(ctx context.Context, ref string) (bool, error)
	// Delete removes ref; deleting a ref that is not stored is not an
	// error.
	Delete(ctx context.Context, ref string) error
}

// Blob errors, beside the sentinels shared with the other ports.
var (
	// ErrCorrupt reports stored bytes that do not hash to the reference
	// they are stored under: the medium or someone outside Nebula changed
	// them.
	ErrCorrupt = errors.New("corrupt blob")
	// ErrInvalidRef reports a string that is not a blob reference.
	ErrInvalidRef = errors.New("invalid blob reference")
)

// blobRefPrefix names the hash in every reference, so that a later change of
// algorithm can be told apart from corruption.
const blobRefPrefix = "sha256:"

// BlobRef returns the reference of data, "sha256:" followed by the lowercase
// hex SHA-256 of data, without storing it.
func BlobRef(data []byte) string {
	sum := sha256.Sum256(data)
	return blobRefPrefix + hex.EncodeToString(sum[:])
}

// ParseBlobRef validates ref and returns its hex digest. Only the canonical
// form that BlobRef returns is accepted ("sha256:" and 64 lowercase hex
// digits), so that each blob has exactly one reference and a driver may use
// the digest as a file or object name without escaping it. A malformed ref is
// an error wrapping ErrInvalidRef.
func ParseBlobRef(ref string) (string, error) {
	digest, ok := strings.CutPrefix(ref, blobRefPrefix)
	if !ok || len(digest) != 2*sha256.Size || strings.IndexFunc(digest, notLowerHex) >= 0 {
		return "", fmt.Errorf("%w %q", ErrInvalidRef, truncateRef(ref))
	}
	return digest, nil
}

func notLowerHex(r rune) bool {
	return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f')
}

// truncateRef shortens a malformed reference for an error message: it may
// come from a request body, and an error should not carry megabytes of it.
func truncateRef(ref string) string {
	const limit = len(blobRefPrefix) + 2*sha256.Size + 8
	if len(ref) <= limit {
		return ref
	}
	return ref[:limit] + "..."
}
