// Package storagetest is the conformance suite for storage drivers: every
// implementation of storage.Repos runs Run from its own tests, the way file
// systems run testing/fstest.TestFS, so that the engine can rely on the
// contracts documented in package storage whatever the driver.
//
// The suite never reads the clock: every time it stores or passes as "now"
// is built from a fixed instant, with nanoseconds, so that rounding and time
// zone bugs show up and results do not depend on when the tests run.
package storagetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// Run runs the conformance suite as subtests of t. newRepos must return an
// empty store, independent of every other one it returned; it is called once
// per subtest and should release the store with t.Cleanup.
func Run(t *testing.T, newRepos func(t *testing.T) storage.Repos) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Workflows", workflowTests()},
		{"Executions", executionTests()},
		{"Transition", transitionTests()},
		{"Journal", journalTests()},
		{"Tasks", taskTests()},
		{"Timers", timerTests()},
		{"Deferred", deferredTests()},
		{"Credentials", credentialTests()},
		{"Actions", actionTests()},
		{"Settings", settingTests()},
		{"Tenants", tenantTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.fn(t, newRepos(t))
				})
			}
		})
	}
}

// test is one subtest, run against a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, r storage.Repos)
}

// concurrency is how many goroutines race in the compare-and-swap tests:
// enough to interleave on any scheduler, few enough to stay fast.
const concurrency = 32

// at returns the instant offset d from the suite's fixed epoch, which has
// nanoseconds so that a driver that rounds times fails.
func at(d time.Duration) time.Time {
	return time.Date(2026, time.March, 14, 15, 9, 26, 535897932, time.UTC).Add(d)
}

// wantErr fails t unless err matches target (nil meaning success).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: unexpected error: %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: error = %v, want %v", what, err, target)
	}
}

// diffs collects the fields in which a record differs from the expected
// one, so that a mismatch is reported once, with every field that is wrong.
type diffs []string

func (d *diffs) add(field string, got, want any) {
	*d = append(*d, fmt.Sprintf("%s = %v, want %v", field, got, want))
}

func (d diffs) report(t *testing.T, label string) {
	t.Helper()
	if len(d) > 0 {
		t.Errorf("%s:\n\t%s", label, strings.Join(d, "\n\t"))
	}
}

func cmpVal[T comparable](d *diffs, field string, got, want T) {
	if got != want {
		d.add(field, fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want))
	}
}

func cmpTime(d *diffs, field string, got, want time.Time) {
	if !got.Equal(want) {
		d.add(field, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

func cmpJSON(d *diffs, field string, got, want []byte) {
	if !jsonEqual(got, want) {
		d.add(field, string(got), string(want))
	}
}

// jsonEqual reports whether a and b hold the same JSON value; a driver may
// store JSON in a form that changes whitespace or key order. Absent (nil or
// empty) only equals absent.
func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func checkWorkflow(t *testing.T, label string, got, want *storage.Workflow) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil workflow", label)
		return
	}
	var d diffs
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "Version", got.Version, want.Version)
	cmpVal(&d, "Name", got.Name, want.Name)
	cmpJSON(&d, "Definition", got.Definition, want.Definition)
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	d.report(t, label)
}

// checkExecution compares executions, and their node states when
// withNodes is set.
func checkExecution(t *testing.T, label string, got, want *storage.Execution, withNodes bool) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil execution", label)
		return
	}
	var d diffs
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "WorkflowID", got.WorkflowID, want.WorkflowID)
	cmpVal(&d, "WorkflowVersion", got.WorkflowVersion, want.WorkflowVersion)
	cmpVal(&d, "Status", got.Status, want.Status)
	cmpJSON(&d, "Input", got.Input, want.Input)
	cmpJSON(&d, "Output", got.Output, want.Output)
	cmpVal(&d, "Error", got.Error, want.Error)
	cmpVal(&d, "IdempotencyKey", got.IdempotencyKey, want.IdempotencyKey)
	cmpVal(&d, "ParentID", got.ParentID, want.ParentID)
	cmpVal(&d, "ParentNode", got.ParentNode, want.ParentNode)
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	cmpTime(&d, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	cmpTime(&d, "FinishedAt", got.FinishedAt, want.FinishedAt)
	if withNodes {
		cmpVal(&d, "len(Nodes)", len(got.Nodes), len(want.Nodes))
		for id, wn := range want.Nodes {
			gn := got.Nodes[id]
			if gn == nil {
				d.add(fmt.Sprintf("Nodes[%q]", id), "missing", "present")
				continue
			}
			prefix := fmt.Sprintf("Nodes[%q].", id)
			cmpVal(&d, prefix+"ID", gn.ID, id)
			cmpVal(&d, prefix+"Status", gn.Status, wn.Status)
			cmpVal(&d, prefix+"Attempts", gn.Attempts, wn.Attempts)
			cmpJSON(&d, prefix+"Output", gn.Output, wn.Output)
			cmpVal(&d, prefix+"Error", gn.Error, wn.Error)
			cmpTime(&d, prefix+"StartedAt", gn.StartedAt, wn.StartedAt)
			cmpTime(&d, prefix+"FinishedAt", gn.FinishedAt, wn.FinishedAt)
		}
	}
	d.report(t, label)
}

func checkEntry(t *testing.T, label string, got, want storage.JournalEntry) {
	t.Helper()
	var d diffs
	cmpVal(&d, "Seq", got.Seq, want.Seq)
	cmpVal(&d, "Type", got.Type, want.Type)
	cmpTime(&d, "At", got.At, want.At)
	cmpVal(&d, "Node", got.Node, want.Node)
	cmpVal(&d, "Attempt", got.Attempt, want.Attempt)
	cmpVal(&d, "IdempotencyKey", got.IdempotencyKey, want.IdempotencyKey)
	cmpJSON(&d, "Data", got.Data, want.Data)
	d.report(t, label)
}

func checkTask(t *testing.T, label string, got, want *storage.Task) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil task", label)
		return
	}
	var d diffs
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "ExecutionID", got.ExecutionID, want.ExecutionID)
	cmpVal(&d, "Node", got.Node, want.Node)
	cmpVal(&d, "Attempt", got.Attempt, want.Attempt)
	cmpVal(&d, "Action", got.Action, want.Action)
	cmpJSON(&d, "Params", got.Params, want.Params)
	cmpVal(&d, "Timeout", got.Timeout, want.Timeout)
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	cmpVal(&d, "LeaseHolder", got.LeaseHolder, want.LeaseHolder)
	cmpVal(&d, "LeaseToken", got.LeaseToken, want.LeaseToken)
	cmpTime(&d, "LeaseExpires", got.LeaseExpires, want.LeaseExpires)
	d.report(t, label)
}

func checkTimer(t *testing.T, label string, got, want *storage.Timer) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil timer", label)
		return
	}
	var d diffs
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "ExecutionID", got.ExecutionID, want.ExecutionID)
	cmpVal(&d, "Node", got.Node, want.Node)
	cmpVal(&d, "Attempt", got.Attempt, want.Attempt)
	cmpVal(&d, "Kind", got.Kind, want.Kind)
	cmpTime(&d, "DueAt", got.DueAt, want.DueAt)
	d.report(t, label)
}

func checkCredential(t *testing.T, label string, got, want *storage.Credential) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil credential", label)
		return
	}
	var d diffs
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "Name", got.Name, want.Name)
	cmpVal(&d, "Type", got.Type, want.Type)
	if !bytes.Equal(got.Data, want.Data) {
		d.add("Data", fmt.Sprintf("%x", got.Data), fmt.Sprintf("%x", want.Data))
	}
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	cmpTime(&d, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	d.report(t, label)
}

// ids returns the ids of records, for comparing lists in one line.
func ids[T any](records []T, id func(T) string) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = id(r)
	}
	return out
}

func workflowID(w *storage.Workflow) string       { return w.ID }
func executionID(e *storage.Execution) string     { return e.ID }
func executionKey(e *storage.Execution) string    { return e.TenantID + "/" + e.ID }
func taskID(t *storage.Task) string               { return t.ID }
func timerID(t *storage.Timer) string             { return t.ID }
func credentialName(c *storage.Credential) string { return c.Name }

// wantIDs fails t unless got lists exactly want, in order.
func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// pageLimits are the page sizes the paging tests walk with: one, sizes that
// do and do not divide the total, and one larger than it.
func pageLimits() []int { return []int{1, 2, 3, 4, 100} }

// walkPages calls list with growing cursors until it returns "" and returns
// everything it listed. It fails t if a page is larger than limit, if a
// page before the last is empty, or if it takes more pages than needed.
func walkPages[T any](t *testing.T, limit, total int, list func(cursor string) ([]T, string, error)) []T {
	t.Helper()
	wantPages := max(1, (total+limit-1)/limit)
	var (
		all    []T
		cursor string
	)
	for pages := 1; ; pages++ {
		page, next, err := list(cursor)
		if err != nil {
			t.Fatalf("limit %d, page %d: %v", limit, pages, err)
		}
		if len(page) > limit {
			t.Fatalf("limit %d, page %d: got %d items", limit, pages, len(page))
		}
		all = append(all, page...)
		if next == "" {
			if pages != wantPages {
				t.Errorf("limit %d: listed %d items in %d pages, want %d pages", limit, len(all), pages, wantPages)
			}
			return all
		}
		if len(page) == 0 {
			t.Fatalf("limit %d, page %d: empty page with next cursor %q", limit, pages, next)
		}
		if pages >= wantPages {
			t.Fatalf("limit %d: page %d of %d returned next cursor %q; the last page must return \"\"", limit, pages, wantPages, next)
		}
		cursor = next
	}
}
