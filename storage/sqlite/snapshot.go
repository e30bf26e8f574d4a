package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"
)

// A snapshot is taken in two steps so that the state machine never waits
// for a copy: Pin fixes a consistent view at once (a WAL read transaction
// on a connection of its own, which the writer's commits do not disturb),
// and WriteTo streams that view later, on another goroutine, while
// applies go on. It reads the view's pages through sqlite_dbpage, so the
// copy is the database file as it was at the pin, page for page, written
// once, with no intermediate file and nothing rebuilt.

// Pinned is a view of the database fixed when Pin returned.
type Pinned struct {
	db    *sql.DB
	tx    *sql.Tx
	pages int64
	once  sync.Once
}

// Pin fixes a consistent view of the database as it is now and returns at
// once; WriteTo copies it. Close releases it: a view held open keeps the
// WAL from being checkpointed past it.
func (s *Store) Pin(ctx context.Context) (*Pinned, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, errClosed()
	}
	p := &Pinned{}
	if err := p.open(ctx, s.path); err != nil {
		p.Close()
		return nil, fmt.Errorf("sqlite: pin: %w", err)
	}
	return p, nil
}

func (p *Pinned) open(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", dsn(path, nil, "busy_timeout(5000)", "query_only(1)"))
	if err != nil {
		return err
	}
	p.db = db
	// One connection: the transaction lives on it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if p.tx, err = db.BeginTx(ctx, nil); err != nil {
		return err
	}
	// The first read fixes the view; its size is part of it.
	return p.tx.QueryRowContext(ctx, `SELECT page_count FROM pragma_page_count()`).Scan(&p.pages)
}

// WriteTo writes the pinned view to w as a SQLite database file. It may
// run on any goroutine while the store is written; it can be called once.
func (p *Pinned) WriteTo(w io.Writer) (int64, error) {
	rows, err := p.tx.Query(`SELECT data FROM sqlite_dbpage WHERE pgno <= ? ORDER BY pgno`, p.pages)
	if err != nil {
		return 0, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	defer rows.Close()
	var n int64
	var pages int64
	var page []byte
	for rows.Next() {
		if err := rows.Scan(&page); err != nil {
			return n, fmt.Errorf("sqlite: snapshot: %w", err)
		}
		m, err := w.Write(page)
		n += int64(m)
		if err != nil {
			return n, fmt.Errorf("sqlite: snapshot: %w", err)
		}
		pages++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	if pages != p.pages {
		return n, fmt.Errorf("sqlite: snapshot: read %d pages of %d", pages, p.pages)
	}
	return n, nil
}

// Close releases the view.
func (p *Pinned) Close() error {
	var err error
	p.once.Do(func() {
		if p.tx != nil {
			err = p.tx.Rollback()
			if errors.Is(err, sql.ErrTxDone) {
				err = nil
			}
		}
		if p.db != nil {
			err = errors.Join(err, p.db.Close())
		}
	})
	return err
}
