// Package fsm is Nebula's replicated state machine: it decodes log entries
// into engine commands and applies them to the SQLite state store, one
// transaction per group of entries, recording the last applied index in the
// same transaction so that replaying the log after a restart is harmless.
// It knows nothing of Raft; package cluster adapts it.
package fsm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

// Config configures an FSM.
type Config struct {
	Store   *sqlite.Store
	Machine *engine.Machine
	Logger  *slog.Logger
	// OnEvents, if set, is called after each committed transaction with
	// the events it produced. It runs on the apply path and must not block.
	OnEvents func([]engine.Event)
	// TempDir holds snapshot files while they are streamed; it should be
	// on the same file system as the store.
	TempDir string
}

// Entry is one log entry handed to the FSM.
type Entry struct {
	Index uint64
	// Data is the encoded batch; nil for entries that carry no command
	// (e.g. a configuration change), which only advance the index.
	Data []byte
}

// FSM applies log entries. Its methods are called from a single goroutine
// (the log's apply loop), except AppliedIndex.
type FSM struct {
	cfg     Config
	logger  *slog.Logger
	applied atomic.Uint64
}

// New returns an FSM over cfg.Store, resuming after the index the store
// already holds.
func New(ctx context.Context, cfg Config) (*FSM, error) {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	f := &FSM{cfg: cfg, logger: l}
	idx, err := cfg.Store.AppliedIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("fsm: read applied index: %w", err)
	}
	f.applied.Store(idx)
	return f, nil
}

// AppliedIndex is the index of the last entry whose changes are committed.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Apply applies entries in order in one transaction and returns, for each
// entry, the results of its commands ([]engine.Result; nil for entries that
// were already applied or carry no command).
//
// A failure to decode or to write is not something a replica may skip: it
// would diverge from the others. Apply panics, stopping the node, with the
// entry named.
func (f *FSM) Apply(entries []Entry) [][]engine.Result {
	results := make([][]engine.Result, len(entries))
	var events []engine.Event
	last := f.applied.Load()
	ctx := context.Background()
	err := f.cfg.Store.Update(ctx, func(tx *sqlite.Tx) error {
		for i, e := range entries {
			if e.Index <= last {
				continue // replayed after a restart: already in the store
			}
			last = e.Index
			if e.Data == nil {
				continue
			}
			b, err := DecodeBatch(e.Data)
			if err != nil {
				return fmt.Errorf("entry %d: %w", e.Index, err)
			}
			res := make([]engine.Result, len(b.Commands))
			for pos, cmd := range b.Commands {
				if cmd == nil {
					continue // optional command from a newer version
				}
				st := engine.Stamp{Now: b.Now, Index: e.Index, Pos: pos}
				r, evs, err := f.cfg.Machine.Apply(ctx, tx, st, cmd)
				if err != nil {
					return fmt.Errorf("entry %d command %d: %w", e.Index, pos, err)
				}
				res[pos] = r
				events = append(events, evs...)
			}
			results[i] = res
		}
		if last == f.applied.Load() {
			return nil
		}
		return tx.SetAppliedIndex(ctx, last)
	})
	if err != nil {
		f.logger.Error("apply failed; stopping", "err", err)
		panic(fmt.Sprintf("fsm: apply: %v", err))
	}
	f.applied.Store(last)
	if len(events) > 0 && f.cfg.OnEvents != nil {
		f.cfg.OnEvents(events)
	}
	return results
}

// Snapshot is a point-in-time copy of the state, captured on the apply
// goroutine and written out later, concurrently with further applies.
type Snapshot struct {
	path string
}

// Capture copies the current state into a temporary file. It runs between
// applies, so the copy matches AppliedIndex exactly.
func (f *FSM) Capture(ctx context.Context) (*Snapshot, error) {
	tmp, err := os.CreateTemp(f.cfg.TempDir, "snapshot-*.db")
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	path := tmp.Name()
	err = f.cfg.Store.Backup(ctx, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &Snapshot{path: path}, nil
}

// WriteTo streams the snapshot to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
}

// Release removes the snapshot's temporary file.
func (s *Snapshot) Release() { os.Remove(s.path) }

// Restore replaces the whole state with a snapshot's content.
func (f *FSM) Restore(ctx context.Context, r io.Reader) error {
	if err := f.cfg.Store.Restore(ctx, r); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	idx, err := f.cfg.Store.AppliedIndex(ctx)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.applied.Store(idx)
	f.logger.Info("state restored from snapshot", "index", idx)
	return nil
}
