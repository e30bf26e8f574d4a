package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/nebula-engine/nebula/storage"
)

// Large outputs stay out of the replicated log: the worker stores an output
// over the threshold in the blob store and reports a marker in its place,
// {"$nebula_blob": "sha256:…", "size": N}. The marker is what the log, the
// state and the journal hold; expressions and API answers see the content.

// DefaultBlobThreshold is the output size above which outputs go to the
// blob store.
const DefaultBlobThreshold = 64 << 10

// MaxBlobOutputBytes bounds one output kept in the blob store.
const MaxBlobOutputBytes = 64 << 20

const blobMarkerPrefix = `{"$nebula_blob":`

type blobMarker struct {
	Ref  string `json:"$nebula_blob"`
	Size int    `json:"size"`
}

// storeOutput puts out in blobs and returns its marker.
func storeOutput(ctx context.Context, blobs storage.BlobStore, out json.RawMessage) (json.RawMessage, error) {
	ref, err := blobs.Put(ctx, out)
	if err != nil {
		return nil, fmt.Errorf("storing a %d-byte output: %w", len(out), err)
	}
	return json.Marshal(blobMarker{Ref: ref, Size: len(out)})
}

// markerRef returns the blob reference when raw is a marker.
func markerRef(raw json.RawMessage) (string, bool) {
	if !bytes.HasPrefix(raw, []byte(blobMarkerPrefix)) {
		return "", false
	}
	var m blobMarker
	if err := json.Unmarshal(raw, &m); err != nil || m.Ref == "" {
		return "", false
	}
	return m.Ref, true
}

// ExpandOutput returns the content a marker stands for, or raw itself when
// it is no marker.
func ExpandOutput(ctx context.Context, blobs storage.BlobStore, raw json.RawMessage) (json.RawMessage, error) {
	ref, ok := markerRef(raw)
	if !ok {
		return raw, nil
	}
	if blobs == nil {
		return nil, fmt.Errorf("output %s is in the blob store, and this node has none", ref)
	}
	b, err := blobs.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", ref, err)
	}
	return b, nil
}
