package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nebula-engine/nebula/storage"
)

// PutCredential inserts the credential (tenant, name) or replaces every
// field of the stored one, CreatedAt included: the caller owns the record.
func (tx *Tx) PutCredential(ctx context.Context, c *storage.Credential) error {
	_, err := tx.stmt(ctx, stmtCredentialPut).ExecContext(ctx,
		c.TenantID, c.Name, c.Type, c.Data, unixNano(c.CreatedAt), unixNano(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: put credential %q: %w", c.Name, err)
	}
	return nil
}

// GetCredential returns the credential (tenant, name).
func (tx *Tx) GetCredential(ctx context.Context, tenant, name string) (*storage.Credential, error) {
	c, err := scanCredential(tx.stmt(ctx, stmtCredentialGet).QueryRowContext(ctx, tenant, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, credentialNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get credential %q: %w", name, err)
	}
	return c, nil
}

// ListCredentials returns the tenant's credentials ordered by name.
func (tx *Tx) ListCredentials(ctx context.Context, tenant string) ([]*storage.Credential, error) {
	return tx.listCredentials(ctx, stmtCredentialList, tenant)
}

// ListAllCredentials returns every tenant's credentials, by tenant then
// name.
func (tx *Tx) ListAllCredentials(ctx context.Context) ([]*storage.Credential, error) {
	return tx.listCredentials(ctx, stmtCredentialListAll)
}

func (tx *Tx) listCredentials(ctx context.Context, st stmtID, args ...any) ([]*storage.Credential, error) {
	rows, err := tx.stmt(ctx, st).QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list credentials: %w", err)
	}
	defer rows.Close()
	var out []*storage.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list credentials: %w", err)
	}
	return out, nil
}

// DeleteCredential removes the credential (tenant, name).
func (tx *Tx) DeleteCredential(ctx context.Context, tenant, name string) error {
	res, err := tx.stmt(ctx, stmtCredentialDelete).ExecContext(ctx, tenant, name)
	if err != nil {
		return fmt.Errorf("sqlite: delete credential %q: %w", name, err)
	}
	ok, err := affected(res, "delete credential", name)
	if err != nil {
		return err
	}
	if !ok {
		return credentialNotFound(name)
	}
	return nil
}

func credentialNotFound(name string) error {
	return fmt.Errorf("credential %q: %w", name, storage.ErrNotFound)
}

// scanCredential reads the columns of credCols.
func scanCredential(sc scanner) (*storage.Credential, error) {
	var (
		c                storage.Credential
		created, updated int64
	)
	if err := sc.Scan(&c.TenantID, &c.Name, &c.Type, &c.Data, &created, &updated); err != nil {
		return nil, err
	}
	c.CreatedAt = fromUnixNano(created)
	c.UpdatedAt = fromUnixNano(updated)
	return &c, nil
}
