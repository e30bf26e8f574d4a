package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nebula-engine/nebula/storage"
)

// PutAction inserts one version of an action. A version that exists is
// left as it is: putting it again with the same module and capabilities
// succeeds, with anything else it is storage.ErrConflict.
func (tx *Tx) PutAction(ctx context.Context, a *storage.Action) error {
	caps, err := encodeCapabilities(a.Capabilities)
	if err != nil {
		return fmt.Errorf("sqlite: put action %s@%s: %w", a.ID, a.Version, err)
	}
	res, err := tx.stmt(ctx, stmtActionInsert).ExecContext(ctx,
		a.TenantID, a.ID, a.Version, caps, a.ModuleRef, a.Size, unixNano(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: put action %s@%s: %w", a.ID, a.Version, err)
	}
	inserted, err := affected(res, "put action", a.ID)
	if err != nil || inserted {
		return err
	}
	old, err := tx.GetAction(ctx, a.TenantID, a.ID, a.Version)
	if err != nil {
		return err
	}
	if old.ModuleRef != a.ModuleRef || !sameSet(old.Capabilities, a.Capabilities) {
		return fmt.Errorf("action %s@%s exists with another module or capabilities (versions are immutable): %w",
			a.ID, a.Version, storage.ErrConflict)
	}
	return nil
}

// GetAction returns one version of an action, or for version "" the
// highest by storage.CompareActionVersions.
func (tx *Tx) GetAction(ctx context.Context, tenant, id, version string) (*storage.Action, error) {
	if version != "" {
		a, err := scanAction(tx.stmt(ctx, stmtActionGet).QueryRowContext(ctx, tenant, id, version))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("action %s@%s: %w", id, version, storage.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: get action %s@%s: %w", id, version, err)
		}
		return a, nil
	}
	versions, err := tx.queryActions(ctx, "get action "+id, stmtActionVersions, tenant, id)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("action %s: %w", id, storage.ErrNotFound)
	}
	return slices.MaxFunc(versions, func(a, b *storage.Action) int {
		return storage.CompareActionVersions(a.Version, b.Version)
	}), nil
}

// ListActions returns the tenant's actions ordered by id then version. A
// page limit <= 0 returns all of them.
func (tx *Tx) ListActions(ctx context.Context, tenant string, page storage.Page) ([]*storage.Action, string, error) {
	var (
		out []*storage.Action
		err error
	)
	if page.Cursor == "" {
		out, err = tx.queryActions(ctx, "list actions", stmtActionList, tenant, pageLimitArg(page.Limit))
	} else {
		id, version, cerr := decodeActionCursor(page.Cursor)
		if cerr != nil {
			return nil, "", cerr
		}
		out, err = tx.queryActions(ctx, "list actions", stmtActionListAfter, tenant, id, version, pageLimitArg(page.Limit))
	}
	if err != nil {
		return nil, "", err
	}
	if page.Limit > 0 && len(out) > page.Limit {
		out = out[:page.Limit]
		last := out[len(out)-1]
		return out, encodeActionCursor(last.ID, last.Version), nil
	}
	return out, "", nil
}

// queryActions runs a statement that selects actionCols.
func (tx *Tx) queryActions(ctx context.Context, what string, id stmtID, args ...any) ([]*storage.Action, error) {
	rows, err := tx.stmt(ctx, id).QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*storage.Action
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// encodeActionCursor makes the cursor that resumes a list after (id,
// version). The pair travels as a JSON array, so any bytes in either are
// safe.
func encodeActionCursor(id, version string) string {
	b, _ := json.Marshal([2]string{id, version}) // strings always encode
	return encodeCursor(string(b))
}

func decodeActionCursor(c string) (id, version string, err error) {
	key, err := decodeCursor(c)
	if err != nil {
		return "", "", err
	}
	var pair [2]string
	if json.Unmarshal([]byte(key), &pair) != nil {
		return "", "", fmt.Errorf("%w %q", storage.ErrInvalidCursor, c)
	}
	return pair[0], pair[1], nil
}

// encodeCapabilities stores capabilities as a JSON array, "[]" for none.
func encodeCapabilities(caps []string) ([]byte, error) {
	if caps == nil {
		caps = []string{}
	}
	return json.Marshal(caps)
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// scanAction reads the columns of actionCols.
func scanAction(sc scanner) (*storage.Action, error) {
	var (
		a       storage.Action
		caps    []byte
		created int64
	)
	if err := sc.Scan(&a.TenantID, &a.ID, &a.Version, &caps, &a.ModuleRef, &a.Size, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(caps, &a.Capabilities); err != nil {
		return nil, fmt.Errorf("action %s@%s: capabilities: %w", a.ID, a.Version, err)
	}
	if len(a.Capabilities) == 0 {
		a.Capabilities = nil
	}
	a.CreatedAt = fromUnixNano(created)
	return &a, nil
}
