package fsm

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
)

// BenchmarkChainExecution applies the commands of 2-node chain executions
// whose nodes are tasks, 32 at a time the way group commit batches them:
// one entry starts 32 executions, then claim and completion entries until
// all end. It measures the state machine alone (no Raft, no HTTP).
func BenchmarkChainExecution(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t, filepath.Join(b.TempDir(), "s.db"))
	h.t = t
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	actions := testActions()
	const batch = 32
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		starts := make([]engine.Command, batch)
		for j := range starts {
			starts[j] = &engine.StartExecution{Tenant: "default", ExecutionID: fmt.Sprintf("e%d-%d", i, j), WorkflowID: "chain", Input: json.RawMessage(`{"n":1}`)}
		}
		h.apply(starts...)
		for {
			res := h.apply(&engine.ClaimTasks{Holder: "w", Max: 1000, TTL: time.Minute})
			if len(res[0].Tasks) == 0 {
				break
			}
			done := make([]engine.Command, 0, len(res[0].Tasks))
			for _, task := range res[0].Tasks {
				out, _ := actions[task.Action].Run(context.Background(), task.Params)
				done = append(done, &engine.CompleteTask{TaskID: task.ID, Token: task.LeaseToken, Output: out})
			}
			h.apply(done...)
		}
	}
}

// setChain is a 3-node builtin.set chain with expressions: the state
// machine runs it whole when the execution starts.
const setChain = `{"id":"set","nodes":[
  {"id":"a","action":"builtin.set","params":{"value":{"n":"{{ input.n + 1 }}"}}},
  {"id":"b","action":"builtin.set","params":{"value":{"n":"{{ nodes.a.output.n * 2 }}"}}},
  {"id":"c","action":"builtin.set","params":{"value":"n={{ nodes.b.output.n }}"}}],
 "connections":[{"from":"a","to":"b"},{"from":"b","to":"c"}]}`

// BenchmarkInlineChainExecution applies entries that each start 32
// executions of setChain, which end within the entry.
func BenchmarkInlineChainExecution(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t, filepath.Join(b.TempDir(), "s.db"))
	h.t = t
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "set", Definition: json.RawMessage(setChain)})
	const batch = 32
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		starts := make([]engine.Command, batch)
		for j := range starts {
			starts[j] = &engine.StartExecution{Tenant: "default", ExecutionID: fmt.Sprintf("e%d-%d", i, j), WorkflowID: "set", Input: json.RawMessage(`{"n":1}`)}
		}
		h.apply(starts...)
	}
}
