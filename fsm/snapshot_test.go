package fsm

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
)

// dumpState lists every row of every table of the SQLite file at path,
// sorted, as text: two stores hold the same state when their dumps are
// equal.
func dumpState(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%q", vals))
		}
		rows.Close()
		slices.Sort(lines)
		fmt.Fprintf(&b, "== %s %v\n%s\n", table, cols, strings.Join(lines, "\n"))
	}
	return b.String()
}

// entryLog builds a log: entries of commands, a millisecond apart.
type entryLog struct {
	now     time.Time
	entries []Entry
}

func (l *entryLog) add(t *testing.T, cmds ...engine.Command) {
	t.Helper()
	if l.now.IsZero() {
		l.now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	l.now = l.now.Add(time.Millisecond)
	data, err := EncodeBatch(l.now, cmds)
	if err != nil {
		t.Fatal(err)
	}
	l.entries = append(l.entries, Entry{Index: uint64(len(l.entries) + 1), Data: data})
}

// TestSnapshotIsItsIndex: a snapshot pinned at index N and copied while
// later entries are applied holds exactly the state at N: restored, it
// equals a replica that applied entries 1..N and nothing more.
func TestSnapshotIsItsIndex(t *testing.T) {
	ctx := context.Background()
	var l entryLog
	add := func(cmds ...engine.Command) { l.add(t, cmds...) }
	add(&engine.PutWorkflow{Tenant: "default", ID: "set", Definition: json.RawMessage(setChain)},
		&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	for i := range 60 {
		wf := "set"
		if i%3 == 0 {
			wf = "chain" // leaves tasks and running executions behind
		}
		add(&engine.StartExecution{Tenant: "default", ExecutionID: fmt.Sprintf("e%02d", i), WorkflowID: wf, Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
	}
	entries := l.entries
	const pinAt = 30

	src := newHarness(t, filepath.Join(t.TempDir(), "src.db"))
	src.fsm.Apply(entries[:pinAt])
	snap, err := src.fsm.Capture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	// Writes go on between the pin and the copy.
	for _, e := range entries[pinAt:] {
		src.fsm.Apply([]Entry{e})
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}

	replica := newHarness(t, filepath.Join(t.TempDir(), "replica.db"))
	replica.fsm.Apply(entries[:pinAt])
	restored := newHarness(t, filepath.Join(t.TempDir(), "restored.db"))
	if err := restored.fsm.Restore(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if got := restored.fsm.AppliedIndex(); got != pinAt {
		t.Fatalf("restored applied index %d, want %d", got, pinAt)
	}
	want, got := dumpState(t, replica.path), dumpState(t, restored.path)
	if got != want {
		t.Fatalf("restored snapshot differs from the replica at index %d:\nrestored:\n%.3000s\nreplica:\n%.3000s", pinAt, got, want)
	}
	if dumpState(t, src.path) == want {
		t.Fatal("the source did not move on after the pin: the test shows nothing")
	}
	// The restored store goes on from there like the replica.
	restored.fsm.Apply(entries[pinAt:])
	replica.fsm.Apply(entries[pinAt:])
	if dumpState(t, restored.path) != dumpState(t, replica.path) {
		t.Fatal("after the remaining entries, the restored store and the replica differ")
	}
}
