package fsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/sandbox/inprocess"
	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

// chain runs as tasks: test.echo is builtin.set run by a worker (the
// state machine runs builtin.set itself).
const chain = `{"id":"chain","nodes":[
  {"id":"a","action":"test.echo","params":{"value":"{{ input.n + 1 }}"}},
  {"id":"b","action":"test.echo","params":{"value":"{{ nodes.a.output * 2 }}"}}],
 "connections":[{"from":"a","to":"b"}]}`

// testActions are the builtins and test.echo, a task that returns its
// params' value.
func testActions() engine.Actions {
	actions := engine.Builtins(engine.BuiltinsConfig{})
	actions["test.echo"] = inprocess.Action{Run: func(_ context.Context, params json.RawMessage) (json.RawMessage, error) {
		var p struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(params, &p); err != nil || len(p.Value) == 0 {
			return json.RawMessage("null"), err
		}
		return p.Value, nil
	}}
	return actions
}

type harness struct {
	t     *testing.T
	path  string
	store *sqlite.Store
	fsm   *FSM
	index uint64
	now   time.Time
}

func newHarness(t *testing.T, path string) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	actions := testActions()
	m := engine.NewMachine(engine.MachineConfig{Options: engine.Options{KnownAction: actions.Has}})
	f, err := New(ctx, Config{Store: store, Machine: m})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, path: path, store: store, fsm: f, index: f.AppliedIndex(), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// apply applies one entry holding cmds at the next index.
func (h *harness) apply(cmds ...engine.Command) []engine.Result {
	h.t.Helper()
	h.index++
	h.now = h.now.Add(time.Millisecond)
	data, err := EncodeBatch(h.now, cmds)
	if err != nil {
		h.t.Fatal(err)
	}
	res := h.fsm.Apply([]Entry{{Index: h.index, Data: data}})
	if res[0] == nil {
		h.t.Fatalf("entry %d produced no results", h.index)
	}
	for i, r := range res[0] {
		if r.Err != nil {
			h.t.Fatalf("command %d (%T): %v", i, cmds[i], r.Err)
		}
	}
	return res[0]
}

// runToEnd claims and completes tasks with the builtins until none is left.
func (h *harness) runToEnd() {
	h.t.Helper()
	actions := testActions()
	for range 100 {
		res := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})
		if len(res[0].Tasks) == 0 {
			return
		}
		var done []engine.Command
		for _, task := range res[0].Tasks {
			out, err := actions[task.Action].Run(context.Background(), task.Params)
			if err != nil {
				h.t.Fatal(err)
			}
			done = append(done, &engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Output: out})
		}
		h.apply(done...)
	}
	h.t.Fatal("tasks never ran out")
}

func TestApplyRunsExecution(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	res := h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":20}`)})
	if res[0].Execution != nil {
		t.Fatalf("start of a running execution returned it as %s", res[0].Execution.Status)
	}
	h.runToEnd()
	e, err := h.store.GetExecution(context.Background(), "default", "e1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != "succeeded" || string(e.Output) != "42" {
		t.Fatalf("execution = %s output %s, want succeeded 42", e.Status, e.Output)
	}
	if got := h.fsm.AppliedIndex(); got != h.index {
		t.Fatalf("applied index = %d, want %d", got, h.index)
	}
}

// TestStartSentTwice: a start applied twice, as when a follower sends it
// again after losing the leader's answer, makes one execution and answers
// the second time with it, not with a conflict; another workflow's start
// with a taken id is still refused.
func TestStartSentTwice(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "other", Definition: json.RawMessage(chain)})
	start := &engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":20}`)}
	first := h.apply(start)[0]
	again := h.apply(start)[0]
	if first.Err != nil || again.Err != nil || !first.Created || again.Created || again.ExecutionID != "e1" {
		t.Fatalf("first %+v, again %+v; want e1 created once, then answered", first, again)
	}
	clash := h.applyRaw(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "other"})[0]
	if !errors.Is(clash.Err, storage.ErrConflict) {
		t.Fatalf("another workflow's start with a taken id: %v, want a conflict", clash.Err)
	}
	h.runToEnd()
	list, _, err := h.store.ListExecutions(context.Background(), "default", storage.ExecutionFilter{}, storage.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d executions, want 1", len(list))
	}
}

func TestReplayIsHarmless(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	h := newHarness(t, path)
	put, _ := EncodeBatch(h.now, []engine.Command{&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)}})
	start, _ := EncodeBatch(h.now, []engine.Command{&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":1}`)}})
	entries := []Entry{{Index: 1, Data: put}, {Index: 2, Data: start}}
	h.fsm.Apply(entries)
	h.store.Close()

	// A restart replays the same entries: the store already holds them.
	h2 := newHarness(t, path)
	if got := h2.fsm.AppliedIndex(); got != 2 {
		t.Fatalf("applied index after reopen = %d, want 2", got)
	}
	res := h2.fsm.Apply(entries)
	if res[0] != nil || res[1] != nil {
		t.Fatalf("replayed entries produced results: %v", res)
	}
	wf, err := h2.store.GetWorkflow(context.Background(), "default", "chain", 0)
	if err != nil || wf.Version != 1 {
		t.Fatalf("workflow after replay: version %v, err %v; want version 1", wf, err)
	}
	j, err := h2.store.Journal(context.Background(), "default", "e1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) != 2 { // execution_started, node_attempt_started a
		t.Fatalf("journal after replay has %d entries, want 2", len(j))
	}
}

func TestSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	src := newHarness(t, filepath.Join(t.TempDir(), "src.db"))
	src.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	src.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":1}`)})
	src.runToEnd()
	snap, err := src.fsm.Capture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}

	dst := newHarness(t, filepath.Join(t.TempDir(), "dst.db"))
	dst.apply(&engine.PutWorkflow{Tenant: "default", ID: "other", Definition: json.RawMessage(`{"id":"other","nodes":[{"id":"a","action":"test.echo"}]}`)})
	if err := dst.fsm.Restore(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if got, want := dst.fsm.AppliedIndex(), src.fsm.AppliedIndex(); got != want {
		t.Fatalf("applied index after restore = %d, want %d", got, want)
	}
	e, err := dst.store.GetExecution(ctx, "default", "e1")
	if err != nil || e.Status != "succeeded" {
		t.Fatalf("execution after restore: %+v, %v", e, err)
	}
	if _, err := dst.store.GetWorkflow(ctx, "default", "other", 0); err == nil {
		t.Fatal("state written before the restore survived it")
	}
}

// applyRaw applies one entry and returns its results without failing on
// refusals.
func (h *harness) applyRaw(cmds ...engine.Command) []engine.Result {
	h.t.Helper()
	h.index++
	h.now = h.now.Add(time.Millisecond)
	data, err := EncodeBatch(h.now, cmds)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.fsm.Apply([]Entry{{Index: h.index, Data: data}})[0]
}

func TestReclaimFencesTheLostAttempt(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":1}`)})
	old := h.apply(&engine.ClaimTasks{Holder: "n1/old", Max: 10, TTL: time.Hour})[0].Tasks
	if len(old) != 1 {
		t.Fatalf("claimed %d tasks, want 1", len(old))
	}

	// The node restarted as n1/new: its previous run's lease is taken back
	// at once, before the TTL.
	res := h.apply(&engine.ReclaimTasks{Max: 10, HolderPrefix: "n1/", KeepHolder: "n1/new"})
	if res[0].Reclaimed != 1 {
		t.Fatalf("reclaimed %d, want 1", res[0].Reclaimed)
	}
	late := h.applyRaw(&engine.CompleteTask{TaskID: old[0].ID, Token: old[0].LeaseToken, Output: json.RawMessage(`2`)})
	if !errors.Is(late[0].Err, engine.ErrStaleLease) {
		t.Fatalf("late result of the lost attempt: err %v, want ErrStaleLease", late[0].Err)
	}
	h.runToEnd()

	e, err := h.store.GetExecution(ctx, "default", "e1")
	if err != nil || e.Status != "succeeded" || string(e.Output) != "4" {
		t.Fatalf("execution: %+v, %v", e, err)
	}
	if a := e.Nodes["a"].Attempts; a != 2 {
		t.Errorf("node a attempts = %d, want 2", a)
	}
	j, err := h.store.Journal(ctx, "default", "e1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range j {
		if en.Node == "a" {
			got = append(got, fmt.Sprintf("%s/%s", en.Type, en.IdempotencyKey))
		}
	}
	want := []string{
		"node_attempt_started/e1/a/1", "node_attempt_finished/e1/a/1",
		"node_attempt_started/e1/a/2", "node_attempt_finished/e1/a/2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("journal of node a = %v, want %v", got, want)
	}
}

func TestExpiredLeaseIsReclaimed(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":1}`)})
	h.apply(&engine.ClaimTasks{Holder: "n2/x", Max: 10, TTL: time.Second})
	if res := h.apply(&engine.ReclaimTasks{Max: 10}); res[0].Reclaimed != 0 {
		t.Fatalf("reclaimed %d before the lease expired", res[0].Reclaimed)
	}
	h.now = h.now.Add(2 * time.Second) // leader time moves past the TTL
	if res := h.apply(&engine.ReclaimTasks{Max: 10}); res[0].Reclaimed != 1 {
		t.Fatalf("reclaimed %d after expiry, want 1", res[0].Reclaimed)
	}
	h.runToEnd()
}

func TestFailingNodeFailsExecution(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	def := `{"id":"f","nodes":[{"id":"a","action":"test.echo"},{"id":"b","action":"test.echo"},
	  {"id":"c","action":"test.echo","on_error":"continue"},{"id":"d","action":"test.echo"}],
	  "connections":[{"from":"a","to":"b"},{"from":"c","to":"d"}]}`
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "f", Definition: json.RawMessage(def)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "f"})
	tasks := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks
	if len(tasks) != 2 {
		t.Fatalf("claimed %d root tasks, want 2", len(tasks))
	}
	// c fails but continues; then a fails, which fails the execution.
	byNode := map[string]*engine.CompleteTask{}
	for _, task := range tasks {
		byNode[task.Node] = &engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Error: "boom " + task.Node}
	}
	h.apply(byNode["c"])
	e, _ := h.store.GetExecution(ctx, "default", "e1")
	if e.Nodes["c"].Status != "succeeded" || string(e.Nodes["c"].Output) != `{"error":"boom c"}` {
		t.Fatalf("node c with on_error=continue: %+v", e.Nodes["c"])
	}
	h.apply(byNode["a"])
	e, _ = h.store.GetExecution(ctx, "default", "e1")
	if e.Status != "failed" || !strings.Contains(e.Error, "boom a") {
		t.Fatalf("execution = %s %q, want failed naming boom a", e.Status, e.Error)
	}
	for id, want := range map[string]string{"a": "failed", "b": "cancelled", "d": "cancelled"} {
		if got := e.Nodes[id].Status; got != want {
			t.Errorf("node %s = %s, want %s", id, got, want)
		}
	}
	if left := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks; len(left) != 0 {
		t.Errorf("%d tasks left after the execution failed", len(left))
	}
}

// TestPureBuiltinsRunInApply: builtin.set and builtin.noop run inside the
// entry that makes them ready, journaled like any attempt, with no task.
func TestPureBuiltinsRunInApply(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "set", Definition: json.RawMessage(setChain)})
	res := h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "set", Input: json.RawMessage(`{"n":20}`)})
	e, err := h.store.GetExecution(context.Background(), "default", "e1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != "succeeded" || string(e.Output) != `"n=42"` {
		t.Fatalf("execution = %s output %s, want succeeded \"n=42\"", e.Status, e.Output)
	}
	// The proposer gets the finished execution without reading it back:
	// it must be exactly what was stored.
	if got := res[0].Execution; !reflect.DeepEqual(got, e) {
		t.Fatalf("result execution:\n%+v\nstored:\n%+v", got, e)
	}
	j, err := h.store.Journal(context.Background(), "default", "e1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, entry := range j {
		types = append(types, entry.Type+" "+entry.Node)
	}
	want := "execution_started ,node_attempt_started a,node_attempt_finished a,node_attempt_started b,node_attempt_finished b," +
		"node_attempt_started c,node_attempt_finished c,execution_succeeded "
	if got := strings.Join(types, ","); got != want {
		t.Fatalf("journal:\n%s\nwant:\n%s", got, want)
	}
	if tasks := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks; len(tasks) != 0 {
		t.Fatalf("%d tasks made for pure builtins", len(tasks))
	}
}

// TestCompleteAndClaim: a worker's report can lease the next ready task
// to it in the same entry; when that leaves nothing ready, no other worker
// is woken, and a refused report claims nothing.
func TestCompleteAndClaim(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	var events []engine.Event
	h.fsm.cfg.OnEvents = func(evs []engine.Event) { events = append(events, evs...) }
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	h.apply(&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "chain", Input: json.RawMessage(`{"n":20}`)})
	first := h.apply(&engine.ClaimTasks{Holder: "w", Max: 10, TTL: time.Minute})[0].Tasks
	if len(first) != 1 {
		t.Fatalf("claimed %d tasks, want 1", len(first))
	}
	claim := &engine.ClaimTasks{Holder: "w", Max: 4, TTL: time.Minute}
	events = nil
	res := h.apply(&engine.CompleteTask{TaskID: first[0].ID, Token: first[0].LeaseToken, Output: json.RawMessage(`21`), Claim: claim})[0]
	if len(res.Tasks) != 1 || res.Tasks[0].Node != "b" || res.Tasks[0].LeaseHolder != "w" || res.Tasks[0].LeaseToken == 0 {
		t.Fatalf("tasks leased with the report: %+v, want node b leased to w", res.Tasks)
	}
	for _, e := range events {
		if e.Kind == engine.EventTasksReady {
			t.Errorf("tasks-ready event although every ready task was leased")
		}
	}
	if left := h.apply(&engine.ClaimTasks{Holder: "other", Max: 10, TTL: time.Minute})[0].Tasks; len(left) != 0 {
		t.Fatalf("%d tasks left to claim", len(left))
	}
	stale := h.applyRaw(&engine.CompleteTask{TaskID: first[0].ID, Token: first[0].LeaseToken, Output: json.RawMessage(`1`), Claim: claim})[0]
	if !errors.Is(stale.Err, engine.ErrStaleLease) || len(stale.Tasks) != 0 {
		t.Fatalf("stale report: err %v, %d tasks; want ErrStaleLease and none", stale.Err, len(stale.Tasks))
	}
	second := res.Tasks[0]
	done := h.apply(&engine.CompleteTask{TaskID: second.ID, Token: second.LeaseToken, Output: json.RawMessage(`42`), Claim: claim})[0]
	if len(done.Tasks) != 0 {
		t.Fatalf("claimed %d tasks after the last node", len(done.Tasks))
	}
	e, err := h.store.GetExecution(context.Background(), "default", "e1")
	if err != nil || e.Status != "succeeded" {
		t.Fatalf("execution: %v, %v; want succeeded", e, err)
	}
}
