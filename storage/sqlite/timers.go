package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// CreateTimer inserts t. A timer id that exists, in any tenant, is
// storage.ErrConflict; an unknown execution is storage.ErrNotFound.
func (tx *Tx) CreateTimer(ctx context.Context, t *storage.Timer) error {
	_, err := tx.stmt(ctx, stmtTimerInsert).ExecContext(ctx,
		t.TenantID, t.ID, t.ExecutionID, t.Node, t.Attempt, t.Kind, unixNano(t.DueAt))
	switch constraintOf(err) {
	case uniqueViolation:
		return fmt.Errorf("timer %q already exists: %w", t.ID, storage.ErrConflict)
	case foreignKeyViolation:
		return fmt.Errorf("timer %q: %w", t.ID, executionNotFound(t.ExecutionID))
	}
	if err != nil {
		return fmt.Errorf("sqlite: create timer %q: %w", t.ID, err)
	}
	if m := tx.createdHere(t.TenantID, t.ExecutionID); m != nil {
		m.timers = true
	}
	return nil
}

// DueTimers returns up to limit timers due at or before now, ordered by due
// time then id (all when limit <= 0). now comes from the caller: the store
// never reads the clock.
func (tx *Tx) DueTimers(ctx context.Context, now time.Time, limit int) ([]*storage.Timer, error) {
	rows, err := tx.stmt(ctx, stmtTimerDue).QueryContext(ctx, unixNano(now), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: due timers: %w", err)
	}
	defer rows.Close()
	var out []*storage.Timer
	for rows.Next() {
		t, err := scanTimer(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: due timers: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: due timers: %w", err)
	}
	return out, nil
}

// NextTimer returns the timer due first, the lowest id among those due at
// the same instant; storage.ErrNotFound when there are no timers.
func (tx *Tx) NextTimer(ctx context.Context) (*storage.Timer, error) {
	t, err := scanTimer(tx.stmt(ctx, stmtTimerNext).QueryRowContext(ctx))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("next timer: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: next timer: %w", err)
	}
	return t, nil
}

// DeleteTimer removes a timer by its global id and reports whether it
// existed.
func (tx *Tx) DeleteTimer(ctx context.Context, id string) (bool, error) {
	res, err := tx.stmt(ctx, stmtTimerDelete).ExecContext(ctx, id)
	if err != nil {
		return false, fmt.Errorf("sqlite: delete timer %q: %w", id, err)
	}
	return affected(res, "delete timer", id)
}

// DeleteExecutionTimers removes every timer of an execution and returns
// how many there were.
func (tx *Tx) DeleteExecutionTimers(ctx context.Context, tenant, executionID string) (int, error) {
	if m := tx.createdHere(tenant, executionID); m != nil && !m.timers {
		return 0, nil
	}
	res, err := tx.stmt(ctx, stmtTimerDeleteExecution).ExecContext(ctx, tenant, executionID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete timers of execution %q: %w", executionID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete timers of execution %q: %w", executionID, err)
	}
	return int(n), nil
}

// scanTimer reads the columns of timerCols.
func scanTimer(sc scanner) (*storage.Timer, error) {
	var (
		t   storage.Timer
		due int64
	)
	if err := sc.Scan(&t.TenantID, &t.ID, &t.ExecutionID, &t.Node, &t.Attempt, &t.Kind, &due); err != nil {
		return nil, err
	}
	t.DueAt = fromUnixNano(due)
	return &t, nil
}
