package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
)

// wide returns a workflow of n parallel builtin.set nodes, each mapping
// one list of size over another: about 50,000 CEL cost units a node for
// size 59.
func wide(id string, n int) string {
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = fmt.Sprintf(`{"id":"n%d","action":"builtin.set","params":{"value":"{{ input.a.map(x, input.a.map(y, x * y)).size() }}"}}`, i)
	}
	return fmt.Sprintf(`{"id":%q,"nodes":[%s]}`, id, strings.Join(nodes, ","))
}

// listInput is the input wide's expressions map over.
func listInput(size int) json.RawMessage {
	a := make([]int, size)
	for i := range a {
		a[i] = i
	}
	b, _ := json.Marshal(map[string]any{"a": a})
	return b
}

const oneNode = `{"id":"one","nodes":[{"id":"a","action":"builtin.set","params":{"value":"{{ input.n + 1 }}"}}]}`

// continueAll applies Continue entries until nothing is deferred and
// returns how many it took.
func continueAll(t *testing.T, h *harness) int {
	t.Helper()
	for i := 1; i <= 1000; i++ {
		res := h.apply(&engine.Continue{Max: 64})
		if res[0].Deferred == 0 {
			return i
		}
	}
	t.Fatal("still deferred after 1000 Continue entries")
	return 0
}

// TestBudgetDefersAndContinues: a wide workflow started in one entry runs
// that execution's share of nodes, is deferred, and Continue entries
// finish it; the outcome is the same as if it had run at once.
func TestBudgetDefersAndContinues(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "wide", Definition: json.RawMessage(wide("wide", 200))})
	res := h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "wide", Input: listInput(59)})
	if res[0].Execution != nil {
		t.Fatal("200 costly nodes ended within one entry")
	}
	e, err := h.store.GetExecution(ctx, "default", "e1")
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	for _, n := range e.Nodes {
		if n.Status != "pending" {
			started++
		}
	}
	if started == 0 || started >= 200 {
		t.Fatalf("%d of 200 nodes started in the first entry", started)
	}
	if n, _ := h.store.CountDeferred(ctx); n != 1 {
		t.Fatalf("%d executions deferred, want 1", n)
	}
	entries := continueAll(t, h)
	e, err = h.store.GetExecution(ctx, "default", "e1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != "succeeded" {
		t.Fatalf("after %d Continue entries: %s", entries, e.Status)
	}
	var out map[string]int
	if err := json.Unmarshal(e.Output, &out); err != nil || len(out) != 200 || out["n7"] != 59 {
		t.Fatalf("output %.200s: %v", e.Output, err)
	}
	t.Logf("200 nodes: %d in the start entry, then %d Continue entries", started, entries)
}

// TestBudgetSharesAnEntry: in an entry where one tenant starts a costly
// execution, another tenant's one-node execution still ends within it.
func TestBudgetSharesAnEntry(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "a", ID: "wide", Definition: json.RawMessage(wide("wide", 200))},
		&engine.PutWorkflow{Tenant: "b", ID: "one", Definition: json.RawMessage(oneNode)})
	res := h.apply(
		&engine.StartExecution{Tenant: "a", ExecutionID: "bomb1", WorkflowID: "wide", Input: listInput(59)},
		&engine.StartExecution{Tenant: "a", ExecutionID: "bomb2", WorkflowID: "wide", Input: listInput(59)},
		&engine.StartExecution{Tenant: "b", ExecutionID: "small", WorkflowID: "one", Input: json.RawMessage(`{"n":1}`)},
	)
	if res[2].Execution == nil || res[2].Execution.Status != "succeeded" {
		t.Fatalf("the other tenant's execution did not end in the entry: %+v", res[2])
	}
	if n, _ := h.store.CountDeferred(ctx); n != 2 {
		t.Fatalf("%d executions deferred, want the two costly ones", n)
	}
	continueAll(t, h)
	for _, id := range []string{"bomb1", "bomb2"} {
		if e, err := h.store.GetExecution(ctx, "a", id); err != nil || e.Status != "succeeded" {
			t.Fatalf("%s: %v %v", id, e.Status, err)
		}
	}
}

// TestBudgetIsDeterministic: the same log applied on two stores, one all
// at once and one entry by entry with pauses (a slow machine), leaves
// identical state: the budget counts work, never time.
func TestBudgetIsDeterministic(t *testing.T) {
	var l entryLog
	add := func(cmds ...engine.Command) { l.add(t, cmds...) }
	add(&engine.PutWorkflow{Tenant: "a", ID: "wide", Definition: json.RawMessage(wide("wide", 150))},
		&engine.PutWorkflow{Tenant: "b", ID: "one", Definition: json.RawMessage(oneNode)})
	add(&engine.StartExecution{Tenant: "a", ExecutionID: "w1", WorkflowID: "wide", Input: listInput(40)},
		&engine.StartExecution{Tenant: "b", ExecutionID: "o1", WorkflowID: "one", Input: json.RawMessage(`{"n":1}`)})
	for i := range 12 {
		add(&engine.Continue{Max: 64},
			&engine.StartExecution{Tenant: "b", ExecutionID: fmt.Sprintf("o%d", i+2), WorkflowID: "one", Input: json.RawMessage(`{"n":2}`)})
	}

	entries := l.entries
	fast := newHarness(t, filepath.Join(t.TempDir(), "fast.db"))
	fast.fsm.Apply(entries)
	slow := newHarness(t, filepath.Join(t.TempDir(), "slow.db"))
	for _, e := range entries {
		time.Sleep(5 * time.Millisecond)
		slow.fsm.Apply([]Entry{e})
	}
	a, b := dumpState(t, fast.path), dumpState(t, slow.path)
	if a != b {
		t.Fatalf("the two replicas differ:\nfast:\n%.2000s\nslow:\n%.2000s", a, b)
	}
	if !strings.Contains(a, `"succeeded"`) {
		t.Fatal("nothing ran: the test shows nothing")
	}
}

// TestDefinitionLimits: a workflow over max_workflow_nodes or
// max_definition_bytes is refused where the command applies, naming the
// limit; the limits come from the replicated state (SetLimits), with
// defaults until the leader records its own.
func TestDefinitionLimits(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	put := func(id string, nodes int) error {
		t.Helper()
		return h.applyRaw(&engine.PutWorkflow{Tenant: "default", ID: id, Definition: json.RawMessage(wide(id, nodes))})[0].Err
	}
	if err := put("big", 1000); err != nil {
		t.Fatalf("1,000 nodes under the default limit: %v", err)
	}
	err := put("bigger", 1001)
	if !errors.Is(err, engine.ErrInvalidWorkflow) || !strings.Contains(err.Error(), "max_workflow_nodes = 1000") {
		t.Fatalf("1,001 nodes: %v; want a refusal naming max_workflow_nodes", err)
	}
	h.apply(&engine.SetLimits{MaxWorkflowNodes: 5, MaxDefinitionBytes: 2048})
	if err := put("five", 5); err != nil {
		t.Fatal(err)
	}
	if err := put("six", 6); err == nil || !strings.Contains(err.Error(), "max_workflow_nodes = 5") {
		t.Fatalf("6 nodes under a limit of 5: %v", err)
	}
	h.apply(&engine.SetLimits{MaxWorkflowNodes: 100, MaxDefinitionBytes: 2048})
	if err := put("large", 30); err == nil || !strings.Contains(err.Error(), "max_definition_bytes = 2048") {
		t.Fatalf("a definition over 2,048 bytes: %v", err)
	}
}
