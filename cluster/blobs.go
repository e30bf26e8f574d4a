package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// Blobs are content-addressed files on each node's disk. A blob that the
// state refers to must be readable on every node, so a Put is pushed to the
// other coordinators and counts as done once a majority of the cluster
// holds it; a node that lacks one (it was down) fetches it from a peer on
// first read. Content-addressing makes both safe: any copy is verified
// against its reference.

const internalBlobsPath = "/internal/v1/blobs/"

// BlobsConfig configures ReplicatedBlobs.
type BlobsConfig struct {
	Local storage.BlobStore
	// Peers returns the peer (Raft) addresses of the other coordinators.
	Peers func() []string
	// Transport reaches the peers; their nodes serve the copies (see
	// Config.Blobs).
	Transport *Transport
	// Timeout bounds one push or fetch; zero picks 30s.
	Timeout time.Duration
}

// ReplicatedBlobs is a storage.BlobStore over the local store of each node.
type ReplicatedBlobs struct {
	cfg BlobsConfig
}

// NewReplicatedBlobs returns a ReplicatedBlobs.
func NewReplicatedBlobs(cfg BlobsConfig) *ReplicatedBlobs {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &ReplicatedBlobs{cfg: cfg}
}

var _ storage.BlobStore = (*ReplicatedBlobs)(nil)

// Put stores data locally and on peers until a majority of the cluster
// (this node included) holds it.
func (b *ReplicatedBlobs) Put(ctx context.Context, data []byte) (string, error) {
	ref, err := b.cfg.Local.Put(ctx, data)
	if err != nil {
		return "", err
	}
	peers := b.cfg.Peers()
	need := (len(peers) + 1) / 2 // a majority of the cluster, this node aside
	if need <= 0 {
		return ref, nil
	}
	var (
		mu   sync.Mutex
		acks int
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.push(ctx, p, ref, data)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			acks++
		}()
	}
	wg.Wait()
	if acks < need {
		return "", fmt.Errorf("%w: blob %s reached %d of %d peers needed: %v", storage.ErrUnavailable, ref, acks, need, errors.Join(errs...))
	}
	return ref, nil
}

func (b *ReplicatedBlobs) push(ctx context.Context, peer, ref string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	resp, err := b.cfg.Transport.request(ctx, http.MethodPut, peer, internalBlobsPath+ref, data)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s: %s", peer, resp.Status)
	}
	return nil
}

// Get reads a blob locally, or from the first peer that has it (keeping a
// verified copy).
func (b *ReplicatedBlobs) Get(ctx context.Context, ref string) ([]byte, error) {
	data, err := b.cfg.Local.Get(ctx, ref)
	if !errors.Is(err, storage.ErrNotFound) {
		return data, err
	}
	for _, p := range b.cfg.Peers() {
		data, ferr := b.fetch(ctx, p, ref)
		if ferr != nil {
			continue
		}
		if _, err := b.cfg.Local.Put(ctx, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	return nil, err
}

func (b *ReplicatedBlobs) fetch(ctx context.Context, peer, ref string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	resp, err := b.cfg.Transport.request(ctx, http.MethodGet, peer, internalBlobsPath+ref, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", peer, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCommandBytes+1))
	if err != nil {
		return nil, err
	}
	if storage.BlobRef(data) != ref {
		return nil, fmt.Errorf("%s sent content that does not match %s", peer, ref)
	}
	return data, nil
}

// Has reports whether the blob is stored locally.
func (b *ReplicatedBlobs) Has(ctx context.Context, ref string) (bool, error) {
	return b.cfg.Local.Has(ctx, ref)
}

// Delete removes the local copy.
func (b *ReplicatedBlobs) Delete(ctx context.Context, ref string) error {
	return b.cfg.Local.Delete(ctx, ref)
}

// blobHandler serves this node's blobs to its peers: GET reads one, PUT
// stores one (verified against its reference).
func blobHandler(local storage.BlobStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := r.URL.Path[len(internalBlobsPath):]
		if _, err := storage.ParseBlobRef(ref); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodGet:
			data, err := local.Get(r.Context(), ref)
			if errors.Is(err, storage.ErrNotFound) {
				http.Error(w, "no such blob", http.StatusNotFound)
				return
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(data)
		case http.MethodPut:
			data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCommandBytes))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if storage.BlobRef(data) != ref {
				http.Error(w, "content does not match its reference", http.StatusBadRequest)
				return
			}
			if _, err := local.Put(r.Context(), data); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}
