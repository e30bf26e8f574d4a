package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nebula-engine/nebula/storage"
)

// Tx is one transaction of a Store, handed to the function given to Update
// or View. It implements storage.Repos with the same semantics as the
// Store's methods, all inside the one transaction. A Tx is valid only until
// that function returns, and must not be used by several goroutines at once.
//
// A method that fails with storage.ErrNotFound or storage.ErrConflict, or
// reports false, has written nothing, so the caller may carry on with the
// transaction: the FSM treats such outcomes as results, not failures.
type Tx struct {
	tx   *sql.Tx
	base *stmts
	// bound caches base statements bound to tx, made on first use: one
	// Update may run the same statement thousands of times.
	bound stmts
	// batch and memo: see batch.go.
	batch batch
	memo  txMemo
}

var _ storage.Repos = (*Tx)(nil)

func (tx *Tx) stmt(ctx context.Context, id stmtID) *sql.Stmt {
	if s := tx.bound[id]; s != nil {
		return s
	}
	// On the connection the statement was prepared on, StmtContext reuses
	// the prepared statement instead of parsing the SQL again.
	s := tx.tx.StmtContext(ctx, tx.base[id])
	tx.bound[id] = s
	return s
}

// SetAppliedIndex records the index of the last Raft log entry whose changes
// this transaction holds, so that the record and the changes commit (or are
// lost) together.
func (tx *Tx) SetAppliedIndex(ctx context.Context, index uint64) error {
	// Stored bit for bit as a signed INTEGER: only equality and round trips
	// matter, never SQL ordering.
	if _, err := tx.stmt(ctx, stmtMetaSetApplied).ExecContext(ctx, int64(index)); err != nil {
		return fmt.Errorf("sqlite: set applied index: %w", err)
	}
	return nil
}

// AppliedIndex returns the index last recorded by SetAppliedIndex, or 0.
func (tx *Tx) AppliedIndex(ctx context.Context) (uint64, error) {
	var v int64
	err := tx.stmt(ctx, stmtMetaGetApplied).QueryRowContext(ctx).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: read applied index: %w", err)
	}
	return uint64(v), nil
}

// Setting implements storage.SettingsRepo.
func (tx *Tx) Setting(ctx context.Context, key string, def int64) (int64, error) {
	if v, ok := tx.memo.settings[key]; ok {
		if v == nil {
			return def, nil
		}
		return *v, nil
	}
	var v int64
	err := tx.stmt(ctx, stmtSettingGet).QueryRowContext(ctx, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		tx.memoSetting(key, nil)
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: read setting %q: %w", key, err)
	}
	tx.memoSetting(key, &v)
	return v, nil
}

func (tx *Tx) memoSetting(key string, v *int64) {
	if tx.memo.settings == nil {
		tx.memo.settings = make(map[string]*int64)
	}
	tx.memo.settings[key] = v
}

// PutSetting implements storage.SettingsRepo.
func (tx *Tx) PutSetting(ctx context.Context, key string, value int64) error {
	if _, err := tx.stmt(ctx, stmtSettingPut).ExecContext(ctx, key, value); err != nil {
		return fmt.Errorf("sqlite: set setting %q: %w", key, err)
	}
	tx.memoSetting(key, &value)
	return nil
}
