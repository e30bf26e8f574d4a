package sqlite

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// benchExecution returns the i-th execution of a benchmark, shaped like a
// small real one: two nodes and a JSON input.
func benchExecution(i int) (*storage.Execution, storage.JournalEntry) {
	now := epoch().Add(time.Duration(i))
	id := "exec-" + strconv.Itoa(i)
	e := &storage.Execution{
		TenantID:        "t1",
		ID:              id,
		WorkflowID:      "wf",
		WorkflowVersion: 1,
		Status:          "running",
		Input:           json.RawMessage(`{"order": 42, "customer": "c-123", "items": [1, 2, 3]}`),
		CreatedAt:       now,
		UpdatedAt:       now,
		Nodes: map[string]*storage.NodeState{
			"fetch": {ID: "fetch", Status: "pending"},
			"store": {ID: "store", Status: "pending"},
		},
	}
	first := storage.JournalEntry{Type: "execution.started", At: now, Data: json.RawMessage(`{"input": {"order": 42}}`)}
	return e, first
}

func reportPerSecond(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

// BenchmarkCreateExecution measures one execution per transaction: the
// cost of a commit without batching.
func BenchmarkCreateExecution(b *testing.B) {
	s := openTestStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		e, first := benchExecution(i)
		if _, _, err := s.CreateExecution(ctx, e, first); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportPerSecond(b, i, "executions/s")
}

// BenchmarkUpdate100 measures the FSM's shape: 100 executions created in one
// write transaction, as one group-committed Raft entry would. Each execution
// writes 4 rows (execution, two nodes, first journal entry).
func BenchmarkUpdate100(b *testing.B) {
	s := openTestStore(b)
	ctx := context.Background()
	const perTx = 100
	i := 0
	for b.Loop() {
		err := s.Update(ctx, func(tx *Tx) error {
			for range perTx {
				e, first := benchExecution(i)
				if _, _, err := tx.CreateExecution(ctx, e, first); err != nil {
					return err
				}
				i++
			}
			return tx.SetAppliedIndex(ctx, uint64(i))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportPerSecond(b, i, "executions/s")
	reportPerSecond(b, i*4, "rows/s")
}

// BenchmarkUpdate100Lifecycle runs whole one-task executions, 100 per write
// transaction: create, schedule, lease, complete, finish; about what the FSM
// does for a one-node workflow over its whole life.
func BenchmarkUpdate100Lifecycle(b *testing.B) {
	s := openTestStore(b)
	ctx := context.Background()
	const perTx = 100
	i := 0
	for b.Loop() {
		err := s.Update(ctx, func(tx *Tx) error {
			for range perTx {
				if err := benchLifecycle(ctx, tx, i); err != nil {
					return err
				}
				i++
			}
			return tx.SetAppliedIndex(ctx, uint64(i))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportPerSecond(b, i, "executions/s")
}

func benchLifecycle(ctx context.Context, tx *Tx, i int) error {
	e, first := benchExecution(i)
	if _, _, err := tx.CreateExecution(ctx, e, first); err != nil {
		return err
	}
	now := e.CreatedAt
	task := &storage.Task{
		TenantID: "t1", ID: e.ID + "/fetch/1", ExecutionID: e.ID, Node: "fetch", Attempt: 1,
		Action: "http.request", Params: json.RawMessage(`{"url": "https://example.com"}`), CreatedAt: now,
	}
	if err := tx.CreateTask(ctx, task); err != nil {
		return err
	}
	node := &storage.NodeState{ID: "fetch", Status: "running", Attempts: 1, StartedAt: now}
	if err := tx.PutNode(ctx, "t1", e.ID, node); err != nil {
		return err
	}
	token := uint64(i + 1)
	if _, err := tx.AcquireLease(ctx, task.ID, storage.Lease{Holder: "w1", Token: token, Expires: now.Add(time.Minute)}, now); err != nil {
		return err
	}
	entry := storage.JournalEntry{Type: "node.attempt.finished", At: now, Node: "fetch", Attempt: 1,
		IdempotencyKey: task.ID, Data: json.RawMessage(`{"output": {"status": 200}}`)}
	if _, err := tx.AppendJournal(ctx, "t1", e.ID, entry); err != nil {
		return err
	}
	if _, err := tx.DeleteTask(ctx, task.ID, token); err != nil {
		return err
	}
	node.Status, node.Output, node.FinishedAt = "succeeded", json.RawMessage(`{"status": 200}`), now
	if err := tx.PutNode(ctx, "t1", e.ID, node); err != nil {
		return err
	}
	end := storage.JournalEntry{Type: "execution.succeeded", At: now}
	upd := &storage.ExecutionUpdate{Output: json.RawMessage(`{"status": 200}`), FinishedAt: now}
	_, err := tx.Transition(ctx, "t1", e.ID, "running", "succeeded", end, upd)
	return err
}

// BenchmarkGetExecution measures concurrent reads on the read pool.
func BenchmarkGetExecution(b *testing.B) {
	s := openTestStore(b)
	ctx := context.Background()
	const n = 1000
	err := s.Update(ctx, func(tx *Tx) error {
		for i := range n {
			e, first := benchExecution(i)
			if _, _, err := tx.CreateExecution(ctx, e, first); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.GetExecution(ctx, "t1", "exec-"+strconv.Itoa(i%n)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
