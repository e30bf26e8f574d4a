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
	"sync/atomic"
	"time"

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
	// OnEntry, if set, is told what each entry cost once its transaction
	// committed. It runs on the apply path and must not block.
	OnEntry func(EntryStats)
	// SlowEntry is the apply time above which an entry is logged, with
	// the execution that spent most in it; zero picks 100ms.
	SlowEntry time.Duration
}

// EntryStats is what applying one entry took: its commands' time (the
// transaction's commit is shared by the entries applied together and not
// counted) and the inline work it did (see engine.Budget).
type EntryStats struct {
	Index    uint64
	Commands int
	Duration time.Duration
	// Cost is the CEL cost spent, Nodes the node attempts started and
	// Deferred the executions left for a later entry.
	Cost     uint64
	Nodes    int
	Deferred int
	// Tenant, Workflow and Execution name the execution that spent the
	// most CEL cost in a slow entry (one over Config.SlowEntry).
	Tenant, Workflow, Execution string
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
	if cfg.SlowEntry == 0 {
		cfg.SlowEntry = 100 * time.Millisecond
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
	var stats []EntryStats
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
			began := time.Now()
			// One budget for the whole entry: its commands share it.
			work := engine.NewWork()
			res := make([]engine.Result, len(b.Commands))
			for pos, cmd := range b.Commands {
				if cmd == nil {
					continue // optional command from a newer version
				}
				st := engine.Stamp{Now: b.Now, Index: e.Index, Pos: pos, Work: work}
				r, evs, err := f.cfg.Machine.Apply(ctx, tx, st, cmd)
				if err != nil {
					return fmt.Errorf("entry %d command %d: %w", e.Index, pos, err)
				}
				res[pos] = r
				events = append(events, evs...)
			}
			results[i] = res
			es := EntryStats{Index: e.Index, Commands: len(b.Commands), Duration: time.Since(began),
				Cost: work.Cost(), Nodes: work.Nodes(), Deferred: work.Deferred()}
			if es.Duration >= f.cfg.SlowEntry {
				// Only a slow entry is logged with who spent most in it.
				es.Tenant, es.Workflow, es.Execution, _ = work.Heaviest()
			}
			stats = append(stats, es)
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
	for _, es := range stats {
		if es.Duration >= f.cfg.SlowEntry {
			f.logger.Warn("slow log entry", "index", es.Index, "took", es.Duration.Round(time.Microsecond),
				"commands", es.Commands, "cel_cost", es.Cost, "nodes", es.Nodes, "deferred", es.Deferred,
				"tenant", es.Tenant, "workflow", es.Workflow, "execution", es.Execution)
		}
		if f.cfg.OnEntry != nil {
			f.cfg.OnEntry(es)
		}
	}
	if len(events) > 0 && f.cfg.OnEvents != nil {
		f.cfg.OnEvents(events)
	}
	return results
}

// Snapshot is the state at one applied index: pinned on the apply
// goroutine, copied and written out later, concurrently with further
// applies.
type Snapshot struct {
	pinned *sqlite.Pinned
}

// Capture pins the current state. It runs between applies, so the view
// matches AppliedIndex exactly, and it only opens a read transaction: the
// copy is WriteTo's, so that no apply waits for it however large the
// state.
func (f *FSM) Capture(ctx context.Context) (*Snapshot, error) {
	p, err := f.cfg.Store.Pin(ctx)
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &Snapshot{pinned: p}, nil
}

// WriteTo copies the pinned state as a SQLite file to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) { return s.pinned.WriteTo(w) }

// Release lets go of the pinned state and its copy.
func (s *Snapshot) Release() { s.pinned.Close() }

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
