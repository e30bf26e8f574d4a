package fsm

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage"
)

func (h *harness) execution(id string) *storage.Execution {
	h.t.Helper()
	e, err := h.store.GetExecution(context.Background(), "default", id)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (h *harness) journal(id string) []storage.JournalEntry {
	h.t.Helper()
	j, err := h.store.Journal(context.Background(), "default", id, 0, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// claimOne claims the one ready task.
func (h *harness) claimOne() *storage.Task {
	h.t.Helper()
	tasks := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks
	if len(tasks) != 1 {
		h.t.Fatalf("claimed %d tasks, want 1", len(tasks))
	}
	return tasks[0]
}

func TestRetryWaitsForBackoffTimer(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	def := `{"id":"r","nodes":[{"id":"a","action":"test.echo","retry":{"max_attempts":3,"backoff":"1s","max_backoff":"10s"}}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "r", Definition: json.RawMessage(def)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "r"})

	// Backoff 1s doubles: 1s after attempt 1, 2s after attempt 2 (jitter 0).
	for _, wantGap := range []time.Duration{time.Second, 2 * time.Second} {
		task := h.claimOne()
		h.apply(&engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Error: "flaky", Retryable: true, Jitter: 0})
		if e := h.execution("e1"); e.Nodes["a"].Status != "running" {
			t.Fatalf("node during backoff = %s, want running", e.Nodes["a"].Status)
		}
		// Nothing is ready before the backoff has passed.
		h.now = h.now.Add(wantGap - 10*time.Millisecond)
		if res := h.apply(&engine.FireTimers{Max: 10}); res[0].Fired != 0 {
			t.Fatalf("timer fired %s early", 10*time.Millisecond)
		}
		if tasks := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks; len(tasks) != 0 {
			t.Fatal("next attempt ready before its backoff")
		}
		h.now = h.now.Add(10 * time.Millisecond)
		if res := h.apply(&engine.FireTimers{Max: 10}); res[0].Fired != 1 {
			t.Fatalf("fired %d timers after the backoff, want 1", res[0].Fired)
		}
		// A timer fires once.
		if res := h.apply(&engine.FireTimers{Max: 10}); res[0].Fired != 0 {
			t.Fatal("timer fired twice")
		}
	}
	task := h.claimOne()
	if task.Attempt != 3 {
		t.Fatalf("third task is attempt %d", task.Attempt)
	}
	h.apply(&engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Error: "still flaky", Retryable: true})
	e := h.execution("e1")
	if e.Status != "failed" || e.Nodes["a"].Attempts != 3 {
		t.Fatalf("after 3 failed attempts: %s, %d attempts", e.Status, e.Nodes["a"].Attempts)
	}
}

func TestNonRetryableErrorFailsAtOnce(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	def := `{"id":"r","nodes":[{"id":"a","action":"test.echo","retry":{"max_attempts":5}}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "r", Definition: json.RawMessage(def)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "r"})
	task := h.claimOne()
	h.apply(&engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Error: "404 Not Found"})
	if e := h.execution("e1"); e.Status != "failed" || e.Nodes["a"].Attempts != 1 {
		t.Fatalf("non-retryable failure: %s after %d attempts", e.Status, e.Nodes["a"].Attempts)
	}
}

func TestDelayIsADurableTimer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	h := newHarness(t, path)
	def := `{"id":"d","nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"30s"}},{"id":"after","action":"test.echo"}],
	  "connections":[{"from":"wait","to":"after"}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "d", Definition: json.RawMessage(def)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "d"})
	if tasks := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks; len(tasks) != 0 {
		t.Fatalf("a delay made %d tasks; it must hold no worker", len(tasks))
	}
	next, err := h.store.NextTimer(context.Background())
	if err != nil || !next.DueAt.Equal(h.now.Add(30*time.Second-time.Millisecond)) {
		t.Fatalf("next timer %+v, %v", next, err)
	}
	h.now = h.now.Add(30 * time.Second)
	h.apply(&engine.FireTimers{Max: 10})
	if e := h.execution("e1"); e.Nodes["wait"].Status != "succeeded" {
		t.Fatalf("delay after its time: %s", e.Nodes["wait"].Status)
	}
	h.runToEnd()
	if e := h.execution("e1"); e.Status != "succeeded" {
		t.Fatalf("execution: %s", e.Status)
	}
}

func TestCancelDropsTimersAndTasks(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	def := `{"id":"c","nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"30s"}},{"id":"work","action":"test.echo"}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "c", Definition: json.RawMessage(def)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "c"})
	task := h.claimOne()
	h.apply(&engine.CancelExecution{Tenant: "default", ExecutionID: "e1"})
	e := h.execution("e1")
	if e.Status != "cancelled" || e.Nodes["wait"].Status != "cancelled" || e.Nodes["work"].Status != "cancelled" {
		t.Fatalf("after cancel: %s, wait %s, work %s", e.Status, e.Nodes["wait"].Status, e.Nodes["work"].Status)
	}
	late := h.applyRaw(&engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Output: json.RawMessage(`{}`)})
	if late[0].Err == nil {
		t.Fatal("late result of a cancelled execution accepted")
	}
	if _, err := h.store.NextTimer(context.Background()); err == nil {
		t.Fatal("a timer outlived the cancelled execution")
	}
	j := h.journal("e1")
	if j[len(j)-2].Type != "cancellation_requested" || j[len(j)-1].Type != "execution_cancelled" {
		t.Fatalf("journal ends %s, %s", j[len(j)-2].Type, j[len(j)-1].Type)
	}
}

func TestTimeouts(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	def := `{"id":"t","timeout":"1m","nodes":[{"id":"slow","action":"test.echo","timeout":"2s","retry":{"max_attempts":2,"backoff":"1s"}},
	  {"id":"long","action":"builtin.delay","params":{"duration":"1h"}}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "t", Definition: json.RawMessage(def)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "t"})
	first := h.claimOne()
	h.now = h.now.Add(2 * time.Second)
	h.apply(&engine.FireTimers{Max: 10}) // attempt 1 times out
	if res := h.applyRaw(&engine.CompleteTask{TaskID: first.ID, Token: first.LeaseToken, Output: json.RawMessage(`1`)}); res[0].Err == nil {
		t.Fatal("late result of a timed-out attempt accepted")
	}
	h.now = h.now.Add(1200 * time.Millisecond)
	h.apply(&engine.FireTimers{Max: 10}) // backoff over: attempt 2
	h.claimOne()
	h.now = h.now.Add(2 * time.Second)
	h.apply(&engine.FireTimers{Max: 10}) // attempt 2 times out: node fails
	e := h.execution("e1")
	if e.Status != "failed" || e.Nodes["slow"].Attempts != 2 {
		t.Fatalf("after two timeouts: %s with %d attempts (error %q)", e.Status, e.Nodes["slow"].Attempts, e.Error)
	}

	// The workflow's own timeout.
	def2 := `{"id":"w","timeout":"1m","nodes":[{"id":"long","action":"builtin.delay","params":{"duration":"1h"}}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "w", Definition: json.RawMessage(def2)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e2", WorkflowID: "w"})
	h.now = h.now.Add(time.Minute)
	h.apply(&engine.FireTimers{Max: 10})
	if e := h.execution("e2"); e.Status != "timed_out" || e.Nodes["long"].Status != "cancelled" {
		t.Fatalf("past the workflow timeout: %s, node %s", e.Status, e.Nodes["long"].Status)
	}
}

func TestSubworkflow(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	// The child's first node is a task, so the parent waits for a worker.
	child := `{"id":"child","nodes":[{"id":"l","action":"test.echo"},
	  {"id":"c","action":"builtin.set","params":{"value":"{{ input.n * 10 }}"}}],"connections":[{"from":"l","to":"c"}]}`
	parent := `{"id":"parent","nodes":[{"id":"sub","action":"builtin.subworkflow","params":{"workflow":"child","input":{"n":"{{ input.n }}"}}},
	  {"id":"after","action":"builtin.set","params":{"value":"{{ nodes.sub.output + 1 }}"}}],"connections":[{"from":"sub","to":"after"}]}`
	failing := `{"id":"failing","nodes":[{"id":"f","action":"test.echo"}]}`
	fparent := `{"id":"fparent","nodes":[{"id":"sub","action":"builtin.subworkflow","params":{"workflow":"failing"}}]}`
	for id, def := range map[string]string{"child": child, "parent": parent, "failing": failing, "fparent": fparent} {
		h.apply(&engine.PutWorkflow{Tenant: "default", ID: id, Definition: json.RawMessage(def)})
	}

	// The parent waits for the child and uses its output.
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "p1", WorkflowID: "parent", Input: json.RawMessage(`{"n":4}`)})
	if e := h.execution("p1"); e.Nodes["sub"].Status != "running" {
		t.Fatalf("parent node while the child runs: %s", e.Nodes["sub"].Status)
	}
	h.runToEnd()
	if e := h.execution("p1"); e.Status != "succeeded" || string(e.Output) != "41" {
		t.Fatalf("parent: %s output %s (error %q)", e.Status, e.Output, e.Error)
	}
	if c := h.execution("p1.sub.1"); c.ParentID != "p1" || string(c.Output) != "40" {
		t.Fatalf("child: parent %q output %s", c.ParentID, c.Output)
	}

	// The child's failure fails the node.
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "p2", WorkflowID: "fparent"})
	task := h.claimOne()
	h.apply(&engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Error: "boom"})
	if e := h.execution("p2"); e.Status != "failed" || e.Nodes["sub"].Status != "failed" {
		t.Fatalf("parent of a failed child: %s, node %s", e.Status, e.Nodes["sub"].Status)
	}

	// Cancelling the parent cancels the child.
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "p3", WorkflowID: "fparent"})
	h.apply(&engine.CancelExecution{Tenant: "default", ExecutionID: "p3"})
	if c := h.execution("p3.sub.1"); c.Status != "cancelled" {
		t.Fatalf("child of a cancelled parent: %s", c.Status)
	}
	if left := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks; len(left) != 0 {
		t.Fatalf("%d tasks left", len(left))
	}
}

func TestSubworkflowRecursionIsBounded(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	self := `{"id":"self","nodes":[{"id":"again","action":"builtin.subworkflow","params":{"workflow":"self"}}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "self", Definition: json.RawMessage(self)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "s", WorkflowID: "self"})
	e := h.execution("s")
	if e.Status != "failed" || !strings.Contains(e.Error, "deeper than") {
		t.Fatalf("self-starting workflow: %s %q", e.Status, e.Error)
	}
}

func TestConcurrencyBound(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.SetLimits{MaxConcurrentExecutions: 2})
	def := `{"id":"w","nodes":[{"id":"a","action":"test.echo"}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "w", Definition: json.RawMessage(def)})
	for _, id := range []string{"e1", "e2", "e3", "e4"} {
		h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: id, WorkflowID: "w"})
	}
	status := func() string {
		var s []string
		for _, id := range []string{"e1", "e2", "e3", "e4"} {
			s = append(s, h.execution(id).Status)
		}
		return strings.Join(s, " ")
	}
	if got := status(); got != "running running pending pending" {
		t.Fatalf("with a bound of 2: %s", got)
	}
	if j := h.journal("e3"); j[0].Type != "execution_queued" {
		t.Fatalf("a waiting execution's journal starts with %s", j[0].Type)
	}
	// Finishing one starts the oldest waiting one.
	tasks := h.apply(&engine.ClaimTasks{Holder: "w", Max: 1, TTL: time.Minute})[0].Tasks
	h.apply(&engine.CompleteTask{TaskID: tasks[0].ID, Token: tasks[0].LeaseToken, Output: json.RawMessage(`{}`)})
	if got := status(); got != "succeeded running running pending" {
		t.Fatalf("after one finished: %s", got)
	}
	// Raising the bound starts the rest; cancelling a waiting one works.
	h.apply(&engine.CancelExecution{Tenant: "default", ExecutionID: "e4"})
	h.apply(&engine.SetLimits{MaxConcurrentExecutions: 10})
	h.runToEnd()
	if got := status(); got != "succeeded succeeded succeeded cancelled" {
		t.Fatalf("in the end: %s", got)
	}
}
