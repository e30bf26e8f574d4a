package storagetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func workflowTests() []test {
	return []test{
		{"PutAssignsVersions", testPutWorkflowVersions},
		{"GetLatestAndExact", testGetWorkflow},
		{"ListPaging", testListWorkflows},
		{"Delete", testDeleteWorkflow},
		{"TenantIsolation", testWorkflowTenants},
		{"Count", testCountWorkflows},
	}
}

func testCountWorkflows(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		putWorkflow(t, r, newWorkflow("t1", id, 1))
	}
	putWorkflow(t, r, newWorkflow("t1", "a", 2)) // a new version is not a new workflow
	putWorkflow(t, r, newWorkflow("t2", "z", 1))
	wantErr(t, "DeleteWorkflow", r.DeleteWorkflow(ctx, "t1", "c"), nil)
	for _, tt := range []struct {
		tenant      string
		limit, want int
	}{
		{"t1", 10, 2}, {"t1", 1, 1}, {"t2", 10, 1}, {"t3", 10, 0},
	} {
		got, err := r.CountWorkflows(ctx, tt.tenant, tt.limit)
		wantErr(t, "CountWorkflows", err, nil)
		if got != tt.want {
			t.Errorf("CountWorkflows(%s, %d) = %d, want %d", tt.tenant, tt.limit, got, tt.want)
		}
	}
}

// newWorkflow returns revision rev of workflow id, with fields that differ
// from one revision to the next.
func newWorkflow(tenant, id string, rev int) *storage.Workflow {
	return &storage.Workflow{
		TenantID:   tenant,
		ID:         id,
		Name:       fmt.Sprintf("%s rev %d", id, rev),
		Definition: json.RawMessage(fmt.Sprintf(`{"id": %q, "rev": %d, "nodes": [{"id": "a", "action": "builtin.noop"}]}`, id, rev)),
		CreatedAt:  at(time.Duration(rev) * time.Second),
	}
}

// putWorkflow stores w and fails t if that does not work.
func putWorkflow(t *testing.T, r storage.Repos, w *storage.Workflow) *storage.Workflow {
	t.Helper()
	if err := r.PutWorkflow(t.Context(), w); err != nil {
		t.Fatalf("PutWorkflow(%s/%s): %v", w.TenantID, w.ID, err)
	}
	return w
}

func testPutWorkflowVersions(t *testing.T, r storage.Repos) {
	for want := 1; want <= 3; want++ {
		w := putWorkflow(t, r, newWorkflow("t1", "wf", want))
		if w.Version != want {
			t.Errorf("put #%d: Version = %d, want %d", want, w.Version, want)
		}
	}
	if w := putWorkflow(t, r, newWorkflow("t1", "other", 1)); w.Version != 1 {
		t.Errorf("new id: Version = %d, want 1", w.Version)
	}
}

func testGetWorkflow(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	var revs []*storage.Workflow
	for rev := 1; rev <= 3; rev++ {
		revs = append(revs, putWorkflow(t, r, newWorkflow("t1", "wf", rev)))
	}

	cases := []struct {
		name    string
		id      string
		version int
		want    *storage.Workflow
		err     error
	}{
		{"latest", "wf", 0, revs[2], nil},
		{"version 1", "wf", 1, revs[0], nil},
		{"version 2", "wf", 2, revs[1], nil},
		{"version 3", "wf", 3, revs[2], nil},
		{"future version", "wf", 4, nil, storage.ErrNotFound},
		{"missing id", "nope", 0, nil, storage.ErrNotFound},
		{"missing id and version", "nope", 1, nil, storage.ErrNotFound},
	}
	for _, tc := range cases {
		got, err := r.GetWorkflow(ctx, "t1", tc.id, tc.version)
		wantErr(t, "GetWorkflow "+tc.name, err, tc.err)
		if tc.want != nil {
			checkWorkflow(t, "GetWorkflow "+tc.name, got, tc.want)
		}
	}
	for _, w := range revs {
		got, err := r.GetWorkflowVersion(ctx, "t1", "wf", w.Version)
		wantErr(t, fmt.Sprintf("GetWorkflowVersion(%d)", w.Version), err, nil)
		checkWorkflow(t, fmt.Sprintf("GetWorkflowVersion(%d)", w.Version), got, w)
	}
	_, err := r.GetWorkflowVersion(ctx, "t1", "wf", 4)
	wantErr(t, "GetWorkflowVersion(4)", err, storage.ErrNotFound)
}

func testListWorkflows(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	// Inserted out of id order, some with several versions, beside another
	// tenant whose ids interleave.
	revisions := map[string]int{"wf-07": 1, "wf-02": 3, "wf-10": 1, "wf-01": 1, "wf-05": 2, "wf-03": 1, "wf-09": 1}
	order := []string{"wf-07", "wf-02", "wf-10", "wf-01", "wf-05", "wf-03", "wf-09"}
	latest := map[string]*storage.Workflow{}
	for _, id := range order {
		for rev := 1; rev <= revisions[id]; rev++ {
			latest[id] = putWorkflow(t, r, newWorkflow("t1", id, rev))
		}
	}
	putWorkflow(t, r, newWorkflow("t2", "wf-04", 1))
	putWorkflow(t, r, newWorkflow("t2", "wf-06", 1))
	// A deleted workflow in the middle must be skipped by every page.
	putWorkflow(t, r, newWorkflow("t1", "wf-08", 1))
	wantErr(t, "DeleteWorkflow(wf-08)", r.DeleteWorkflow(ctx, "t1", "wf-08"), nil)
	want := slices.Clone(order)
	slices.Sort(want)

	for _, limit := range pageLimits() {
		got := walkPages(t, limit, len(want), func(cursor string) ([]*storage.Workflow, string, error) {
			return r.ListWorkflows(ctx, "t1", storage.Page{Cursor: cursor, Limit: limit})
		})
		wantIDs(t, fmt.Sprintf("limit %d: ids", limit), ids(got, workflowID), want)
		for _, w := range got {
			if l := latest[w.ID]; l != nil {
				checkWorkflow(t, fmt.Sprintf("limit %d: %s", limit, w.ID), w, l)
			}
		}
	}

	got, next, err := r.ListWorkflows(ctx, "nobody", storage.Page{Limit: 10})
	if err != nil || len(got) != 0 || next != "" {
		t.Errorf("ListWorkflows(empty tenant) = %d items, next %q, err %v; want none", len(got), next, err)
	}
	if _, _, err := r.ListWorkflows(ctx, "t1", storage.Page{Cursor: "!not a cursor!", Limit: 2}); err == nil {
		t.Errorf("ListWorkflows with a malformed cursor: no error")
	}
}

func testDeleteWorkflow(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	v1 := putWorkflow(t, r, newWorkflow("t1", "wf", 1))
	v2 := putWorkflow(t, r, newWorkflow("t1", "wf", 2))
	putWorkflow(t, r, newWorkflow("t1", "keep", 1))

	wantErr(t, "DeleteWorkflow", r.DeleteWorkflow(ctx, "t1", "wf"), nil)
	for _, version := range []int{0, 1, 2} {
		_, err := r.GetWorkflow(ctx, "t1", "wf", version)
		wantErr(t, fmt.Sprintf("GetWorkflow(deleted, %d)", version), err, storage.ErrNotFound)
	}
	// Executions started before the delete still read their version.
	for _, w := range []*storage.Workflow{v1, v2} {
		got, err := r.GetWorkflowVersion(ctx, "t1", "wf", w.Version)
		wantErr(t, fmt.Sprintf("GetWorkflowVersion(deleted, %d)", w.Version), err, nil)
		checkWorkflow(t, fmt.Sprintf("GetWorkflowVersion(deleted, %d)", w.Version), got, w)
	}
	list, _, err := r.ListWorkflows(ctx, "t1", storage.Page{Limit: 10})
	wantErr(t, "ListWorkflows", err, nil)
	wantIDs(t, "ListWorkflows after delete", ids(list, workflowID), []string{"keep"})

	wantErr(t, "DeleteWorkflow(again)", r.DeleteWorkflow(ctx, "t1", "wf"), storage.ErrNotFound)
	wantErr(t, "DeleteWorkflow(missing)", r.DeleteWorkflow(ctx, "t1", "nope"), storage.ErrNotFound)

	// Saving the id again continues the numbering: versions are never
	// reused, since executions refer to them by number.
	v3 := putWorkflow(t, r, newWorkflow("t1", "wf", 3))
	if v3.Version != 3 {
		t.Errorf("put after delete: Version = %d, want 3", v3.Version)
	}
	got, err := r.GetWorkflow(ctx, "t1", "wf", 0)
	wantErr(t, "GetWorkflow(after re-put)", err, nil)
	checkWorkflow(t, "GetWorkflow(after re-put)", got, v3)
	list, _, err = r.ListWorkflows(ctx, "t1", storage.Page{Limit: 10})
	wantErr(t, "ListWorkflows", err, nil)
	wantIDs(t, "ListWorkflows after re-put", ids(list, workflowID), []string{"keep", "wf"})
}

func testWorkflowTenants(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	putWorkflow(t, r, newWorkflow("tenant-a", "wf", 1))
	a2 := putWorkflow(t, r, newWorkflow("tenant-a", "wf", 2))

	_, err := r.GetWorkflow(ctx, "tenant-b", "wf", 0)
	wantErr(t, "GetWorkflow(other tenant)", err, storage.ErrNotFound)
	_, err = r.GetWorkflow(ctx, "tenant-b", "wf", 1)
	wantErr(t, "GetWorkflow(other tenant, 1)", err, storage.ErrNotFound)
	_, err = r.GetWorkflowVersion(ctx, "tenant-b", "wf", 1)
	wantErr(t, "GetWorkflowVersion(other tenant)", err, storage.ErrNotFound)
	list, _, err := r.ListWorkflows(ctx, "tenant-b", storage.Page{Limit: 10})
	wantErr(t, "ListWorkflows(other tenant)", err, nil)
	wantIDs(t, "ListWorkflows(other tenant)", ids(list, workflowID), nil)
	wantErr(t, "DeleteWorkflow(other tenant)", r.DeleteWorkflow(ctx, "tenant-b", "wf"), storage.ErrNotFound)

	// The same id in another tenant is another workflow, numbered on its own.
	b1 := putWorkflow(t, r, newWorkflow("tenant-b", "wf", 1))
	if b1.Version != 1 {
		t.Errorf("tenant-b first put: Version = %d, want 1", b1.Version)
	}
	got, err := r.GetWorkflow(ctx, "tenant-a", "wf", 0)
	wantErr(t, "GetWorkflow(tenant-a)", err, nil)
	checkWorkflow(t, "GetWorkflow(tenant-a)", got, a2)

	wantErr(t, "DeleteWorkflow(tenant-a)", r.DeleteWorkflow(ctx, "tenant-a", "wf"), nil)
	got, err = r.GetWorkflow(ctx, "tenant-b", "wf", 0)
	wantErr(t, "GetWorkflow(tenant-b after tenant-a deleted)", err, nil)
	checkWorkflow(t, "GetWorkflow(tenant-b after tenant-a deleted)", got, b1)
}
