package sqlite

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// TestJournalRuns appends to two executions, interleaved, within
// transactions and with a read in the middle of one (which writes what is
// buffered), then checks the rows that makes and every window of the
// journals.
func TestJournalRuns(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	want := map[string][]storage.JournalEntry{}
	entry := func(id string, i int) storage.JournalEntry {
		e := storage.JournalEntry{
			Type: fmt.Sprintf("step-%d", i),
			At:   epoch().Add(time.Duration(i)*time.Second + 7),
		}
		switch i % 3 {
		case 0:
			e.Node, e.Attempt, e.IdempotencyKey = "a", i, fmt.Sprintf("%s/a/%d", id, i)
			e.Data = json.RawMessage(fmt.Sprintf(`{"i":%d,"s":"ü\"x"}`, i))
		case 1:
			e.Data = json.RawMessage(`{}`)
		}
		return e
	}
	appendTo := func(tx *Tx, id string) {
		t.Helper()
		e := entry(id, len(want[id]))
		seq, err := tx.AppendJournal(ctx, "t1", id, e)
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = seq
		want[id] = append(want[id], e)
	}

	err := s.Update(ctx, func(tx *Tx) error {
		for _, id := range []string{"e1", "e2"} {
			e := &storage.Execution{TenantID: "t1", ID: id, WorkflowID: "w", WorkflowVersion: 1, Status: "running",
				CreatedAt: epoch(), UpdatedAt: epoch()}
			first := entry(id, 0)
			if _, _, err := tx.CreateExecution(ctx, e, first); err != nil {
				return err
			}
			first.Seq = 1
			want[id] = append(want[id], first)
		}
		for _, id := range []string{"e1", "e2", "e1", "e1", "e2", "e1"} {
			appendTo(tx, id)
		}
		// A read writes the buffered entries: e1's journal now has two rows.
		if _, err := tx.Journal(ctx, "t1", "e2", 0, 0); err != nil {
			return err
		}
		appendTo(tx, "e1")
		appendTo(tx, "e1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		appendTo(tx, "e1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for id, rows := range map[string]int{"e1": 3, "e2": 1} {
		var n int
		err := s.View(ctx, func(tx *Tx) error {
			return tx.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM journal WHERE execution_id = ?`, id).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != rows {
			t.Errorf("%s: %d journal rows, want %d", id, n, rows)
		}
	}
	for id, entries := range want {
		for after := 0; after <= len(entries)+1; after++ {
			for limit := -1; limit <= len(entries)+1; limit++ {
				got, err := s.Journal(ctx, "t1", id, int64(after), limit)
				if err != nil {
					t.Fatalf("Journal(%s, %d, %d): %v", id, after, limit, err)
				}
				w := entries[min(after, len(entries)):]
				if limit > 0 && limit < len(w) {
					w = w[:limit]
				}
				if len(got) != len(w) || (len(w) > 0 && !reflect.DeepEqual(got, w)) {
					t.Fatalf("Journal(%s, after %d, limit %d) =\n%+v\nwant\n%+v", id, after, limit, got, w)
				}
			}
		}
	}
}

// FuzzUnpack feeds arbitrary bytes to the decoder of packed journal
// entries: it must fail cleanly or return entries that pack back to
// entries equal to them.
func FuzzUnpack(f *testing.F) {
	var seed []byte
	for _, e := range []storage.JournalEntry{
		{Type: "node_attempt_started", At: time.Unix(0, 1764244635469486286), Node: "a", Attempt: 1,
			IdempotencyKey: "01m8e84qedz9atfykjcxmhk6ta/a/1", Data: json.RawMessage(`{"inputs":{"value":{"n":2}}}`)},
		{Type: "execution_succeeded", Data: json.RawMessage(`{}`)},
		{Type: "x"},
	} {
		seed = appendPacked(seed, &e)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := unpack(nil, 5, b)
		if err != nil {
			return
		}
		var again []byte
		for i := range got {
			if got[i].Seq != int64(5+i) {
				t.Fatalf("entry %d numbered %d", i, got[i].Seq)
			}
			again = appendPacked(again, &got[i])
		}
		back, err := unpack(nil, 5, again)
		if err != nil {
			t.Fatalf("repacked entries do not decode: %v", err)
		}
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip changed the entries:\n%+v\n%+v", got, back)
		}
	})
}
