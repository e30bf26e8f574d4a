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

// BenchmarkChainExecution applies the commands of 3-node builtin.set chain
// executions, 32 at a time the way group commit batches them: one entry
// starts 32 executions, then claim and completion entries until all end.
// It measures the state machine alone (no Raft, no HTTP).
func BenchmarkChainExecution(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t, filepath.Join(b.TempDir(), "s.db"))
	h.t = t
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "chain", Definition: json.RawMessage(chain)})
	actions := engine.Builtins(engine.BuiltinsConfig{})
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
