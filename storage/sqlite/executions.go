package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// CreateExecution inserts e, its nodes and its first journal entry. With an
// idempotency key that the tenant already used for the same workflow, it
// writes nothing and returns that execution (with its nodes) instead.
func (tx *Tx) CreateExecution(ctx context.Context, e *storage.Execution, first storage.JournalEntry) (*storage.Execution, bool, error) {
	if e.IdempotencyKey != "" {
		row := tx.stmt(ctx, stmtExecutionByKey).QueryRowContext(ctx, e.TenantID, e.WorkflowID, e.IdempotencyKey)
		existing, _, err := scanExecution(row)
		switch {
		case err == nil:
			if existing.Nodes, err = tx.nodes(ctx, existing.TenantID, existing.ID); err != nil {
				return nil, false, err
			}
			return existing, false, nil
		case !errors.Is(err, sql.ErrNoRows):
			return nil, false, fmt.Errorf("sqlite: create execution %q: %w", e.ID, err)
		}
	}

	// The insert is the first write, so a conflict leaves nothing behind.
	_, err := tx.stmt(ctx, stmtExecutionInsert).ExecContext(ctx,
		e.TenantID, e.ID, e.WorkflowID, e.WorkflowVersion, e.Status,
		[]byte(e.Input), []byte(e.Output), e.Error, e.IdempotencyKey, e.ParentID, e.ParentNode,
		unixNano(e.CreatedAt), unixNano(e.UpdatedAt), unixNano(e.FinishedAt))
	if err != nil {
		if constraintOf(err) == uniqueViolation {
			return nil, false, fmt.Errorf("execution %q already exists: %w", e.ID, storage.ErrConflict)
		}
		return nil, false, fmt.Errorf("sqlite: create execution %q: %w", e.ID, err)
	}
	tx.remember(e.TenantID, e.ID, true)
	if p := tx.memo.execs[execKey{e.TenantID, e.ParentID}]; p != nil && e.ParentID != "" {
		p.children = true
	}
	tx.countChange("", e.Status)

	// Map order is random; inserting in id order keeps the database file
	// identical on every replica.
	ids := make([]string, 0, len(e.Nodes))
	for id := range e.Nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tx.putNodeLater(nodeKey{execKey{e.TenantID, e.ID}, id}, e.Nodes[id])
	}
	if _, err := tx.AppendJournal(ctx, e.TenantID, e.ID, first); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// GetExecution returns the execution with its node states; Nodes is never
// nil.
func (tx *Tx) GetExecution(ctx context.Context, tenant, id string) (*storage.Execution, error) {
	row := tx.stmt(ctx, stmtExecutionGet).QueryRowContext(ctx, tenant, id)
	e, _, err := scanExecution(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, executionNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get execution %q: %w", id, err)
	}
	tx.remember(tenant, id, false)
	if e.Nodes, err = tx.nodes(ctx, tenant, id); err != nil {
		return nil, err
	}
	return e, nil
}

func (tx *Tx) nodes(ctx context.Context, tenant, executionID string) (map[string]*storage.NodeState, error) {
	if err := tx.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := tx.stmt(ctx, stmtNodeList).QueryContext(ctx, tenant, executionID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get nodes of execution %q: %w", executionID, err)
	}
	defer rows.Close()
	nodes := make(map[string]*storage.NodeState)
	for rows.Next() {
		var (
			n                 storage.NodeState
			output            []byte
			started, finished int64
		)
		if err := rows.Scan(&n.ID, &n.Status, &n.Attempts, &output, &n.Error, &started, &finished); err != nil {
			return nil, fmt.Errorf("sqlite: get nodes of execution %q: %w", executionID, err)
		}
		n.Output = output
		n.StartedAt = fromUnixNano(started)
		n.FinishedAt = fromUnixNano(finished)
		nodes[n.ID] = &n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: get nodes of execution %q: %w", executionID, err)
	}
	return nodes, nil
}

// ListExecutions returns executions in creation order, without node
// states. A page limit <= 0 returns all of them.
func (tx *Tx) ListExecutions(ctx context.Context, tenant string, f storage.ExecutionFilter, page storage.Page) ([]*storage.Execution, string, error) {
	var after int64
	if page.Cursor != "" {
		var err error
		if after, err = decodeSeqCursor(page.Cursor); err != nil {
			return nil, "", err
		}
	}
	args := make([]any, 0, 5)
	args = append(args, tenant)
	if f.WorkflowID != "" {
		args = append(args, f.WorkflowID)
	}
	if f.Status != "" {
		args = append(args, f.Status)
	}
	args = append(args, after, pageLimitArg(page.Limit))
	id := listExecutionsStmt(f.WorkflowID != "", f.Status != "")

	out, seqs, err := tx.queryExecutions(ctx, "list executions", id, args...)
	if err != nil {
		return nil, "", err
	}
	if page.Limit > 0 && len(out) > page.Limit {
		return out[:page.Limit], encodeSeqCursor(seqs[page.Limit-1]), nil
	}
	return out, "", nil
}

// ChildExecutions returns the executions started by parentID's
// subworkflow nodes, in creation order, without node states. An empty
// parentID has no children: top-level executions are nobody's.
func (tx *Tx) ChildExecutions(ctx context.Context, tenant, parentID string) ([]*storage.Execution, error) {
	if m := tx.createdHere(tenant, parentID); m != nil && !m.children {
		return nil, nil
	}
	what := fmt.Sprintf("child executions of %q", parentID)
	out, _, err := tx.queryExecutions(ctx, what, stmtExecutionChildren, tenant, parentID)
	return out, err
}

// PendingExecutions returns up to limit pending executions of every tenant
// in creation order (all when limit <= 0), without node states. Creation
// order is insertion order rather than CreatedAt, as for ReadyTasks.
func (tx *Tx) PendingExecutions(ctx context.Context, limit int) ([]*storage.Execution, error) {
	const pending = "pending"
	if n, ok := tx.memo.counts[pending]; ok && n == 0 {
		return nil, nil
	}
	out, _, err := tx.queryExecutions(ctx, "pending executions", stmtExecutionPending, limitArg(limit))
	if err == nil && (limit <= 0 || len(out) < limit) {
		tx.memoCount(pending, len(out))
	}
	return out, err
}

func (tx *Tx) memoCount(status string, n int) {
	if tx.memo.counts == nil {
		tx.memo.counts = make(map[string]int)
	}
	tx.memo.counts[status] = n
}

// CountExecutions returns how many executions of every tenant are in
// status.
func (tx *Tx) CountExecutions(ctx context.Context, status string) (int, error) {
	if n, ok := tx.memo.counts[status]; ok {
		return n, nil
	}
	var n int
	if err := tx.stmt(ctx, stmtExecutionCount).QueryRowContext(ctx, status).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count %q executions: %w", status, err)
	}
	tx.memoCount(status, n)
	return n, nil
}

// ExecutionByKey returns the execution of workflowID started with key.
func (tx *Tx) ExecutionByKey(ctx context.Context, tenant, workflowID, key string) (*storage.Execution, error) {
	e, _, err := scanExecution(tx.stmt(ctx, stmtExecutionByKey).QueryRowContext(ctx, tenant, workflowID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("execution with idempotency key %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: execution by key: %w", err)
	}
	return e, nil
}

// StoredBytes returns the bytes of the tenant's node outputs and modules.
// It reads every node of the tenant: quotas call it once, when a storage
// quota is set, and count from there.
func (tx *Tx) StoredBytes(ctx context.Context, tenant string) (int64, error) {
	if err := tx.flush(ctx); err != nil {
		return 0, err
	}
	var n int64
	if err := tx.stmt(ctx, stmtStoredBytes).QueryRowContext(ctx, tenant).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: stored bytes: %w", err)
	}
	return n, nil
}

// CountActiveExecutions returns how many of the tenant's executions are
// pending or running, up to limit.
func (tx *Tx) CountActiveExecutions(ctx context.Context, tenant string, limit int) (int, error) {
	var n int
	if err := tx.stmt(ctx, stmtExecutionCountActive).QueryRowContext(ctx, tenant, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count active executions: %w", err)
	}
	return n, nil
}

// NthRecentExecution returns the creation time of the tenant's n-th most
// recent execution. Executions are created in seq order, so walking the
// tenant's index backwards from the newest finds it in n steps.
func (tx *Tx) NthRecentExecution(ctx context.Context, tenant string, n int) (time.Time, bool, error) {
	if n < 1 {
		return time.Time{}, false, nil
	}
	var created int64
	err := tx.stmt(ctx, stmtExecutionNthRecent).QueryRowContext(ctx, tenant, n-1).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: recent executions: %w", err)
	}
	return fromUnixNano(created), true, nil
}

// queryExecutions runs a statement whose rows are executionCols and
// returns the executions with their seqs, in row order.
func (tx *Tx) queryExecutions(ctx context.Context, what string, id stmtID, args ...any) ([]*storage.Execution, []int64, error) {
	rows, err := tx.stmt(ctx, id).QueryContext(ctx, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var (
		out  []*storage.Execution
		seqs []int64
	)
	for rows.Next() {
		e, seq, err := scanExecution(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, e)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, seqs, nil
}

// Transition moves the execution from one status to another if it is still
// in from, and appends entry to its journal. The stored UpdatedAt becomes
// entry.At: the time comes from the caller, never from the clock.
func (tx *Tx) Transition(ctx context.Context, tenant, id, from, to string, entry storage.JournalEntry, update *storage.ExecutionUpdate) (bool, error) {
	var (
		res sql.Result
		err error
	)
	at := unixNano(entry.At)
	if update == nil {
		res, err = tx.stmt(ctx, stmtExecutionTransition).ExecContext(ctx, to, at, tenant, id, from)
	} else {
		res, err = tx.stmt(ctx, stmtExecutionTransitionUpdate).ExecContext(ctx,
			to, at, []byte(update.Output), update.Error, unixNano(update.FinishedAt), tenant, id, from)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: transition execution %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: transition execution %q: %w", id, err)
	}
	if n == 0 {
		// Lost CAS or no such execution: only the latter is an error.
		var one int
		err := tx.stmt(ctx, stmtExecutionExists).QueryRowContext(ctx, tenant, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, executionNotFound(id)
		}
		if err != nil {
			return false, fmt.Errorf("sqlite: transition execution %q: %w", id, err)
		}
		return false, nil
	}
	tx.remember(tenant, id, false)
	tx.countChange(from, to)
	if _, err := tx.AppendJournal(ctx, tenant, id, entry); err != nil {
		return false, err
	}
	return true, nil
}

// PutNode inserts or replaces the state of one node. An unknown execution is
// storage.ErrNotFound.
func (tx *Tx) PutNode(ctx context.Context, tenant, executionID string, n *storage.NodeState) error {
	return tx.putNode(ctx, tenant, executionID, n.ID, n)
}

func (tx *Tx) putNode(ctx context.Context, tenant, executionID, nodeID string, n *storage.NodeState) error {
	if _, err := tx.known(ctx, tenant, executionID); err != nil {
		return err
	}
	tx.putNodeLater(nodeKey{execKey{tenant, executionID}, nodeID}, n)
	return nil
}

// AppendJournal appends e to the execution's journal and returns its
// sequence number. An unknown execution is storage.ErrNotFound.
func (tx *Tx) AppendJournal(ctx context.Context, tenant, executionID string, e storage.JournalEntry) (int64, error) {
	m, err := tx.known(ctx, tenant, executionID)
	if err != nil {
		return 0, err
	}
	if m.seq < 0 {
		// Nothing of this execution's is buffered yet: the table is
		// up to date for it.
		err := tx.stmt(ctx, stmtJournalLastSeq).QueryRowContext(ctx, tenant, executionID).Scan(&m.seq)
		if err != nil {
			return 0, fmt.Errorf("sqlite: append journal of execution %q: %w", executionID, err)
		}
	}
	m.seq++
	tx.batch.journal = append(tx.batch.journal, journalRow{exec: execKey{tenant, executionID}, seq: m.seq, entry: e})
	return m.seq, nil
}

// Journal returns the entries with Seq > afterSeq in order, at most limit
// (all when limit <= 0). An unknown execution has an empty journal.
func (tx *Tx) Journal(ctx context.Context, tenant, executionID string, afterSeq int64, limit int) ([]storage.JournalEntry, error) {
	if err := tx.flush(ctx); err != nil {
		return nil, err
	}
	// Each row holds at least one entry past afterSeq, so limit rows
	// are enough.
	rows, err := tx.stmt(ctx, stmtJournalRead).QueryContext(ctx, tenant, executionID, afterSeq, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: read journal of execution %q: %w", executionID, err)
	}
	defer rows.Close()
	var out []storage.JournalEntry
	for rows.Next() {
		var (
			e          storage.JournalEntry
			at, last   int64
			data, more []byte
		)
		if err := rows.Scan(&e.Seq, &e.Type, &at, &e.Node, &e.Attempt, &e.IdempotencyKey, &data, &last, &more); err != nil {
			return nil, fmt.Errorf("sqlite: read journal of execution %q: %w", executionID, err)
		}
		e.At = fromUnixNano(at)
		e.Data = data
		out = append(out, e)
		if out, err = unpack(out, e.Seq+1, more); err != nil {
			return nil, fmt.Errorf("sqlite: read journal of execution %q: %w", executionID, err)
		}
		if got := out[len(out)-1].Seq; got != last {
			return nil, fmt.Errorf("sqlite: read journal of execution %q: row %d ends at entry %d, want %d", executionID, e.Seq, got, last)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read journal of execution %q: %w", executionID, err)
	}
	// Only the first row may hold entries up to afterSeq.
	skip := 0
	for skip < len(out) && out[skip].Seq <= afterSeq {
		skip++
	}
	out = out[skip:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func executionNotFound(id string) error {
	return fmt.Errorf("execution %q: %w", id, storage.ErrNotFound)
}

// scanExecution reads the columns of executionCols and returns the row's
// seq too, which list cursors are made of.
func scanExecution(sc scanner) (*storage.Execution, int64, error) {
	var (
		e                          storage.Execution
		seq                        int64
		input, output              []byte
		created, updated, finished int64
	)
	err := sc.Scan(&seq, &e.TenantID, &e.ID, &e.WorkflowID, &e.WorkflowVersion, &e.Status,
		&input, &output, &e.Error, &e.IdempotencyKey, &e.ParentID, &e.ParentNode, &created, &updated, &finished)
	if err != nil {
		return nil, 0, err
	}
	e.Input = input
	e.Output = output
	e.CreatedAt = fromUnixNano(created)
	e.UpdatedAt = fromUnixNano(updated)
	e.FinishedAt = fromUnixNano(finished)
	return &e, seq, nil
}
