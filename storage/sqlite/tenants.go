package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// CreateTenant inserts a tenant; an id that exists is storage.ErrConflict.
func (tx *Tx) CreateTenant(ctx context.Context, t *storage.Tenant) error {
	q := t.Quota
	res, err := tx.stmt(ctx, stmtTenantInsert).ExecContext(ctx, t.ID, t.Name,
		q.MaxWorkflows, q.MaxConcurrentExecutions, q.MaxExecutionsPerHour, q.MaxStorageMB, unixNano(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create tenant %q: %w", t.ID, err)
	}
	inserted, err := affected(res, "create tenant", t.ID)
	if err != nil {
		return err
	}
	if !inserted {
		return fmt.Errorf("tenant %q exists: %w", t.ID, storage.ErrConflict)
	}
	delete(tx.memo.tenants, t.ID)
	return nil
}

// GetTenant returns a tenant.
func (tx *Tx) GetTenant(ctx context.Context, id string) (*storage.Tenant, error) {
	t, ok := tx.memo.tenants[id]
	if !ok {
		var err error
		t, err = scanTenant(tx.stmt(ctx, stmtTenantGet).QueryRowContext(ctx, id))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: get tenant %q: %w", id, err)
		}
		if tx.memo.tenants == nil {
			tx.memo.tenants = make(map[string]*storage.Tenant)
		}
		tx.memo.tenants[id] = t // nil when there is none
	}
	if t == nil {
		return nil, fmt.Errorf("tenant %q: %w", id, storage.ErrNotFound)
	}
	c := *t
	return &c, nil
}

// ListTenants returns the default tenant, then the others by id. A page
// limit <= 0 returns all of them. The cursor is the last id listed; after
// "default", which comes first whatever its place in id order, the list
// goes on from the first of the others.
func (tx *Tx) ListTenants(ctx context.Context, page storage.Page) ([]*storage.Tenant, string, error) {
	var out []*storage.Tenant
	after := ""
	if page.Cursor == "" {
		def, err := tx.GetTenant(ctx, storage.DefaultTenant)
		if err != nil {
			return nil, "", err
		}
		out = append(out, def)
	} else {
		key, err := decodeCursor(page.Cursor)
		if err != nil {
			return nil, "", err
		}
		if key != storage.DefaultTenant {
			after = key
		}
	}
	rows, err := tx.stmt(ctx, stmtTenantListAfter).QueryContext(ctx, after, pageLimitArg(page.Limit))
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list tenants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list tenants: %w", err)
	}
	if page.Limit > 0 && len(out) > page.Limit {
		out = out[:page.Limit]
		return out, encodeCursor(out[len(out)-1].ID), nil
	}
	return out, "", nil
}

// SetTenantQuota replaces a tenant's quota.
func (tx *Tx) SetTenantQuota(ctx context.Context, id string, q storage.Quota) error {
	res, err := tx.stmt(ctx, stmtTenantSetQuota).ExecContext(ctx,
		q.MaxWorkflows, q.MaxConcurrentExecutions, q.MaxExecutionsPerHour, q.MaxStorageMB, id)
	if err != nil {
		return fmt.Errorf("sqlite: set quota of tenant %q: %w", id, err)
	}
	found, err := affected(res, "set quota of tenant", id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("tenant %q: %w", id, storage.ErrNotFound)
	}
	delete(tx.memo.tenants, id)
	return nil
}

// PutToken inserts a token of an existing tenant.
func (tx *Tx) PutToken(ctx context.Context, t *storage.Token) error {
	// Checked first so that a missing tenant is ErrNotFound rather than a
	// foreign key failure.
	if _, err := tx.GetTenant(ctx, t.TenantID); err != nil {
		return err
	}
	res, err := tx.stmt(ctx, stmtTokenInsert).ExecContext(ctx, t.TenantID, t.ID, t.Hash, unixNano(t.CreatedAt), unixNano(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("sqlite: put token %q: %w", t.ID, err)
	}
	inserted, err := affected(res, "put token", t.ID)
	if err != nil {
		return err
	}
	if !inserted {
		return fmt.Errorf("token %q of tenant %q, or its hash, exists: %w", t.ID, t.TenantID, storage.ErrConflict)
	}
	return nil
}

// TokenByHash returns the token with that hash and its tenant.
func (tx *Tx) TokenByHash(ctx context.Context, hash string) (*storage.Token, *storage.Tenant, error) {
	var (
		k                           storage.Token
		t                           storage.Tenant
		kCreated, revoked, tCreated int64
	)
	err := tx.stmt(ctx, stmtTokenByHash).QueryRowContext(ctx, hash).Scan(
		&k.TenantID, &k.ID, &k.Hash, &kCreated, &revoked,
		&t.ID, &t.Name, &t.Quota.MaxWorkflows, &t.Quota.MaxConcurrentExecutions, &t.Quota.MaxExecutionsPerHour, &t.Quota.MaxStorageMB, &tCreated)
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is not named: it is as good as a token.
		return nil, nil, fmt.Errorf("token: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: token by hash: %w", err)
	}
	k.CreatedAt, k.RevokedAt, t.CreatedAt = fromUnixNano(kCreated), fromUnixNano(revoked), fromUnixNano(tCreated)
	return &k, &t, nil
}

// ListTokens returns a tenant's tokens in creation order.
func (tx *Tx) ListTokens(ctx context.Context, tenant string) ([]*storage.Token, error) {
	rows, err := tx.stmt(ctx, stmtTokenList).QueryContext(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	defer rows.Close()
	var out []*storage.Token
	for rows.Next() {
		var (
			k                storage.Token
			created, revoked int64
		)
		if err := rows.Scan(&k.TenantID, &k.ID, &k.Hash, &created, &revoked); err != nil {
			return nil, fmt.Errorf("sqlite: list tokens: %w", err)
		}
		k.CreatedAt, k.RevokedAt = fromUnixNano(created), fromUnixNano(revoked)
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken marks a token revoked at at, unless it already was.
func (tx *Tx) RevokeToken(ctx context.Context, tenant, tokenID string, at time.Time) error {
	res, err := tx.stmt(ctx, stmtTokenRevoke).ExecContext(ctx, unixNano(at), tenant, tokenID)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %q: %w", tokenID, err)
	}
	found, err := affected(res, "revoke token", tokenID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("token %q of tenant %q: %w", tokenID, tenant, storage.ErrNotFound)
	}
	return nil
}

// scanTenant reads the columns of tenantCols.
func scanTenant(sc scanner) (*storage.Tenant, error) {
	var (
		t       storage.Tenant
		created int64
	)
	q := &t.Quota
	if err := sc.Scan(&t.ID, &t.Name, &q.MaxWorkflows, &q.MaxConcurrentExecutions, &q.MaxExecutionsPerHour, &q.MaxStorageMB, &created); err != nil {
		return nil, err
	}
	t.CreatedAt = fromUnixNano(created)
	return &t, nil
}
