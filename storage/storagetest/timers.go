package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func timerTests() []test {
	return []test{
		{"CreateDuplicate", testCreateTimer},
		{"DueTimers", testDueTimers},
		{"NextTimer", testNextTimer},
		{"DeleteTimer", testDeleteTimer},
		{"DeleteExecutionTimers", testDeleteExecutionTimers},
	}
}

// newTimer returns a timer of e due d after the epoch, with its id made
// from what it is for, as the engine makes them.
func newTimer(e *storage.Execution, kind, node string, attempt int, d time.Duration) *storage.Timer {
	return &storage.Timer{
		TenantID:    e.TenantID,
		ID:          fmt.Sprintf("%s/%s/%s/%d", kind, e.ID, node, attempt),
		ExecutionID: e.ID,
		Node:        node,
		Attempt:     attempt,
		Kind:        kind,
		DueAt:       at(d),
	}
}

func createTimers(t *testing.T, r storage.Repos, timers ...*storage.Timer) {
	t.Helper()
	for _, tm := range timers {
		if err := r.CreateTimer(t.Context(), tm); err != nil {
			t.Fatalf("CreateTimer(%s): %v", tm.ID, err)
		}
	}
}

// allTimers returns every timer, by asking for those due long after any
// the tests create.
func allTimers(t *testing.T, r storage.Repos) []*storage.Timer {
	t.Helper()
	got, err := r.DueTimers(t.Context(), at(1000*time.Hour), 0)
	if err != nil {
		t.Fatalf("DueTimers(all): %v", err)
	}
	return got
}

// checkTimers fails t unless got lists want in order, field by field.
func checkTimers(t *testing.T, label string, got, want []*storage.Timer) {
	t.Helper()
	wantIDs(t, label, ids(got, timerID), ids(want, timerID))
	for i := range min(len(got), len(want)) {
		checkTimer(t, fmt.Sprintf("%s[%d]", label, i), got[i], want[i])
	}
}

func testCreateTimer(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e1 := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	e2 := createExecution(t, r, newExecution("t2", "e1", "wf", 2))

	retry := newTimer(e1, "retry", "fetch", 2, time.Second+7)
	// Execution-level, with a time outside UTC: drivers must keep the
	// instant.
	timeout := newTimer(e1, "timeout", "", 0, time.Hour+3)
	timeout.DueAt = timeout.DueAt.In(time.FixedZone("UTC-03:00", -3*3600))
	createTimers(t, r, retry, timeout)
	checkTimers(t, "timers after create", allTimers(t, r), []*storage.Timer{retry, timeout})

	dup := *retry
	dup.DueAt = at(time.Minute)
	dup.Kind = "other"
	wantErr(t, "CreateTimer(duplicate)", r.CreateTimer(ctx, &dup), storage.ErrConflict)
	// Ids are global, like task ids: another tenant cannot take one.
	foreign := newTimer(e2, "retry", "fetch", 2, time.Second)
	foreign.ID = retry.ID
	wantErr(t, "CreateTimer(id of another tenant)", r.CreateTimer(ctx, foreign), storage.ErrConflict)
	checkTimers(t, "timers after duplicates", allTimers(t, r), []*storage.Timer{retry, timeout})
}

func testDueTimers(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e1 := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	e2 := createExecution(t, r, newExecution("t2", "e2", "wf", 2))
	// Created in an order unrelated to (DueAt, ID); b and c are due at the
	// same instant, and c is created first but sorts after b by id.
	c := newTimer(e1, "retry", "fetch", 1, 10*time.Second)
	a := newTimer(e1, "delay", "wait", 0, 5*time.Second)
	d := newTimer(e1, "timeout", "", 0, 20*time.Second)
	b := newTimer(e2, "delay", "pause", 0, 10*time.Second)
	justBefore := newTimer(e2, "retry", "store", 3, 10*time.Second-1)
	createTimers(t, r, c, a, d, b, justBefore)

	cases := []struct {
		name  string
		now   time.Time
		limit int
		want  []*storage.Timer
	}{
		{"before any", at(5*time.Second - 1), 0, nil},
		{"exactly at the first", at(5 * time.Second), 0, []*storage.Timer{a}},
		{"a nanosecond before a tie", at(10*time.Second - 1), 0, []*storage.Timer{a, justBefore}},
		{"at a tie", at(10 * time.Second), 0, []*storage.Timer{a, justBefore, b, c}},
		{"limit inside a tie", at(10 * time.Second), 3, []*storage.Timer{a, justBefore, b}},
		{"limit", at(time.Hour), 1, []*storage.Timer{a}},
		{"negative limit", at(time.Hour), -1, []*storage.Timer{a, justBefore, b, c, d}},
		{"limit above the count", at(time.Hour), 100, []*storage.Timer{a, justBefore, b, c, d}},
	}
	for _, tc := range cases {
		label := fmt.Sprintf("DueTimers %s", tc.name)
		got, err := r.DueTimers(ctx, tc.now, tc.limit)
		wantErr(t, label, err, nil)
		checkTimers(t, label, got, tc.want)
	}
}

func testNextTimer(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	_, err := r.NextTimer(ctx)
	wantErr(t, "NextTimer(no timers)", err, storage.ErrNotFound)

	e1 := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	e2 := createExecution(t, r, newExecution("t2", "e2", "wf", 2))
	// tieA (of t1) wins its tie with tieB (of t2) by id, although it is
	// created last.
	late := newTimer(e1, "timeout", "", 0, time.Minute)
	tieB := newTimer(e2, "retry", "b", 1, 10*time.Second)
	tieA := newTimer(e1, "retry", "a", 1, 10*time.Second)
	createTimers(t, r, late, tieB, tieA)

	// Each deletion uncovers the next timer, across tenants.
	for _, want := range []*storage.Timer{tieA, tieB, late} {
		got, err := r.NextTimer(ctx)
		wantErr(t, "NextTimer", err, nil)
		checkTimer(t, "NextTimer", got, want)
		if ok, err := r.DeleteTimer(ctx, want.ID); err != nil || !ok {
			t.Fatalf("DeleteTimer(%s) = %v, %v; want true", want.ID, ok, err)
		}
	}
	_, err = r.NextTimer(ctx)
	wantErr(t, "NextTimer(all deleted)", err, storage.ErrNotFound)
}

func testDeleteTimer(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	gone := newTimer(e, "retry", "a", 1, time.Second)
	kept := newTimer(e, "retry", "b", 1, 2*time.Second)
	createTimers(t, r, gone, kept)

	steps := []struct {
		name, id string
		want     bool
	}{
		{"existing", gone.ID, true},
		{"again", gone.ID, false},
		{"missing", "nope", false},
	}
	for _, s := range steps {
		ok, err := r.DeleteTimer(ctx, s.id)
		wantErr(t, "DeleteTimer "+s.name, err, nil)
		if ok != s.want {
			t.Errorf("DeleteTimer %s = %v, want %v", s.name, ok, s.want)
		}
	}
	checkTimers(t, "timers after DeleteTimer", allTimers(t, r), []*storage.Timer{kept})
}

func testDeleteExecutionTimers(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e1 := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	e2 := createExecution(t, r, newExecution("t1", "e2", "wf", 2))
	foreign := createExecution(t, r, newExecution("t2", "e1", "wf", 3))
	createTimers(t, r,
		newTimer(e1, "retry", "a", 1, time.Second),
		newTimer(e1, "retry", "b", 2, 2*time.Second),
		newTimer(e1, "timeout", "", 0, time.Hour),
	)
	other := newTimer(e2, "retry", "a", 1, 3*time.Second)
	// Same execution id in another tenant; timer ids stay distinct.
	foreignTimer := newTimer(foreign, "retry", "a", 1, 4*time.Second)
	foreignTimer.ID = "t2/" + foreignTimer.ID
	createTimers(t, r, other, foreignTimer)

	steps := []struct {
		name         string
		tenant, exec string
		want         int
	}{
		{"e1", "t1", "e1", 3},
		{"e1 again", "t1", "e1", 0},
		{"missing execution", "t1", "nope", 0},
		{"other tenant's id", "t3", "e2", 0},
	}
	for _, s := range steps {
		n, err := r.DeleteExecutionTimers(ctx, s.tenant, s.exec)
		wantErr(t, "DeleteExecutionTimers "+s.name, err, nil)
		if n != s.want {
			t.Errorf("DeleteExecutionTimers %s = %d, want %d", s.name, n, s.want)
		}
	}
	checkTimers(t, "timers after DeleteExecutionTimers", allTimers(t, r), []*storage.Timer{other, foreignTimer})
}
