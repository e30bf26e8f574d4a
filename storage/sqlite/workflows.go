package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nebula-engine/nebula/storage"
)

// PutWorkflow stores w as the next version of (w.TenantID, w.ID) and sets
// w.Version. Saving a deleted workflow's id makes it visible again with the
// next version number: numbers are never reused, because executions refer to
// versions by number.
func (tx *Tx) PutWorkflow(ctx context.Context, w *storage.Workflow) error {
	// Demoting the current latest row returns its version, which saves a
	// separate lookup; it must precede the insert because of the unique
	// "latest" index.
	var prev int
	err := tx.stmt(ctx, stmtWorkflowRetire).QueryRowContext(ctx, w.TenantID, w.ID).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: put workflow %q: %w", w.ID, err)
	}
	version := prev + 1
	_, err = tx.stmt(ctx, stmtWorkflowInsert).ExecContext(ctx,
		w.TenantID, w.ID, version, w.Name, []byte(w.Definition), unixNano(w.CreatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: put workflow %q: %w", w.ID, err)
	}
	w.Version = version
	clear(tx.memo.workflows)
	return nil
}

// GetWorkflow returns one version of a workflow that is not deleted; version
// 0 means the latest.
func (tx *Tx) GetWorkflow(ctx context.Context, tenant, id string, version int) (*storage.Workflow, error) {
	k := workflowKey{tenant, id, version}
	if w, ok := tx.memo.workflows[k]; ok {
		c := *w
		return &c, nil
	}
	w, err := tx.getWorkflow(ctx, tenant, id, version)
	if err == nil {
		if tx.memo.workflows == nil {
			tx.memo.workflows = make(map[workflowKey]*storage.Workflow)
		}
		c := *w
		tx.memo.workflows[k] = &c
	}
	return w, err
}

func (tx *Tx) getWorkflow(ctx context.Context, tenant, id string, version int) (*storage.Workflow, error) {
	var row *sql.Row
	switch {
	case version == 0:
		row = tx.stmt(ctx, stmtWorkflowLatest).QueryRowContext(ctx, tenant, id)
	case version > 0:
		row = tx.stmt(ctx, stmtWorkflowLive).QueryRowContext(ctx, tenant, id, version)
	default:
		return nil, workflowNotFound(id, version)
	}
	return scanWorkflowRow(row, id, version)
}

// GetWorkflowVersion returns an exact version, deleted or not.
func (tx *Tx) GetWorkflowVersion(ctx context.Context, tenant, id string, version int) (*storage.Workflow, error) {
	row := tx.stmt(ctx, stmtWorkflowVersion).QueryRowContext(ctx, tenant, id, version)
	return scanWorkflowRow(row, id, version)
}

// ListWorkflows returns the latest version of each workflow that is not
// deleted, ordered by id. A page limit <= 0 returns all of them.
func (tx *Tx) ListWorkflows(ctx context.Context, tenant string, page storage.Page) ([]*storage.Workflow, string, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if page.Cursor == "" {
		rows, err = tx.stmt(ctx, stmtWorkflowList).QueryContext(ctx, tenant, pageLimitArg(page.Limit))
	} else {
		after, cerr := decodeCursor(page.Cursor)
		if cerr != nil {
			return nil, "", cerr
		}
		rows, err = tx.stmt(ctx, stmtWorkflowListAfter).QueryContext(ctx, tenant, after, pageLimitArg(page.Limit))
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list workflows: %w", err)
	}
	defer rows.Close()
	var out []*storage.Workflow
	for rows.Next() {
		w, err := scanWorkflow(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list workflows: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list workflows: %w", err)
	}
	if page.Limit > 0 && len(out) > page.Limit {
		out = out[:page.Limit]
		return out, encodeCursor(out[len(out)-1].ID), nil
	}
	return out, "", nil
}

// DeleteWorkflow hides the workflow from GetWorkflow and ListWorkflows.
// Deleting a missing or already deleted workflow is storage.ErrNotFound.
func (tx *Tx) DeleteWorkflow(ctx context.Context, tenant, id string) error {
	res, err := tx.stmt(ctx, stmtWorkflowDelete).ExecContext(ctx, tenant, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete workflow %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: delete workflow %q: %w", id, err)
	}
	if n == 0 {
		return workflowNotFound(id, 0)
	}
	clear(tx.memo.workflows)
	return nil
}

func workflowNotFound(id string, version int) error {
	if version == 0 {
		return fmt.Errorf("workflow %q: %w", id, storage.ErrNotFound)
	}
	return fmt.Errorf("workflow %q version %d: %w", id, version, storage.ErrNotFound)
}

func scanWorkflowRow(row *sql.Row, id string, version int) (*storage.Workflow, error) {
	w, err := scanWorkflow(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, workflowNotFound(id, version)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get workflow %q: %w", id, err)
	}
	return w, nil
}

// scanWorkflow reads the columns of workflowCols.
func scanWorkflow(sc scanner) (*storage.Workflow, error) {
	var (
		w       storage.Workflow
		def     []byte
		created int64
	)
	if err := sc.Scan(&w.TenantID, &w.ID, &w.Version, &w.Name, &def, &created); err != nil {
		return nil, err
	}
	w.Definition = def
	w.CreatedAt = fromUnixNano(created)
	return &w, nil
}

// CountWorkflows returns how many live workflows the tenant has, up to
// limit.
func (tx *Tx) CountWorkflows(ctx context.Context, tenant string, limit int) (int, error) {
	var n int
	if err := tx.stmt(ctx, stmtWorkflowCount).QueryRowContext(ctx, tenant, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count workflows: %w", err)
	}
	return n, nil
}
