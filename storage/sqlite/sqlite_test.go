package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/storage/storagetest"
)

// openTestStore opens a store on a fresh file under t.TempDir and closes it
// when the test ends.
func openTestStore(t testing.TB) *Store {
	t.Helper()
	return openTestStoreAt(t, filepath.Join(t.TempDir(), "state.db"))
}

func openTestStoreAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Repos { return openTestStore(t) })
}

// epoch is the fixed instant the tests build their times from.
func epoch() time.Time { return time.Date(2026, time.January, 2, 3, 4, 5, 6, time.UTC) }

func workflow(id string) *storage.Workflow {
	return &storage.Workflow{TenantID: "t1", ID: id, Name: id, Definition: json.RawMessage(`{}`), CreatedAt: epoch()}
}

// wantWorkflow fails t unless the workflow exists exactly when want says so.
func wantWorkflow(t *testing.T, s *Store, id string, want bool) {
	t.Helper()
	_, err := s.GetWorkflow(t.Context(), "t1", id, 0)
	switch {
	case want && err != nil:
		t.Errorf("GetWorkflow(%s): %v, want it present", id, err)
	case !want && !errors.Is(err, storage.ErrNotFound):
		t.Errorf("GetWorkflow(%s): err = %v, want ErrNotFound", id, err)
	}
}

func TestUpdateRollsBack(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()

	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutWorkflow(ctx, workflow("failed")); err != nil {
			return err
		}
		if err := tx.SetAppliedIndex(ctx, 7); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update = %v, want the error fn returned", err)
	}
	wantWorkflow(t, s, "failed", false)

	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("Update did not propagate the panic of fn")
			}
		}()
		s.Update(ctx, func(tx *Tx) error {
			if err := tx.PutWorkflow(ctx, workflow("panicked")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	wantWorkflow(t, s, "panicked", false)

	if idx, err := s.AppliedIndex(ctx); err != nil || idx != 0 {
		t.Errorf("AppliedIndex after rollbacks = %d, %v; want 0", idx, err)
	}
	// The single write connection is usable after both.
	if err := s.PutWorkflow(ctx, workflow("ok")); err != nil {
		t.Fatalf("PutWorkflow after rollbacks: %v", err)
	}
	wantWorkflow(t, s, "ok", true)
}

func TestUpdateKeepsTxUsableAfterResultErrors(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	e := &storage.Execution{TenantID: "t1", ID: "e1", WorkflowID: "wf", Status: "running", CreatedAt: epoch()}
	if _, _, err := s.CreateExecution(ctx, e, storage.JournalEntry{Type: "started", At: epoch()}); err != nil {
		t.Fatal(err)
	}
	timer := &storage.Timer{TenantID: "t1", ID: "retry/e1/a/1", ExecutionID: "e1", Node: "a", Attempt: 1, Kind: "retry", DueAt: epoch()}
	if err := s.CreateTimer(ctx, timer); err != nil {
		t.Fatal(err)
	}
	// The FSM carries on after ErrConflict and ErrNotFound: the rest of the
	// transaction must still commit.
	err := s.Update(ctx, func(tx *Tx) error {
		if _, _, err := tx.CreateExecution(ctx, e, storage.JournalEntry{Type: "started", At: epoch()}); !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("CreateExecution(duplicate) = %v, want ErrConflict", err)
		}
		if err := tx.PutNode(ctx, "t1", "nope", &storage.NodeState{ID: "a"}); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("PutNode(missing) = %v, want ErrNotFound", err)
		}
		dup := *timer
		dup.DueAt = epoch().Add(time.Hour)
		if err := tx.CreateTimer(ctx, &dup); !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("CreateTimer(duplicate) = %v, want ErrConflict", err)
		}
		for _, owner := range [][2]string{{"t1", "nope"}, {"t2", "e1"}} {
			orphan := &storage.Timer{TenantID: owner[0], ID: "orphan", ExecutionID: owner[1], Kind: "delay", DueAt: epoch()}
			if err := tx.CreateTimer(ctx, orphan); !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("CreateTimer(execution %s/%s) = %v, want ErrNotFound", owner[0], owner[1], err)
			}
		}
		return tx.PutWorkflow(ctx, workflow("after"))
	})
	if err != nil {
		t.Fatal(err)
	}
	wantWorkflow(t, s, "after", true)
	if got, err := s.DueTimers(ctx, epoch().Add(24*time.Hour), 0); err != nil || len(got) != 1 || *got[0] != *timer {
		t.Errorf("DueTimers after the failed creates = %v, %v; want only %+v unchanged", got, err, timer)
	}
}

func TestAppliedIndexPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := t.Context()
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := s.AppliedIndex(ctx); err != nil || idx != 0 {
		t.Fatalf("AppliedIndex of a new store = %d, %v; want 0", idx, err)
	}
	const big = uint64(1)<<63 + 5 // above MaxInt64: stored bit for bit
	for _, idx := range []uint64{41, 42, big} {
		err := s.Update(ctx, func(tx *Tx) error {
			if err := tx.PutWorkflow(ctx, workflow(fmt.Sprint("wf-", idx))); err != nil {
				return err
			}
			return tx.SetAppliedIndex(ctx, idx)
		})
		if err != nil {
			t.Fatalf("Update(%d): %v", idx, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppliedIndex(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("AppliedIndex after Close: err = %v, want ErrUnavailable", err)
	}

	s = openTestStoreAt(t, path)
	if idx, err := s.AppliedIndex(ctx); err != nil || idx != big {
		t.Errorf("AppliedIndex after reopen = %d, %v; want %d", idx, err, big)
	}
	err = s.View(ctx, func(tx *Tx) error {
		idx, err := tx.AppliedIndex(ctx)
		if err == nil && idx != big {
			err = fmt.Errorf("Tx.AppliedIndex = %d, want %d", idx, big)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	wantWorkflow(t, s, fmt.Sprint("wf-", big), true)
}

func TestBackupRestore(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	put := func(id string, index uint64) {
		t.Helper()
		err := s.Update(ctx, func(tx *Tx) error {
			if err := tx.PutWorkflow(ctx, workflow(id)); err != nil {
				return err
			}
			return tx.SetAppliedIndex(ctx, index)
		})
		if err != nil {
			t.Fatalf("put %s: %v", id, err)
		}
	}
	put("before", 10)
	var snap bytes.Buffer
	if err := s.Backup(ctx, &snap); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if !bytes.HasPrefix(snap.Bytes(), []byte("SQLite format 3\x00")) {
		t.Fatalf("Backup did not write a SQLite file (starts with %q)", snap.Bytes()[:min(16, snap.Len())])
	}
	put("after", 20)

	if err := s.Restore(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	wantWorkflow(t, s, "before", true)
	wantWorkflow(t, s, "after", false)
	if idx, err := s.AppliedIndex(ctx); err != nil || idx != 10 {
		t.Errorf("AppliedIndex after Restore = %d, %v; want 10", idx, err)
	}
	// Writes work on the restored file, and survive a reopen.
	put("later", 30)
	wantWorkflow(t, s, "later", true)

	// The same snapshot installs on another node's store.
	other := openTestStore(t)
	if err := other.PutWorkflow(ctx, workflow("other")); err != nil {
		t.Fatal(err)
	}
	if err := other.Restore(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatalf("Restore on another store: %v", err)
	}
	wantWorkflow(t, other, "before", true)
	wantWorkflow(t, other, "other", false)

	// No temporary files are left next to the database.
	entries, err := os.ReadDir(filepath.Dir(s.path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".backup-") || strings.Contains(e.Name(), ".restore-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestRestoreRejectsBadSnapshot(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	if err := s.PutWorkflow(ctx, workflow("kept")); err != nil {
		t.Fatal(err)
	}
	// A valid SQLite file that is not a Nebula state database.
	foreign := filepath.Join(t.TempDir(), "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE other (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	foreignSnap, err := os.ReadFile(foreign)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string][]byte{
		"garbage":        []byte("this is not a database"),
		"empty":          nil,
		"foreign sqlite": foreignSnap,
	}
	for name, snap := range cases {
		if err := s.Restore(ctx, bytes.NewReader(snap)); err == nil {
			t.Errorf("Restore(%s) succeeded, want an error", name)
		}
		wantWorkflow(t, s, "kept", true)
	}
}

func TestRestoreWithConcurrentReaders(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	if err := s.PutWorkflow(ctx, workflow("wf")); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := s.Backup(ctx, &snap); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.GetWorkflow(ctx, "t1", "wf", 0); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	for range 3 {
		if err := s.Restore(ctx, bytes.NewReader(snap.Bytes())); err != nil {
			t.Errorf("Restore: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("read during Restore: %v", err)
	}
}

func TestViewDoesNotBlockUpdate(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	if err := s.PutWorkflow(ctx, workflow("wf")); err != nil {
		t.Fatal(err)
	}

	err := s.View(ctx, func(tx *Tx) error {
		before, err := tx.GetWorkflow(ctx, "t1", "wf", 0)
		if err != nil {
			return err
		}
		// The write must complete while this read transaction is open.
		done := make(chan error, 1)
		go func() { done <- s.PutWorkflow(ctx, workflow("wf")) }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("PutWorkflow during View: %w", err)
			}
		case <-time.After(10 * time.Second):
			return errors.New("PutWorkflow blocked behind an open View")
		}
		// The view keeps its snapshot.
		again, err := tx.GetWorkflow(ctx, "t1", "wf", 0)
		if err != nil {
			return err
		}
		if again.Version != before.Version {
			return fmt.Errorf("View saw version %d, then %d: not a snapshot", before.Version, again.Version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w, err := s.GetWorkflow(ctx, "t1", "wf", 0); err != nil || w.Version != 2 {
		t.Errorf("GetWorkflow after View = %v, %v; want version 2", w, err)
	}
}

func TestViewRejectsWrites(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	err := s.View(ctx, func(tx *Tx) error { return tx.PutWorkflow(ctx, workflow("wf")) })
	if err == nil {
		t.Fatal("PutWorkflow in View succeeded")
	}
	wantWorkflow(t, s, "wf", false)
}

func TestInvalidCursor(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	for _, c := range []string{"%%%", encodeCursor("not-a-number"), encodeSeqCursor(0)} {
		_, _, err := s.ListExecutions(ctx, "t1", storage.ExecutionFilter{}, storage.Page{Cursor: c, Limit: 1})
		if err == nil || !strings.HasPrefix(err.Error(), "invalid cursor") {
			t.Errorf("ListExecutions(cursor %q): err = %v, want one starting with \"invalid cursor\"", c, err)
		}
	}
	_, _, err := s.ListWorkflows(ctx, "t1", storage.Page{Cursor: "%%%", Limit: 1})
	if err == nil || !strings.HasPrefix(err.Error(), "invalid cursor") {
		t.Errorf("ListWorkflows: err = %v, want one starting with \"invalid cursor\"", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := t.Context()
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (999)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, Config{Path: path}); err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(t.Context(), Config{Path: path}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// TestDeterministic applies the same calls to two stores and compares their
// snapshots byte for byte: replicas must not diverge, even through map
// iteration order.
func TestDeterministic(t *testing.T) {
	apply := func(s *Store) []byte {
		ctx := t.Context()
		err := s.Update(ctx, func(tx *Tx) error {
			for i := range 20 {
				e := &storage.Execution{
					TenantID: "t1", ID: fmt.Sprint("e", i), WorkflowID: "wf", Status: "running",
					CreatedAt: epoch(), Nodes: map[string]*storage.NodeState{},
				}
				if i > 0 {
					e.ParentID, e.ParentNode = "e0", fmt.Sprint("call-", i)
				}
				for n := range 16 {
					id := fmt.Sprint("node-", n)
					e.Nodes[id] = &storage.NodeState{ID: id, Status: "pending"}
				}
				if _, _, err := tx.CreateExecution(ctx, e, storage.JournalEntry{Type: "started", At: epoch()}); err != nil {
					return err
				}
				task := &storage.Task{TenantID: "t1", ID: fmt.Sprint("task-", i), ExecutionID: e.ID, Timeout: time.Minute, CreatedAt: epoch()}
				if err := tx.CreateTask(ctx, task); err != nil {
					return err
				}
				timer := &storage.Timer{TenantID: "t1", ID: fmt.Sprint("timer-", i), ExecutionID: e.ID, Kind: "delay", DueAt: epoch()}
				if err := tx.CreateTimer(ctx, timer); err != nil {
					return err
				}
				action := &storage.Action{TenantID: "t1", ID: "community.x", Version: fmt.Sprintf("1.%d.0", i),
					Capabilities: []string{"net:a", "env:B"}, ModuleRef: storage.BlobRef([]byte{byte(i)}), Size: 1, CreatedAt: epoch()}
				if err := tx.PutAction(ctx, action); err != nil {
					return err
				}
			}
			return tx.SetAppliedIndex(ctx, 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := s.Backup(ctx, &b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := apply(openTestStore(t)), apply(openTestStore(t))
	if !bytes.Equal(a, b) {
		t.Errorf("two stores given identical calls produced different snapshots (%d and %d bytes)", len(a), len(b))
	}
}

// TestUpgradeFromVersion1 opens a database as a binary that knew only the
// first migration left it: Open must bring it to the newest version with
// its rows intact, the new columns at their defaults, and exactly the
// schema of a fresh database.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", dsn(path, nil, "foreign_keys(1)"))
	if err != nil {
		t.Fatal(err)
	}
	created := epoch().UnixNano()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{createSchemaMigrations, nil},
		{migrations()[0], nil},
		{`INSERT INTO schema_migrations (version) VALUES (1)`, nil},
		{`INSERT INTO executions (tenant_id, id, workflow_id, workflow_version, status, input, output, error,
			idempotency_key, created_at, updated_at, finished_at)
			VALUES ('t1', 'e1', 'wf', 3, 'pending', ?, NULL, '', 'key-1', ?, ?, 0)`,
			[]any{[]byte(`{"n": 1}`), created, created + 1}},
		{`INSERT INTO nodes (tenant_id, execution_id, node_id, status, attempts, output, error, started_at, finished_at)
			VALUES ('t1', 'e1', 'a', 'pending', 0, NULL, '', 0, 0)`, nil},
		{`INSERT INTO journal (tenant_id, execution_id, seq, type, at, node, attempt, idempotency_key, data)
			VALUES ('t1', 'e1', 1, 'execution.created', ?, '', 0, '', NULL)`, []any{created}},
		{`INSERT INTO tasks (tenant_id, id, execution_id, node, attempt, action, params, created_at)
			VALUES ('t1', 'e1/a/1', 'e1', 'a', 1, 'http.request', NULL, ?)`, []any{created}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			db.Close()
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTestStoreAt(t, path)
	err = s.View(ctx, func(tx *Tx) error {
		v, err := schemaVersion(ctx, tx.tx)
		if err == nil && v != len(migrations()) {
			err = fmt.Errorf("schema version after Open = %d, want %d", v, len(migrations()))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	wantExec := &storage.Execution{
		TenantID: "t1", ID: "e1", WorkflowID: "wf", WorkflowVersion: 3, Status: "pending",
		Input: json.RawMessage(`{"n": 1}`), IdempotencyKey: "key-1",
		CreatedAt: epoch(), UpdatedAt: epoch().Add(1),
		Nodes: map[string]*storage.NodeState{"a": {ID: "a", Status: "pending"}},
	}
	if got, err := s.GetExecution(ctx, "t1", "e1"); err != nil || !reflect.DeepEqual(got, wantExec) {
		t.Errorf("GetExecution after upgrade = %+v, %v; want %+v", got, err, wantExec)
	}
	retry := &storage.Execution{TenantID: "t1", ID: "e2", WorkflowID: "wf", IdempotencyKey: "key-1", Status: "pending"}
	existing, ok, err := s.CreateExecution(ctx, retry, storage.JournalEntry{Type: "execution.created", At: epoch()})
	if err != nil || ok || !reflect.DeepEqual(existing, wantExec) {
		t.Errorf("CreateExecution(same key) after upgrade = %+v, %v, %v; want the upgraded execution", existing, ok, err)
	}
	wantTask := &storage.Task{TenantID: "t1", ID: "e1/a/1", ExecutionID: "e1", Node: "a", Attempt: 1,
		Action: "http.request", CreatedAt: epoch()}
	if got, err := s.GetTask(ctx, "e1/a/1"); err != nil || !reflect.DeepEqual(got, wantTask) {
		t.Errorf("GetTask after upgrade = %+v, %v; want %+v", got, err, wantTask)
	}
	if entries, err := s.Journal(ctx, "t1", "e1", 0, 0); err != nil || len(entries) != 1 || entries[0].Type != "execution.created" {
		t.Errorf("Journal after upgrade = %+v, %v; want the one entry", entries, err)
	}
	// The new queries and the new tables work beside the old rows.
	if got, err := s.PendingExecutions(ctx, 0); err != nil || len(got) != 1 || got[0].ID != "e1" {
		t.Errorf("PendingExecutions after upgrade = %v, %v; want e1", got, err)
	}
	if err := s.CreateTimer(ctx, &storage.Timer{TenantID: "t1", ID: "delay/e1", ExecutionID: "e1", Kind: "delay", DueAt: epoch()}); err != nil {
		t.Errorf("CreateTimer after upgrade: %v", err)
	}
	action := &storage.Action{TenantID: "t1", ID: "community.x", Version: "1.0.0", ModuleRef: storage.BlobRef(nil), CreatedAt: epoch()}
	if err := s.PutAction(ctx, action); err != nil {
		t.Errorf("PutAction after upgrade: %v", err)
	}

	if got, want := schemaOf(t, s), schemaOf(t, openTestStore(t)); !slices.Equal(got, want) {
		t.Errorf("schema after upgrade differs from a fresh one:\n got %q\nwant %q", got, want)
	}
}

// schemaOf returns the definition of every table and index of s, in name
// order.
func schemaOf(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := s.View(t.Context(), func(tx *Tx) error {
		rows, err := tx.tx.QueryContext(t.Context(),
			`SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var def string
			if err := rows.Scan(&def); err != nil {
				return err
			}
			out = append(out, def)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestQueryPlans guards the indexes the hot and list paths depend on: none
// of these statements may scan a table or sort in a temporary b-tree.
func TestQueryPlans(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	sqls := statements()
	for _, id := range []stmtID{
		stmtWorkflowLatest, stmtWorkflowLive, stmtWorkflowList, stmtWorkflowListAfter,
		stmtExecutionGet, stmtExecutionByKey, stmtExecutionTransition,
		stmtExecutionList, stmtExecutionListWorkflow, stmtExecutionListStatus,
		stmtNodeList, stmtJournalLastSeq, stmtJournalRead,
		stmtTaskGet, stmtTaskReady, stmtTaskAcquire, stmtTaskStale, stmtTaskDeleteExecution,
		stmtExecutionChildren, stmtExecutionPending, stmtExecutionCount,
		stmtExecutionCountActive, stmtExecutionNthRecent, stmtWorkflowCount, stmtStoredBytes,
		stmtTimerDue, stmtTimerNext, stmtTimerDelete, stmtTimerDeleteExecution,
		stmtActionGet, stmtActionVersions, stmtActionList, stmtActionListAfter,
		stmtTenantGet, stmtTenantListAfter, stmtTenantSetQuota, stmtTokenByHash, stmtTokenList, stmtTokenRevoke,
	} {
		var plan []string
		err := s.View(ctx, func(tx *Tx) error {
			rows, err := tx.tx.QueryContext(ctx, "EXPLAIN QUERY PLAN "+sqls[id], make([]any, numParams(sqls[id]))...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var a, b, c int
				var detail string
				if err := rows.Scan(&a, &b, &c, &detail); err != nil {
					return err
				}
				plan = append(plan, detail)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatalf("statement %d: %v", id, err)
		}
		for _, step := range plan {
			// A scan of a bounded subquery's rows is not a table scan.
			if strings.HasPrefix(step, "SCAN ") && !strings.HasPrefix(step, "SCAN (subquery") && step != "SCAN CONSTANT ROW" || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("statement %d: plan step %q\n%s\nplan: %q", id, step, sqls[id], plan)
			}
		}
	}
}

// numParams counts the parameters of q: its highest ?N when it numbers
// them, else its question marks.
func numParams(q string) int {
	n := 0
	for i := 1; strings.Contains(q, fmt.Sprintf("?%d", i)); i++ {
		n = i
	}
	if n > 0 {
		return n
	}
	return strings.Count(q, "?")
}

// TestMigrationKeepsNodesAndJournal opens a database written at schema
// version 4, before nodes and journal became WITHOUT ROWID tables, and
// checks that their rows come through the migration unchanged and that
// the journal goes on from its last seq.
func TestMigrationKeepsNodesAndJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", dsn(path, nil, "foreign_keys(1)"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, createSchemaMigrations); err != nil {
		t.Fatal(err)
	}
	for v, m := range migrations()[:4] {
		if _, err := db.ExecContext(ctx, m); err != nil {
			t.Fatalf("migration %d: %v", v+1, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO executions (tenant_id, id, workflow_id, workflow_version, status, input, output, error,
			idempotency_key, parent_id, parent_node, created_at, updated_at, finished_at)
			VALUES ('default', 'e1', 'w', 1, 'running', CAST('{}' AS BLOB), NULL, '', '', '', '', 1, 1, 0)`,
		`INSERT INTO nodes VALUES ('default', 'e1', 'b', 'pending', 0, NULL, '', 0, 0)`,
		`INSERT INTO nodes VALUES ('default', 'e1', 'a', 'succeeded', 1, CAST('{"n":1}' AS BLOB), '', 2, 3)`,
		`INSERT INTO journal VALUES ('default', 'e1', 1, 'execution_started', 1, '', 0, '', CAST('{"input":{}}' AS BLOB))`,
		`INSERT INTO journal VALUES ('default', 'e1', 2, 'node_attempt_started', 2, 'a', 1, 'e1/a/1', CAST('{}' AS BLOB))`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTestStoreAt(t, path)
	e, err := s.GetExecution(ctx, "default", "e1")
	if err != nil {
		t.Fatal(err)
	}
	a := e.Nodes["a"]
	if len(e.Nodes) != 2 || a == nil || a.Status != "succeeded" || a.Attempts != 1 || string(a.Output) != `{"n":1}` || e.Nodes["b"].Status != "pending" {
		t.Fatalf("nodes after migration: %+v", e.Nodes)
	}
	seq, err := s.AppendJournal(ctx, "default", "e1", storage.JournalEntry{Type: "node_attempt_finished", At: time.Unix(0, 3), Node: "a", Attempt: 1})
	if err != nil || seq != 3 {
		t.Fatalf("append after migration: seq %d, %v; want 3", seq, err)
	}
	j, err := s.Journal(ctx, "default", "e1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, entry := range j {
		got = append(got, fmt.Sprintf("%d %s %s", entry.Seq, entry.Type, entry.Node))
	}
	want := []string{"1 execution_started ", "2 node_attempt_started a", "3 node_attempt_finished a"}
	if !slices.Equal(got, want) {
		t.Fatalf("journal after migration = %q, want %q", got, want)
	}
}
