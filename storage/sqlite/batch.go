package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nebula-engine/nebula/storage"
)

// A write transaction of the FSM applies hundreds of commands, and each
// command writes the same few rows several times: a node's state once when
// its attempt starts and again when it ends, a journal row per step. Going
// through SQLite statement by statement made those writes most of the
// apply time. So Tx keeps them back (batch), and it remembers what it
// learnt during the transaction (txMemo):
//
//   - Node states and journal entries are buffered, the last state of each
//     node replacing earlier ones, and written with multi-row statements
//     before anything reads those tables and at commit; an execution's
//     entries share one row (journal.go). Row order is the order of the
//     calls, so every replica still writes identical rows.
//   - Journal sequence numbers are counted per execution in memory after
//     one lookup.
//   - Execution counts by status, and settings, tenants and workflows
//     read once, are kept and updated by the transaction's own writes.
//   - An execution created in the transaction has no tasks, timers or
//     children but those created in it, so deleting or listing them needs
//     no statement when there are none.
//
// Every method still answers exactly as if each call had gone to SQLite.

// execKey names an execution.
type execKey struct{ tenant, id string }

// execMemo is what a transaction knows of one execution.
type execMemo struct {
	// seq is the journal's last sequence number; -1 until looked up.
	seq int64
	// created: the execution was inserted by this transaction, so it has
	// only the tasks, timers and children the flags below record.
	created                 bool
	tasks, timers, children bool
}

type nodeKey struct {
	exec execKey
	node string
}

type nodeRow struct {
	key   nodeKey
	state storage.NodeState
}

type journalRow struct {
	exec  execKey
	seq   int64
	entry storage.JournalEntry
}

// batch holds the writes a Tx has not sent to SQLite yet.
type batch struct {
	nodes   []nodeRow
	nodeAt  map[nodeKey]int // index in nodes
	journal []journalRow
	runs    []journalRun    // journal rows being written, see journal.go
	runAt   map[execKey]int // index in runs
	scratch []any
}

// txMemo holds what a Tx has read or written, valid only within it.
type txMemo struct {
	execs    map[execKey]*execMemo
	counts   map[string]int // executions by status, for statuses counted
	settings map[string]*int64
	tenants  map[string]*storage.Tenant // nil value: no such tenant
	// workflows found by GetWorkflow; any workflow write clears them.
	workflows map[workflowKey]*storage.Workflow
}

type workflowKey struct {
	tenant, id string
	version    int
}

// known returns the memo of an execution that exists, checking once.
func (tx *Tx) known(ctx context.Context, tenant, id string) (*execMemo, error) {
	k := execKey{tenant, id}
	if m := tx.memo.execs[k]; m != nil {
		return m, nil
	}
	var one int
	err := tx.stmt(ctx, stmtExecutionExists).QueryRowContext(ctx, tenant, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, executionNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: execution %q: %w", id, err)
	}
	return tx.remember(tenant, id, false), nil
}

// remember records that an execution exists.
func (tx *Tx) remember(tenant, id string, created bool) *execMemo {
	k := execKey{tenant, id}
	if m := tx.memo.execs[k]; m != nil {
		return m
	}
	if tx.memo.execs == nil {
		tx.memo.execs = make(map[execKey]*execMemo)
	}
	m := &execMemo{seq: -1, created: created}
	if created {
		m.seq = 0
	}
	tx.memo.execs[k] = m
	return m
}

// createdHere returns the memo of an execution this transaction created,
// or nil.
func (tx *Tx) createdHere(tenant, id string) *execMemo {
	if m := tx.memo.execs[execKey{tenant, id}]; m != nil && m.created {
		return m
	}
	return nil
}

// countChange keeps the memo of execution counts in step with a status
// change ("" for none).
func (tx *Tx) countChange(from, to string) {
	if n, ok := tx.memo.counts[from]; ok && from != "" {
		tx.memo.counts[from] = n - 1
	}
	if n, ok := tx.memo.counts[to]; ok && to != "" {
		tx.memo.counts[to] = n + 1
	}
}

func (tx *Tx) putNodeLater(k nodeKey, n *storage.NodeState) {
	b := &tx.batch
	if i, ok := b.nodeAt[k]; ok {
		b.nodes[i].state = *n
		return
	}
	if b.nodeAt == nil {
		b.nodeAt = make(map[nodeKey]int)
	}
	b.nodeAt[k] = len(b.nodes)
	b.nodes = append(b.nodes, nodeRow{key: k, state: *n})
}

// flush writes the buffered rows. Reads of nodes and journal call it
// first; the transaction calls it before committing.
func (tx *Tx) flush(ctx context.Context) error {
	b := &tx.batch
	if len(b.nodes) > 0 {
		err := tx.writeRows(ctx, stmtNodeBatch, len(b.nodes), func(i int, args []any) []any {
			r := &b.nodes[i]
			n := &r.state
			return append(args, r.key.exec.tenant, r.key.exec.id, r.key.node, n.Status, n.Attempts,
				[]byte(n.Output), n.Error, unixNano(n.StartedAt), unixNano(n.FinishedAt))
		})
		if err != nil {
			return fmt.Errorf("sqlite: write node states: %w", err)
		}
		b.nodes = b.nodes[:0]
		clear(b.nodeAt)
	}
	if len(b.journal) > 0 {
		runs := b.journalRuns()
		err := tx.writeRows(ctx, stmtJournalBatch, len(runs), func(i int, args []any) []any {
			run := &runs[i]
			r := &b.journal[run.first]
			e := &r.entry
			return append(args, r.exec.tenant, r.exec.id, r.seq, e.Type, unixNano(e.At), e.Node, e.Attempt,
				e.IdempotencyKey, []byte(e.Data), run.last, run.more)
		})
		if err != nil {
			return fmt.Errorf("sqlite: append journal: %w", err)
		}
		clear(runs)
		b.runs = runs[:0]
		clear(b.journal) // drop references to entry data
		b.journal = b.journal[:0]
	}
	return nil
}

// writeRows runs the multi-row statements of family first over n rows,
// largest first, each row's arguments appended by row.
func (tx *Tx) writeRows(ctx context.Context, first stmtID, n int, row func(i int, args []any) []any) error {
	for i := 0; i < n; {
		k := batchKinds - 1
		for 1<<k > n-i {
			k--
		}
		args := tx.batch.scratch[:0]
		for j := range 1 << k {
			args = row(i+j, args)
		}
		if _, err := tx.stmt(ctx, first+stmtID(k)).ExecContext(ctx, args...); err != nil {
			return err
		}
		clear(args) // drop references to outputs until the next use
		tx.batch.scratch = args
		i += 1 << k
	}
	return nil
}
