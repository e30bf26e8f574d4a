package sqlite

import (
	"context"
	"fmt"

	"github.com/nebula-engine/nebula/storage"
)

// DeferExecution records that the execution has work left for a later
// command; an execution already deferred keeps its place.
func (tx *Tx) DeferExecution(ctx context.Context, tenant, executionID string, seq uint64) error {
	_, err := tx.stmt(ctx, stmtDeferInsert).ExecContext(ctx, tenant, int64(seq), executionID)
	switch constraintOf(err) {
	case foreignKeyViolation:
		return fmt.Errorf("defer execution: %w", executionNotFound(executionID))
	}
	if err != nil {
		return fmt.Errorf("sqlite: defer execution %q: %w", executionID, err)
	}
	return nil
}

// DeferredExecutions returns up to limit deferred executions, tenants
// taking turns, oldest first within a turn.
func (tx *Tx) DeferredExecutions(ctx context.Context, limit int) ([]storage.Deferred, error) {
	rows, err := tx.stmt(ctx, stmtDeferList).QueryContext(ctx, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: deferred executions: %w", err)
	}
	defer rows.Close()
	var out []storage.Deferred
	for rows.Next() {
		var d storage.Deferred
		var seq int64
		if err := rows.Scan(&d.TenantID, &d.ExecutionID, &seq); err != nil {
			return nil, fmt.Errorf("sqlite: deferred executions: %w", err)
		}
		d.Seq = uint64(seq)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: deferred executions: %w", err)
	}
	return out, nil
}

// ResumeExecution removes the execution's deferral.
func (tx *Tx) ResumeExecution(ctx context.Context, tenant, executionID string) (bool, error) {
	res, err := tx.stmt(ctx, stmtDeferDelete).ExecContext(ctx, tenant, executionID)
	if err != nil {
		return false, fmt.Errorf("sqlite: resume execution %q: %w", executionID, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// CountDeferred returns how many executions are deferred.
func (tx *Tx) CountDeferred(ctx context.Context) (int, error) {
	var n int
	if err := tx.stmt(ctx, stmtDeferCount).QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count deferred: %w", err)
	}
	return n, nil
}
