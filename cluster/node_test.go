package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/fsm"
	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

func openNode(t *testing.T, dir string) (*Node, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	m := engine.NewMachine(engine.MachineConfig{})
	f, err := fsm.New(ctx, fsm.Config{Store: store, Machine: m})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(ctx, Config{NodeID: "n1", Dir: filepath.Join(dir, "raft"), Bootstrap: true, FSM: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		store.Close()
	})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return n, store
}

func lastIndex(t *testing.T, n *Node) int {
	t.Helper()
	i, err := strconv.Atoi(n.Stats()["last_log_index"])
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func workflow(id string) *engine.PutWorkflow {
	def := fmt.Sprintf(`{"id":%q,"nodes":[{"id":"a","action":"builtin.noop"}]}`, id)
	return &engine.PutWorkflow{Tenant: "default", ID: id, Definition: json.RawMessage(def)}
}

// TestGroupCommit submits many commands at once and checks that they
// share log entries while each gets its own result.
func TestGroupCommit(t *testing.T) {
	n, store := openNode(t, t.TempDir())
	before := lastIndex(t, n)
	const proposals = 400
	var wg sync.WaitGroup
	errs := make(chan error, proposals)
	for i := range proposals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := n.Submit(context.Background(), workflow(fmt.Sprintf("w%03d", i)))
			if err == nil && res.Version != 1 {
				err = fmt.Errorf("w%03d: version %d, want 1", i, res.Version)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries := lastIndex(t, n) - before
	t.Logf("%d proposals in %d log entries", proposals, entries)
	if entries >= proposals/2 {
		t.Errorf("%d proposals took %d log entries: group commit is not batching", proposals, entries)
	}
	wfs, _, err := store.ListWorkflows(context.Background(), "default", storageAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(wfs) != proposals {
		t.Fatalf("%d workflows stored, want %d", len(wfs), proposals)
	}
}

// TestRestartReplaysAndSnapshots writes, snapshots, writes more, restarts
// and checks that nothing is lost or applied twice.
func TestRestartReplaysAndSnapshots(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, store := openNode(t, dir)
	for i := range 10 {
		if _, err := n.Submit(ctx, workflow("w"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if res, err := n.Submit(ctx, workflow("w0")); err != nil || res.Version != 2 {
		t.Fatalf("second version of w0: %+v, %v", res, err)
	}
	n.Close()
	store.Close()

	n, store = openNode(t, dir)
	res, err := n.Submit(ctx, workflow("w0"))
	if err != nil || res.Version != 3 {
		t.Fatalf("third version of w0 after restart: %+v, %v (want version 3: nothing lost, nothing applied twice)", res, err)
	}
	wfs, _, err := store.ListWorkflows(ctx, "default", storageAll)
	if err != nil || len(wfs) != 10 {
		t.Fatalf("%d workflows after restart (err %v), want 10", len(wfs), err)
	}
}

var storageAll = storage.Page{Limit: 1000}

// TestSnapshotFlushesAsItWrites: the snapshot is flushed as it is written
// (see raftSnapshot.Persist), which depends on where FileSnapshotStore
// puts the file it writes; a change there shows here.
func TestSnapshotFlushesAsItWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	f, err := fsm.New(ctx, fsm.Config{Store: store, Machine: engine.NewMachine(engine.MachineConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lines{}
	n, err := Open(ctx, Config{NodeID: "n1", Dir: filepath.Join(dir, "raft"), Bootstrap: true, FSM: f, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Submit(ctx, workflow("w")); err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if logs.count("snapshot written") != 1 || logs.count("without intermediate flushes") != 0 {
		t.Fatalf("the snapshot was not flushed as it was written:\n%s", logs)
	}
	// Old snapshots are removed, keeping the newest two.
	for i := range 3 {
		if _, err := n.Submit(ctx, workflow(fmt.Sprintf("w%d", i))); err != nil {
			t.Fatal(err)
		}
		if err := n.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		entries, err := os.ReadDir(filepath.Join(dir, "raft", "snapshots"))
		if err != nil {
			return err
		}
		if len(entries) != keepSnapshots {
			return fmt.Errorf("%d snapshots kept, want %d", len(entries), keepSnapshots)
		}
		return nil
	})
}
