package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nebula-engine/nebula/storage"
)

func deferredTests() []test {
	return []test{
		{"TenantsTakeTurns", testDeferredTurns},
		{"KeepsItsPlace", testDeferredKeepsPlace},
		{"Resume", testDeferredResume},
		{"MissingExecution", testDeferredMissing},
	}
}

// deferAll creates the executions and defers each with its seq.
func deferAll(t *testing.T, r storage.Repos, ds ...storage.Deferred) {
	t.Helper()
	for i, d := range ds {
		createExecution(t, r, newExecution(d.TenantID, d.ExecutionID, "wf", i))
		if err := r.DeferExecution(t.Context(), d.TenantID, d.ExecutionID, d.Seq); err != nil {
			t.Fatalf("DeferExecution(%+v): %v", d, err)
		}
	}
}

func deferred(t *testing.T, r storage.Repos, limit int) []string {
	t.Helper()
	ds, err := r.DeferredExecutions(t.Context(), limit)
	if err != nil {
		t.Fatalf("DeferredExecutions(%d): %v", limit, err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s/%s@%d", d.TenantID, d.ExecutionID, d.Seq))
	}
	return out
}

// testDeferredTurns: tenant a's burst does not come before tenant b's one
// execution; each tenant's own come oldest first.
func testDeferredTurns(t *testing.T, r storage.Repos) {
	deferAll(t, r,
		storage.Deferred{TenantID: "a", ExecutionID: "a1", Seq: 10},
		storage.Deferred{TenantID: "a", ExecutionID: "a2", Seq: 11},
		storage.Deferred{TenantID: "a", ExecutionID: "a3", Seq: 12},
		storage.Deferred{TenantID: "b", ExecutionID: "b1", Seq: 20},
		storage.Deferred{TenantID: "c", ExecutionID: "c1", Seq: 5},
		storage.Deferred{TenantID: "b", ExecutionID: "b2", Seq: 21},
	)
	want := []string{"c/c1@5", "a/a1@10", "b/b1@20", "a/a2@11", "b/b2@21", "a/a3@12"}
	if got := deferred(t, r, 0); !slices.Equal(got, want) {
		t.Fatalf("DeferredExecutions = %v, want %v", got, want)
	}
	if got := deferred(t, r, 3); !slices.Equal(got, want[:3]) {
		t.Fatalf("DeferredExecutions(3) = %v, want %v", got, want[:3])
	}
	n, err := r.CountDeferred(t.Context())
	if err != nil || n != 6 {
		t.Fatalf("CountDeferred = %d, %v; want 6", n, err)
	}
}

// testDeferredKeepsPlace: deferring an execution again changes nothing.
func testDeferredKeepsPlace(t *testing.T, r storage.Repos) {
	deferAll(t, r,
		storage.Deferred{TenantID: "a", ExecutionID: "a1", Seq: 10},
		storage.Deferred{TenantID: "a", ExecutionID: "a2", Seq: 11},
	)
	if err := r.DeferExecution(t.Context(), "a", "a1", 99); err != nil {
		t.Fatal(err)
	}
	if got, want := deferred(t, r, 0), []string{"a/a1@10", "a/a2@11"}; !slices.Equal(got, want) {
		t.Fatalf("after deferring a1 again: %v, want %v", got, want)
	}
}

func testDeferredResume(t *testing.T, r storage.Repos) {
	deferAll(t, r,
		storage.Deferred{TenantID: "a", ExecutionID: "a1", Seq: 10},
		storage.Deferred{TenantID: "b", ExecutionID: "a1", Seq: 11}, // same id, another tenant
	)
	ok, err := r.ResumeExecution(t.Context(), "a", "a1")
	if err != nil || !ok {
		t.Fatalf("ResumeExecution(a/a1) = %v, %v; want true", ok, err)
	}
	ok, err = r.ResumeExecution(t.Context(), "a", "a1")
	if err != nil || ok {
		t.Fatalf("ResumeExecution(a/a1) again = %v, %v; want false", ok, err)
	}
	if got, want := deferred(t, r, 0), []string{"b/a1@11"}; !slices.Equal(got, want) {
		t.Fatalf("after resuming a/a1: %v, want %v", got, want)
	}
	// Resumed, it may be deferred again, behind what came meanwhile.
	if err := r.DeferExecution(t.Context(), "a", "a1", 30); err != nil {
		t.Fatal(err)
	}
	if got, want := deferred(t, r, 0), []string{"b/a1@11", "a/a1@30"}; !slices.Equal(got, want) {
		t.Fatalf("deferred again: %v, want %v", got, want)
	}
}

func testDeferredMissing(t *testing.T, r storage.Repos) {
	err := r.DeferExecution(t.Context(), "a", "nope", 1)
	wantErr(t, "DeferExecution(missing)", err, storage.ErrNotFound)
	n, err := r.CountDeferred(t.Context())
	if err != nil || n != 0 {
		t.Fatalf("CountDeferred = %d, %v; want 0", n, err)
	}
}
