// Package sqlite is Nebula's state store: the storage.Repos implementation
// on SQLite (modernc.org/sqlite, pure Go) that sits under the replicated
// state machine on every node, and that tests and tools may also use alone.
//
// The FSM applies each Raft log entry as one write transaction through
// Update, so the store is built for that shape:
//
//   - Writes go through a single connection (SQLite allows one writer
//     anyway, and a pool would only add lock contention); reads use a small
//     pool of read-only connections, and in WAL mode they never block the
//     writer nor wait for it.
//   - Every statement is prepared once per connection and reused.
//   - A transaction writes node states and journal rows in bulk when it
//     commits, an execution's new journal entries in one row (journal.go),
//     and remembers what it has read (see batch.go).
//   - Nothing here reads the clock or generates random values, and every
//     result is ordered on a unique key, so identical calls on two replicas
//     produce identical databases.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nebula-engine/nebula/storage"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// readConns is the size of the read pool: enough for the API and the
// dispatcher to read concurrently on a small machine, few enough that each
// connection's page cache stays warm.
const readConns = 4

// Config configures a Store.
type Config struct {
	// Path is the database file; its directory must exist. The store also
	// creates Path-wal and Path-shm, and temporary files next to Path
	// during Backup and Restore.
	Path string
	// Logger receives open, migration and restore events; nil discards
	// them.
	Logger *slog.Logger
}

// Store is a SQLite database holding Nebula's state. It implements
// storage.Repos, each method in its own transaction; Update and View run
// several operations in one.
type Store struct {
	path   string
	logger *slog.Logger

	// mu guards db. Every operation holds it shared for as long as it uses
	// the handles; Restore and Close hold it exclusively to swap or close
	// them, so no operation ever sees a closed handle.
	mu sync.RWMutex
	db *handles // nil once closed
}

var _ storage.Repos = (*Store)(nil)

// handles are the connection pools of one open database file and the
// statements prepared on them.
type handles struct {
	writer, reader *sql.DB
	wstmts, rstmts *stmts
	// checkpoints copies the WAL into the database file on a connection
	// of its own; stopCheckpoints ends it.
	checkpoints     *sql.DB
	stopCheckpoints func()
}

// Open opens the database at cfg.Path, creating it if needed, and brings its
// schema up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: Config.Path is empty")
	}
	// The driver splits its DSN at the first '?', so such a path would be
	// silently truncated.
	if strings.ContainsRune(cfg.Path, '?') {
		return nil, fmt.Errorf("sqlite: path %q must not contain '?'", cfg.Path)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: cfg.Path, logger: logger}
	db, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	s.db = db
	return s, nil
}

// dsn builds a modernc.org/sqlite data source name. Pragmas go in _pragma
// parameters so that the driver applies them to every connection it opens,
// including ones database/sql opens later to replace a broken one.
func dsn(path string, params url.Values, pragmas ...string) string {
	v := url.Values{"_pragma": pragmas}
	for k, vs := range params {
		v[k] = vs
	}
	return path + "?" + v.Encode()
}

func (s *Store) open(ctx context.Context) (*handles, error) {
	// synchronous=NORMAL may lose the last transactions on power loss but
	// never corrupts; the Raft log is the durable record and replays them.
	// _txlock=immediate takes the write lock at BEGIN, so a transaction
	// that reads first never meets SQLITE_BUSY at its first write (as it
	// could if another process, such as the sqlite3 shell, holds the file).
	writer, err := sql.Open("sqlite", dsn(s.path, url.Values{"_txlock": {"immediate"}},
		"busy_timeout(5000)",
		"cache_size(-16384)", // KiB: 16 MiB of page cache for the writer
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
		// The writer never checkpoints (see checkpointLoop): a checkpoint
		// at a commit holds that commit, and every apply behind it, for
		// as long as it copies and syncs; after a snapshot held the WAL
		// that is tens of megabytes.
		"wal_autocheckpoint(0)",
		// The WAL file is cut back to this size when it restarts.
		"journal_size_limit(67108864)",
	))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	h := &handles{writer: writer}

	// Connecting the writer first converts the file to WAL before any
	// reader opens it.
	if err := writer.PingContext(ctx); err != nil {
		h.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	from, to, err := migrate(ctx, writer)
	if err != nil {
		h.close()
		return nil, err
	}
	if from != to {
		s.logger.Info("sqlite schema migrated", "path", s.path, "from", from, "to", to)
	}

	h.reader, err = sql.Open("sqlite", dsn(s.path, nil,
		"busy_timeout(5000)",
		"cache_size(-8192)",
		"foreign_keys(1)",
		"query_only(1)",
	))
	if err != nil {
		h.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	h.reader.SetMaxOpenConns(readConns)
	h.reader.SetMaxIdleConns(readConns)

	if h.wstmts, err = prepare(ctx, h.writer); err != nil {
		h.close()
		return nil, err
	}
	if h.rstmts, err = prepare(ctx, h.reader); err != nil {
		h.close()
		return nil, err
	}
	if h.checkpoints, err = sql.Open("sqlite", dsn(s.path, nil, "busy_timeout(5000)")); err != nil {
		h.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	h.checkpoints.SetMaxOpenConns(1)
	h.checkpoints.SetMaxIdleConns(1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.checkpointLoop(h.checkpoints, stop)
	}()
	h.stopCheckpoints = func() { close(stop); <-done }
	s.logger.Debug("sqlite store open", "path", s.path, "schema", to)
	return h, nil
}

// checkpointInterval is how often the WAL is copied into the database
// file. Between two, the WAL holds a few hundred milliseconds of writes.
const checkpointInterval = 200 * time.Millisecond

// checkpointLoop copies the WAL into the database file until stop closes.
// A passive checkpoint waits for no one: the writer appends to the WAL
// meanwhile, and readers (a pinned snapshot among them) keep their view;
// frames a reader still needs are copied by a later round.
func (s *Store) checkpointLoop(db *sql.DB, stop <-chan struct{}) {
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			s.logger.Warn("sqlite checkpoint", "path", s.path, "err", err)
		}
	}
}

func (h *handles) close() error {
	var errs []error
	if h.stopCheckpoints != nil {
		h.stopCheckpoints()
	}
	if h.checkpoints != nil {
		errs = append(errs, h.checkpoints.Close())
	}
	if h.wstmts != nil {
		errs = append(errs, h.wstmts.close())
	}
	if h.rstmts != nil {
		errs = append(errs, h.rstmts.close())
	}
	// Readers first: the last connection to close checkpoints the WAL and
	// removes it, and that should be the writer.
	if h.reader != nil {
		errs = append(errs, h.reader.Close())
	}
	if h.writer != nil {
		errs = append(errs, h.writer.Close())
	}
	return errors.Join(errs...)
}

// Close closes the database. Operations after Close fail with an error
// wrapping storage.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

func errClosed() error {
	return fmt.Errorf("sqlite: store is closed: %w", storage.ErrUnavailable)
}

// Update runs fn in one write transaction and commits it if fn returns nil;
// otherwise (or if fn panics) it rolls back and returns fn's error. Writes
// are serialized: Update waits while another Update runs.
//
// fn must use only tx: calling the Store's own methods from fn deadlocks,
// because they wait for the single write connection that fn holds.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return errClosed()
	}
	return runTx(ctx, s.db.writer, s.db.wstmts, nil, fn)
}

// View runs fn in a read transaction: fn sees one consistent snapshot of the
// database, and neither waits for writers nor delays them. Write methods of
// tx fail.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return errClosed()
	}
	return runTx(ctx, s.db.reader, s.db.rstmts, &sql.TxOptions{ReadOnly: true}, fn)
}

func runTx(ctx context.Context, db *sql.DB, base *stmts, opts *sql.TxOptions, fn func(tx *Tx) error) error {
	sqlTx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	// Rolls back when fn fails or panics; after Commit it is a no-op.
	defer sqlTx.Rollback()
	tx := &Tx{tx: sqlTx, base: base}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flush(ctx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// AppliedIndex returns the index last recorded by Tx.SetAppliedIndex, or 0.
func (s *Store) AppliedIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		idx, err = tx.AppliedIndex(ctx)
		return err
	})
	return idx, err
}

// Backup writes a consistent copy of the whole database to w: a complete
// SQLite file, page for page, that Restore accepts. Writes may continue while
// the copy is streamed.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	p, err := s.Pin(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.WriteTo(w)
	return err
}

// tempFile creates an empty file next to the database, on the same file
// system so that Restore's rename is atomic, and returns its path.
func (s *Store) tempFile(kind string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+"."+kind+"-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// Restore replaces the whole database with the SQLite file read from r, as
// written by Backup (possibly on another node). The file is checked before
// anything is replaced, so a bad snapshot leaves the store as it was.
// Operations running concurrently finish first; operations started during
// the swap wait for it and then see the restored state. If the swap itself
// fails, the store is left closed and its operations fail with
// storage.ErrUnavailable.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	tmp, err := s.tempFile("restore")
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer removeDB(tmp) // a no-op once renamed over the database

	if err := writeSynced(tmp, r); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := verifySnapshot(ctx, tmp); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return errClosed()
	}
	// From here on, stopping halfway would leave no usable database, so the
	// swap ignores cancellation.
	ctx = context.WithoutCancel(ctx)
	err = s.db.close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("sqlite: restore: close current database: %w", err)
	}
	// A clean close has checkpointed and removed the WAL. Any WAL or shm
	// left over belongs to the old file and would be replayed onto the new
	// one, so it must go before the rename, not after.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: restore: %w", err)
		}
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	db, err := s.open(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: restore: reopen: %w", err)
	}
	s.db = db
	s.logger.Info("sqlite database restored", "path", s.path)
	return nil
}

// writeSynced copies r into the file at path and flushes it to disk, so
// that the rename in Restore can never expose a partly written file.
func writeSynced(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// verifySnapshot checks that the file at path is a SQLite database with a
// Nebula schema this binary can open (migrating it if it is older).
func verifySnapshot(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", dsn(path, nil, "query_only(1)"))
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("not a Nebula state database: %w", err)
	}
	if n := len(migrations()); v < 1 || v > n {
		return fmt.Errorf("snapshot schema version %d not supported (want 1..%d)", v, n)
	}
	return nil
}

// removeDB removes a database file with any WAL or shm SQLite left beside
// it.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
