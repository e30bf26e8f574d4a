package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage"
)

// try applies one command at the next index and returns its result,
// refusals included.
func (h *harness) try(cmd engine.Command) engine.Result {
	h.t.Helper()
	h.index++
	h.now = h.now.Add(time.Millisecond)
	data, err := EncodeBatch(h.now, []engine.Command{cmd})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.fsm.Apply([]Entry{{Index: h.index, Data: data}})[0][0]
}

func wantQuota(t *testing.T, what string, res engine.Result, quota string) {
	t.Helper()
	if !errors.Is(res.Err, engine.ErrQuotaExceeded) || !strings.Contains(res.Err.Error(), quota) {
		t.Fatalf("%s: %v, want quota exceeded naming %s", what, res.Err, quota)
	}
}

func TestQuotas(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.db"))
	q := storage.Quota{MaxWorkflows: 2, MaxConcurrentExecutions: 2, MaxExecutionsPerHour: 3}
	h.apply(&engine.CreateTenant{ID: "acme", Quota: q, TokenID: "abcdefgh", TokenHash: strings.Repeat("a", 64)})
	task := func(id string) json.RawMessage {
		return json.RawMessage(`{"id":"` + id + `","nodes":[{"id":"a","action":"test.echo","params":{"value":1}}]}`)
	}

	// max_workflows counts workflows, not versions.
	h.apply(&engine.PutWorkflow{Tenant: "acme", ID: "w1", Definition: task("w1")})
	h.apply(&engine.PutWorkflow{Tenant: "acme", ID: "w2", Definition: task("w2")})
	h.apply(&engine.PutWorkflow{Tenant: "acme", ID: "w1", Definition: task("w1")})
	wantQuota(t, "a third workflow", h.try(&engine.PutWorkflow{Tenant: "acme", ID: "w3", Definition: task("w3")}), "max_workflows = 2")
	h.apply(&engine.PutWorkflow{Tenant: "default", ID: "w3", Definition: task("w3")}) // another tenant's own count

	// max_concurrent_executions counts unfinished ones; a start repeated
	// with its key is answered all the same.
	start := func(id, key string) engine.Result {
		return h.try(&engine.StartExecution{Tenant: "acme", ExecutionID: id, WorkflowID: "w1", IdempotencyKey: key})
	}
	if r := start("e1", "k1"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := start("e2", ""); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantQuota(t, "a third concurrent execution", start("e3", ""), "max_concurrent_executions = 2")
	if r := start("e1-again", "k1"); r.Err != nil || r.ExecutionID != "e1" {
		t.Fatalf("repeated start: %+v", r)
	}
	h.runToEnd()

	// max_executions_per_hour slides on the entries' time.
	if r := start("e4", ""); r.Err != nil {
		t.Fatal(r.Err)
	}
	h.runToEnd()
	wantQuota(t, "a fourth execution within the hour", start("e5", ""), "max_executions_per_hour = 3")
	h.now = h.now.Add(time.Hour)
	if r := start("e5", ""); r.Err != nil {
		t.Fatalf("an hour later: %v", r.Err)
	}
	h.runToEnd()

	// max_storage_mb: what the tenant stores already counts from the moment
	// the quota is set.
	big := fmt.Sprintf(`{"id":"big","nodes":[{"id":"a","action":"builtin.set","params":{"value":%q}}]}`, strings.Repeat("x", 60_000))
	h.apply(&engine.SetTenantQuota{ID: "acme", Quota: storage.Quota{MaxWorkflows: 3}})
	h.apply(&engine.PutWorkflow{Tenant: "acme", ID: "big", Definition: json.RawMessage(big)})
	for i := range 17 {
		if r := h.try(&engine.StartExecution{Tenant: "acme", ExecutionID: fmt.Sprintf("b%d", i), WorkflowID: "big"}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	h.apply(&engine.SetTenantQuota{ID: "acme", Quota: storage.Quota{MaxStorageMB: 1}})
	if r := h.try(&engine.StartExecution{Tenant: "acme", ExecutionID: "b17", WorkflowID: "big"}); r.Err != nil {
		t.Fatalf("under 1 MiB: %v", r.Err)
	}
	wantQuota(t, "over 1 MiB stored", h.try(&engine.StartExecution{Tenant: "acme", ExecutionID: "b18", WorkflowID: "big"}), "max_storage_mb = 1")
	// Other tenants are not touched.
	if r := h.try(&engine.StartExecution{Tenant: "default", ExecutionID: "d1", WorkflowID: "w3"}); r.Err != nil {
		t.Fatal(r.Err)
	}
}
