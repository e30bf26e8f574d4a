package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// CreateTask inserts t unleased, whatever its lease fields say. A task id
// that exists is storage.ErrConflict; an unknown execution is
// storage.ErrNotFound.
func (tx *Tx) CreateTask(ctx context.Context, t *storage.Task) error {
	_, err := tx.stmt(ctx, stmtTaskInsert).ExecContext(ctx,
		t.TenantID, t.ID, t.ExecutionID, t.Node, t.Attempt, t.Action, []byte(t.Params), int64(t.Timeout),
		unixNano(t.CreatedAt))
	switch constraintOf(err) {
	case uniqueViolation:
		return fmt.Errorf("task %q already exists: %w", t.ID, storage.ErrConflict)
	case foreignKeyViolation:
		return fmt.Errorf("task %q: %w", t.ID, executionNotFound(t.ExecutionID))
	}
	if err != nil {
		return fmt.Errorf("sqlite: create task %q: %w", t.ID, err)
	}
	if m := tx.createdHere(t.TenantID, t.ExecutionID); m != nil {
		m.tasks = true
	}
	return nil
}

// GetTask returns a task by its global id.
func (tx *Tx) GetTask(ctx context.Context, id string) (*storage.Task, error) {
	t, err := scanTask(tx.stmt(ctx, stmtTaskGet).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("task %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get task %q: %w", id, err)
	}
	return t, nil
}

// ReadyTasks returns up to limit unleased tasks in creation order (all when
// limit <= 0). Creation order is insertion order rather than CreatedAt, so
// that a clock stepping back between two leaders cannot reorder the queue.
func (tx *Tx) ReadyTasks(ctx context.Context, limit int) ([]*storage.Task, error) {
	return tx.queryTasks(ctx, "ready tasks", stmtTaskReady, limitArg(limit))
}

// AcquireLease grants l if the task is unleased or its lease expired at or
// before now. A missing task reports false, like a taken one: the task may
// have completed since the caller saw it.
func (tx *Tx) AcquireLease(ctx context.Context, taskID string, l storage.Lease, now time.Time) (bool, error) {
	if l.Token == 0 {
		// 0 marks an unleased task and means "any token" to DeleteTask.
		return false, fmt.Errorf("sqlite: acquire lease on task %q: token must not be 0", taskID)
	}
	// Tokens are uint64 and SQLite integers signed: storing them bit for
	// bit is lossless, and tokens are only ever compared for equality.
	res, err := tx.stmt(ctx, stmtTaskAcquire).ExecContext(ctx,
		l.Holder, int64(l.Token), unixNano(l.Expires), taskID, unixNano(now))
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire lease on task %q: %w", taskID, err)
	}
	return affected(res, "acquire lease on task", taskID)
}

// RenewLease moves the expiry of the lease with the given token. A missing
// task or another token reports false.
func (tx *Tx) RenewLease(ctx context.Context, taskID string, token uint64, expires time.Time) (bool, error) {
	res, err := tx.stmt(ctx, stmtTaskRenew).ExecContext(ctx, unixNano(expires), taskID, int64(token))
	if err != nil {
		return false, fmt.Errorf("sqlite: renew lease on task %q: %w", taskID, err)
	}
	return affected(res, "renew lease on task", taskID)
}

// FindStaleLeases returns up to limit leased tasks whose lease expired at or
// before now, oldest expiry first (all when limit <= 0).
func (tx *Tx) FindStaleLeases(ctx context.Context, now time.Time, limit int) ([]*storage.Task, error) {
	return tx.queryTasks(ctx, "stale leases", stmtTaskStale, unixNano(now), limitArg(limit))
}

// LeasedTasks returns up to limit leased tasks whose holder starts with
// holderPrefix, ordered by task id (all when limit <= 0).
func (tx *Tx) LeasedTasks(ctx context.Context, holderPrefix string, limit int) ([]*storage.Task, error) {
	return tx.queryTasks(ctx, "leased tasks", stmtTaskLeased, holderPrefix, limitArg(limit))
}

// DeleteTask removes a task; with a non-zero token only if it holds a lease
// with that token.
func (tx *Tx) DeleteTask(ctx context.Context, taskID string, token uint64) (bool, error) {
	var (
		res sql.Result
		err error
	)
	if token == 0 {
		res, err = tx.stmt(ctx, stmtTaskDelete).ExecContext(ctx, taskID)
	} else {
		res, err = tx.stmt(ctx, stmtTaskDeleteToken).ExecContext(ctx, taskID, int64(token))
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: delete task %q: %w", taskID, err)
	}
	return affected(res, "delete task", taskID)
}

// DeleteExecutionTasks removes every task of an execution and returns how
// many there were.
func (tx *Tx) DeleteExecutionTasks(ctx context.Context, tenant, executionID string) (int, error) {
	if m := tx.createdHere(tenant, executionID); m != nil && !m.tasks {
		return 0, nil
	}
	res, err := tx.stmt(ctx, stmtTaskDeleteExecution).ExecContext(ctx, tenant, executionID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete tasks of execution %q: %w", executionID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete tasks of execution %q: %w", executionID, err)
	}
	return int(n), nil
}

func (tx *Tx) queryTasks(ctx context.Context, what string, id stmtID, args ...any) ([]*storage.Task, error) {
	rows, err := tx.stmt(ctx, id).QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*storage.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// affected reports whether a single-row write matched its row.
func affected(res sql.Result, op, id string) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: %s %q: %w", op, id, err)
	}
	return n > 0, nil
}

// scanTask reads the columns of taskCols.
func scanTask(sc scanner) (*storage.Task, error) {
	var (
		t                storage.Task
		params           []byte
		timeout          int64
		created, expires int64
		token            int64
	)
	err := sc.Scan(&t.TenantID, &t.ID, &t.ExecutionID, &t.Node, &t.Attempt, &t.Action, &params, &timeout, &created,
		&t.LeaseHolder, &token, &expires)
	if err != nil {
		return nil, err
	}
	t.Params = params
	t.Timeout = time.Duration(timeout)
	t.CreatedAt = fromUnixNano(created)
	t.LeaseToken = uint64(token)
	t.LeaseExpires = fromUnixNano(expires)
	return &t, nil
}
