package cluster

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/nebula-engine/nebula/internal/fsutil"
)

// Snapshots are whole copies of the state, gigabytes on a large node, and
// one is written every few thousand entries. Two habits of raft's
// FileSnapshotStore would stall writes meanwhile: it syncs a snapshot only
// when it is complete, one fsync of all of it, and it deletes old ones at
// once; on the same file system the Raft log's fsyncs wait behind both.
// So snapshots are flushed as they are written (syncingWriter), and old
// ones are removed gradually, off Raft's goroutines (snapshotStore).

// keepSnapshots is how many snapshots a node keeps.
const keepSnapshots = 2

// snapshotStore is a FileSnapshotStore that removes old snapshots itself,
// gradually, after a new one is complete.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir    string
	logger *slog.Logger
	reap   sync.Mutex
}

func newSnapshotStore(dir string, hl hclog.Logger, logger *slog.Logger) (*snapshotStore, error) {
	// Raft reaps beyond its retain count at once; with room for many it
	// never does, and reapOld keeps keepSnapshots.
	fs, err := raft.NewFileSnapshotStoreWithLogger(dir, 1<<20, hl)
	if err != nil {
		return nil, err
	}
	return &snapshotStore{FileSnapshotStore: fs, dir: dir, logger: logger}, nil
}

func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &reapingSink{SnapshotSink: sink, store: s}, nil
}

// reapOld removes the snapshots beyond the newest keepSnapshots.
func (s *snapshotStore) reapOld() {
	s.reap.Lock()
	defer s.reap.Unlock()
	list, err := s.List()
	if err != nil {
		s.logger.Warn("listing snapshots to remove old ones", "err", err)
		return
	}
	for _, m := range list[min(keepSnapshots, len(list)):] {
		path := filepath.Join(s.dir, "snapshots", m.ID)
		if err := fsutil.RemoveGradually(filepath.Join(path, "state.bin")); err == nil {
			err = os.RemoveAll(path)
		}
		if err != nil {
			s.logger.Warn("removing an old snapshot", "snapshot", m.ID, "err", err)
			continue
		}
		s.logger.Info("removed old snapshot", "snapshot", m.ID)
	}
}

// reapingSink reaps old snapshots once its own is complete.
type reapingSink struct {
	raft.SnapshotSink
	store *snapshotStore
}

func (k *reapingSink) Close() error {
	if err := k.SnapshotSink.Close(); err != nil {
		return err
	}
	go k.store.reapOld()
	return nil
}

// snapshotSyncEvery is how much of a snapshot may be written but not yet
// flushed to disk.
const snapshotSyncEvery = 32 << 20

// syncingWriter writes to w and flushes f, the file behind w, every
// snapshotSyncEvery bytes.
type syncingWriter struct {
	w       io.Writer
	f       *os.File
	pending int
}

func (s *syncingWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.pending += n
	if err == nil && s.pending >= snapshotSyncEvery {
		s.pending = 0
		err = s.f.Sync()
	}
	return n, err
}
