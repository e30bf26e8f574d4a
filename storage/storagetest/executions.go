package storagetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func executionTests() []test {
	return []test{
		{"CreateGet", testCreateGetExecution},
		{"DuplicateID", testDuplicateExecution},
		{"IdempotencyKey", testIdempotencyKey},
		{"ListFiltersPaging", testListExecutions},
		{"PutNode", testPutNode},
		{"ChildExecutions", testChildExecutions},
		{"PendingExecutions", testPendingExecutions},
		{"CountExecutions", testCountExecutions},
		{"QuotaCounts", testQuotaCounts},
	}
}

func transitionTests() []test {
	return []test{
		{"WrongFrom", testTransitionWrongFrom},
		{"RightFrom", testTransitionRightFrom},
		{"Missing", testTransitionMissing},
		{"Race", testTransitionRace},
	}
}

func journalTests() []test {
	return []test{
		{"SeqAndWindows", testJournalWindows},
		{"PerExecution", testJournalPerExecution},
		{"RoundTrip", testJournalRoundTrip},
		{"Missing", testJournalMissing},
	}
}

// newExecution returns a running execution created n milliseconds after
// the epoch, without nodes.
func newExecution(tenant, id, workflow string, n int) *storage.Execution {
	created := at(time.Duration(n) * time.Millisecond)
	return &storage.Execution{
		TenantID:        tenant,
		ID:              id,
		WorkflowID:      workflow,
		WorkflowVersion: 1,
		Status:          "running",
		Input:           json.RawMessage(fmt.Sprintf(`{"n": %d}`, n)),
		CreatedAt:       created,
		UpdatedAt:       created,
	}
}

// startEntry is the first journal entry of e.
func startEntry(e *storage.Execution) storage.JournalEntry {
	return storage.JournalEntry{
		Type: "execution.started",
		At:   e.CreatedAt,
		Data: json.RawMessage(fmt.Sprintf(`{"input": %s}`, e.Input)),
	}
}

// createExecution creates e with its start entry and fails t unless it was
// created.
func createExecution(t *testing.T, r storage.Repos, e *storage.Execution) *storage.Execution {
	t.Helper()
	_, created, err := r.CreateExecution(t.Context(), e, startEntry(e))
	if err != nil {
		t.Fatalf("CreateExecution(%s/%s): %v", e.TenantID, e.ID, err)
	}
	if !created {
		t.Fatalf("CreateExecution(%s/%s): created = false", e.TenantID, e.ID)
	}
	return e
}

// journal returns the whole journal of an execution.
func journal(t *testing.T, r storage.Repos, tenant, id string) []storage.JournalEntry {
	t.Helper()
	entries, err := r.Journal(t.Context(), tenant, id, 0, 0)
	if err != nil {
		t.Fatalf("Journal(%s/%s): %v", tenant, id, err)
	}
	return entries
}

func getExecution(t *testing.T, r storage.Repos, tenant, id string) *storage.Execution {
	t.Helper()
	e, err := r.GetExecution(t.Context(), tenant, id)
	if err != nil {
		t.Fatalf("GetExecution(%s/%s): %v", tenant, id, err)
	}
	return e
}

func testCreateGetExecution(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	minimal := newExecution("t1", "minimal", "wf", 1)

	withNodes := newExecution("t1", "with-nodes", "wf", 2)
	withNodes.Nodes = map[string]*storage.NodeState{
		"a": {ID: "a", Status: "pending"},
		"b": {ID: "b", Status: "running", Attempts: 1, StartedAt: at(3 * time.Millisecond)},
		"c": {ID: "c", Status: "succeeded", Attempts: 2, Output: json.RawMessage(`{"ok": true}`),
			StartedAt: at(4 * time.Millisecond), FinishedAt: at(5 * time.Millisecond)},
		"d": {ID: "d", Status: "failed", Attempts: 3, Error: "boom",
			StartedAt: at(6 * time.Millisecond), FinishedAt: at(7 * time.Millisecond)},
	}

	// Every field set, and times outside UTC: drivers must keep the instant.
	full := newExecution("t1", "full", "wf", 3)
	zone := time.FixedZone("UTC+05:30", 5*3600+1800)
	full.WorkflowVersion = 7
	full.Status = "failed"
	full.Output = json.RawMessage(`{"partial": [1, 2, 3]}`)
	full.Error = "node d failed: boom"
	full.IdempotencyKey = "order-42"
	full.ParentID = "minimal"
	full.ParentNode = "call-child"
	full.CreatedAt = at(time.Second).In(zone)
	full.UpdatedAt = at(2 * time.Second).In(zone)
	full.FinishedAt = at(3*time.Second + 1)

	for _, e := range []*storage.Execution{minimal, withNodes, full} {
		createExecution(t, r, e)
		got := getExecution(t, r, e.TenantID, e.ID)
		checkExecution(t, "GetExecution("+e.ID+")", got, e, true)
		entries := journal(t, r, e.TenantID, e.ID)
		if len(entries) != 1 {
			t.Fatalf("Journal(%s) has %d entries, want 1 (the first entry)", e.ID, len(entries))
		}
		want := startEntry(e)
		want.Seq = 1
		checkEntry(t, "first journal entry of "+e.ID, entries[0], want)
	}

	_, err := r.GetExecution(ctx, "t1", "nope")
	wantErr(t, "GetExecution(missing)", err, storage.ErrNotFound)
	_, err = r.GetExecution(ctx, "t2", "minimal")
	wantErr(t, "GetExecution(other tenant)", err, storage.ErrNotFound)
}

func testDuplicateExecution(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	orig := createExecution(t, r, newExecution("t1", "e1", "wf-a", 1))

	dup := newExecution("t1", "e1", "wf-b", 2)
	_, _, err := r.CreateExecution(ctx, dup, startEntry(dup))
	wantErr(t, "CreateExecution(duplicate id)", err, storage.ErrConflict)
	checkExecution(t, "GetExecution after duplicate", getExecution(t, r, "t1", "e1"), orig, true)
	if n := len(journal(t, r, "t1", "e1")); n != 1 {
		t.Errorf("journal after duplicate has %d entries, want 1", n)
	}

	// Ids are per tenant.
	createExecution(t, r, newExecution("t2", "e1", "wf-a", 3))
}

func testIdempotencyKey(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	first := newExecution("t1", "e1", "wf-a", 1)
	first.IdempotencyKey = "key-1"
	// A retried subworkflow start must get back its parent fields too.
	first.ParentID, first.ParentNode = "parent", "call"
	createExecution(t, r, first)

	retry := newExecution("t1", "e2", "wf-a", 2)
	retry.IdempotencyKey = "key-1"
	existing, created, err := r.CreateExecution(ctx, retry, startEntry(retry))
	wantErr(t, "CreateExecution(same key)", err, nil)
	if created {
		t.Fatalf("CreateExecution(same key): created = true, want false")
	}
	checkExecution(t, "CreateExecution(same key) existing", existing, first, false)
	_, err = r.GetExecution(ctx, "t1", "e2")
	wantErr(t, "GetExecution(deduplicated)", err, storage.ErrNotFound)
	if n := len(journal(t, r, "t1", "e1")); n != 1 {
		t.Errorf("journal of e1 after deduplicated retry has %d entries, want 1", n)
	}

	// The key is scoped to tenant and workflow; no key means no dedup.
	cases := []struct {
		name string
		e    *storage.Execution
		key  string
	}{
		{"other workflow", newExecution("t1", "e3", "wf-b", 3), "key-1"},
		{"other tenant", newExecution("t2", "e4", "wf-a", 4), "key-1"},
		{"no key", newExecution("t1", "e5", "wf-a", 5), ""},
		{"no key again", newExecution("t1", "e6", "wf-a", 6), ""},
	}
	for _, tc := range cases {
		tc.e.IdempotencyKey = tc.key
		_, created, err := r.CreateExecution(ctx, tc.e, startEntry(tc.e))
		wantErr(t, "CreateExecution("+tc.name+")", err, nil)
		if !created {
			t.Errorf("CreateExecution(%s): created = false, want true", tc.name)
		}
	}
}

func testListExecutions(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	// Created in an order unrelated to the ids, so that creation order
	// cannot be mistaken for id order.
	specs := []struct{ id, workflow, status string }{
		{"e-09", "wf-a", "running"},
		{"e-03", "wf-b", "succeeded"},
		{"e-07", "wf-a", "succeeded"},
		{"e-01", "wf-a", "running"},
		{"e-05", "wf-b", "running"},
		{"e-02", "wf-a", "failed"},
	}
	created := map[string]*storage.Execution{}
	for i, s := range specs {
		e := newExecution("t1", s.id, s.workflow, i)
		e.Status = s.status
		e.Nodes = map[string]*storage.NodeState{"a": {ID: "a", Status: "pending"}}
		if s.workflow == "wf-b" {
			// Children, so that listing is checked to return parent fields.
			e.ParentID, e.ParentNode = "e-09", "call-b"
		}
		created[s.id] = createExecution(t, r, e)
	}
	createExecution(t, r, newExecution("t2", "e-04", "wf-a", 10))

	cases := []struct {
		filter storage.ExecutionFilter
		want   []string
	}{
		{storage.ExecutionFilter{}, []string{"e-09", "e-03", "e-07", "e-01", "e-05", "e-02"}},
		{storage.ExecutionFilter{WorkflowID: "wf-a"}, []string{"e-09", "e-07", "e-01", "e-02"}},
		{storage.ExecutionFilter{Status: "running"}, []string{"e-09", "e-01", "e-05"}},
		{storage.ExecutionFilter{WorkflowID: "wf-a", Status: "running"}, []string{"e-09", "e-01"}},
		{storage.ExecutionFilter{WorkflowID: "wf-c"}, nil},
	}
	for _, tc := range cases {
		for _, limit := range pageLimits() {
			got := walkPages(t, limit, len(tc.want), func(cursor string) ([]*storage.Execution, string, error) {
				return r.ListExecutions(ctx, "t1", tc.filter, storage.Page{Cursor: cursor, Limit: limit})
			})
			label := fmt.Sprintf("ListExecutions(%+v, limit %d)", tc.filter, limit)
			wantIDs(t, label, ids(got, executionID), tc.want)
			for _, e := range got {
				if want := created[e.ID]; want != nil {
					checkExecution(t, label+" "+e.ID, e, want, false)
				}
				if len(e.Nodes) != 0 {
					t.Errorf("%s: %s has %d node states, want none (not filled by List)", label, e.ID, len(e.Nodes))
				}
			}
		}
	}
	if _, _, err := r.ListExecutions(ctx, "t1", storage.ExecutionFilter{}, storage.Page{Cursor: "!not a cursor!", Limit: 2}); err == nil {
		t.Errorf("ListExecutions with a malformed cursor: no error")
	}
}

func testPutNode(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	e.Nodes = map[string]*storage.NodeState{}

	steps := []struct {
		name string
		node storage.NodeState
	}{
		{"insert a", storage.NodeState{ID: "a", Status: "running", Attempts: 1, StartedAt: at(time.Second)}},
		{"insert b", storage.NodeState{ID: "b", Status: "pending"}},
		{"replace a", storage.NodeState{ID: "a", Status: "succeeded", Attempts: 1, Output: json.RawMessage(`{"v": "done"}`),
			StartedAt: at(time.Second), FinishedAt: at(2 * time.Second)}},
		{"replace b", storage.NodeState{ID: "b", Status: "failed", Attempts: 2, Error: "timeout",
			StartedAt: at(3 * time.Second), FinishedAt: at(4 * time.Second)}},
	}
	for _, s := range steps {
		n := s.node
		wantErr(t, "PutNode "+s.name, r.PutNode(ctx, "t1", "e1", &n), nil)
		e.Nodes[n.ID] = &s.node
		checkExecution(t, "GetExecution after "+s.name, getExecution(t, r, "t1", "e1"), e, true)
	}

	n := &storage.NodeState{ID: "a", Status: "running"}
	wantErr(t, "PutNode(missing execution)", r.PutNode(ctx, "t1", "nope", n), storage.ErrNotFound)
	wantErr(t, "PutNode(other tenant)", r.PutNode(ctx, "t2", "e1", n), storage.ErrNotFound)
}

// checkExecutions fails t unless got lists want in order (compared by
// tenant and id, then field by field), without node states.
func checkExecutions(t *testing.T, label string, got, want []*storage.Execution) {
	t.Helper()
	wantIDs(t, label, ids(got, executionKey), ids(want, executionKey))
	for i := range min(len(got), len(want)) {
		checkExecution(t, fmt.Sprintf("%s[%d]", label, i), got[i], want[i], false)
		if len(got[i].Nodes) != 0 {
			t.Errorf("%s[%d]: %d node states, want none (not filled)", label, i, len(got[i].Nodes))
		}
	}
}

func testChildExecutions(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	n := 0
	child := func(tenant, id, parent, node string) *storage.Execution {
		n++
		e := newExecution(tenant, id, "sub", n)
		e.ParentID, e.ParentNode = parent, node
		e.Nodes = map[string]*storage.NodeState{"a": {ID: "a", Status: "pending"}}
		return createExecution(t, r, e)
	}
	parent := createExecution(t, r, newExecution("t1", "p", "wf", 0))
	// Created in an order unrelated to the ids, and interleaved with
	// children of another parent and of the same parent id in another
	// tenant.
	c3 := child("t1", "c-3", "p", "call-a")
	other := child("t1", "c-9", "q", "call-a")
	foreign := child("t2", "c-1", "p", "call-a")
	c1 := child("t1", "c-1", "p", "call-b")
	grandchild := child("t1", "g-1", "c-1", "call-c")
	c2 := child("t1", "c-2", "p", "call-a")

	for _, e := range []*storage.Execution{parent, c1, grandchild, foreign} {
		checkExecution(t, "GetExecution("+executionKey(e)+")", getExecution(t, r, e.TenantID, e.ID), e, true)
	}
	cases := []struct {
		tenant, parent string
		want           []*storage.Execution
	}{
		{"t1", "p", []*storage.Execution{c3, c1, c2}},
		{"t1", "q", []*storage.Execution{other}},
		{"t1", "c-1", []*storage.Execution{grandchild}},
		{"t2", "p", []*storage.Execution{foreign}},
		{"t3", "p", nil},
		{"t1", "c-3", nil},
		{"t1", "nope", nil},
	}
	for _, tc := range cases {
		label := fmt.Sprintf("ChildExecutions(%s, %s)", tc.tenant, tc.parent)
		got, err := r.ChildExecutions(ctx, tc.tenant, tc.parent)
		wantErr(t, label, err, nil)
		checkExecutions(t, label, got, tc.want)
	}
}

// statusSpec is an execution for the tests of queries across tenants.
type statusSpec struct{ tenant, id, status string }

// createStatuses creates one execution per spec, in order, with nodes that
// the queries must not fill, and returns them keyed by executionKey.
func createStatuses(t *testing.T, r storage.Repos, specs []statusSpec) map[string]*storage.Execution {
	t.Helper()
	created := map[string]*storage.Execution{}
	for i, s := range specs {
		e := newExecution(s.tenant, s.id, "wf", i)
		e.Status = s.status
		e.Nodes = map[string]*storage.NodeState{"a": {ID: "a", Status: "pending"}}
		created[executionKey(e)] = createExecution(t, r, e)
	}
	return created
}

// statusSpecs are executions of several tenants in several statuses,
// created in an order unrelated to their ids and tenants.
func statusSpecs() []statusSpec {
	return []statusSpec{
		{"t2", "e-5", "pending"},
		{"t1", "e-3", "running"},
		{"t1", "e-9", "pending"},
		{"t3", "e-1", "pending"},
		{"t1", "e-2", "succeeded"},
		{"t1", "e-1", "pending"},
		{"t2", "e-3", "running"},
	}
}

func testPendingExecutions(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	ex := createStatuses(t, r, statusSpecs())
	pick := func(keys ...string) []*storage.Execution {
		out := make([]*storage.Execution, len(keys))
		for i, k := range keys {
			out[i] = ex[k]
		}
		return out
	}
	check := func(label string, limit int, want []*storage.Execution) {
		t.Helper()
		got, err := r.PendingExecutions(ctx, limit)
		wantErr(t, label, err, nil)
		checkExecutions(t, label, got, want)
	}
	all := pick("t2/e-5", "t1/e-9", "t3/e-1", "t1/e-1")
	for _, limit := range []int{0, -1, 4, 100} {
		check(fmt.Sprintf("PendingExecutions(%d)", limit), limit, all)
	}
	check("PendingExecutions(2)", 2, all[:2])
	check("PendingExecutions(1)", 1, all[:1])

	// Leaving pending removes an execution; coming back puts it where its
	// age says, not at the end.
	start := storage.JournalEntry{Type: "execution.running", At: at(time.Second)}
	if ok, err := r.Transition(ctx, "t2", "e-5", "pending", "running", start, nil); err != nil || !ok {
		t.Fatalf("Transition(t2/e-5, pending, running) = %v, %v; want true", ok, err)
	}
	back := storage.JournalEntry{Type: "execution.pending", At: at(time.Second)}
	if ok, err := r.Transition(ctx, "t1", "e-3", "running", "pending", back, nil); err != nil || !ok {
		t.Fatalf("Transition(t1/e-3, running, pending) = %v, %v; want true", ok, err)
	}
	got, err := r.PendingExecutions(ctx, 0)
	wantErr(t, "PendingExecutions after transitions", err, nil)
	wantIDs(t, "PendingExecutions after transitions", ids(got, executionKey), []string{"t1/e-3", "t1/e-9", "t3/e-1", "t1/e-1"})
}

func testCountExecutions(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	count := func(label string, want map[string]int) {
		t.Helper()
		for status, n := range want {
			got, err := r.CountExecutions(ctx, status)
			wantErr(t, fmt.Sprintf("%s: CountExecutions(%q)", label, status), err, nil)
			if got != n {
				t.Errorf("%s: CountExecutions(%q) = %d, want %d", label, status, got, n)
			}
		}
	}
	count("empty store", map[string]int{"pending": 0, "running": 0})
	createStatuses(t, r, statusSpecs())
	count("created", map[string]int{"pending": 4, "running": 2, "succeeded": 1, "failed": 0, "": 0, "Pending": 0})

	done := storage.JournalEntry{Type: "execution.succeeded", At: at(time.Second)}
	if ok, err := r.Transition(ctx, "t2", "e-3", "running", "succeeded", done, nil); err != nil || !ok {
		t.Fatalf("Transition(t2/e-3, running, succeeded) = %v, %v; want true", ok, err)
	}
	count("after a transition", map[string]int{"pending": 4, "running": 1, "succeeded": 2})
}

// endEntry is the journal entry of a transition to status.
func endEntry(status string, d time.Duration, data string) storage.JournalEntry {
	return storage.JournalEntry{Type: "execution." + status, At: at(d), Data: json.RawMessage(data)}
}

func testTransitionWrongFrom(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	upd := &storage.ExecutionUpdate{Output: json.RawMessage(`{"x": 1}`), Error: "no", FinishedAt: at(time.Hour)}
	ok, err := r.Transition(ctx, "t1", "e1", "pending", "succeeded", endEntry("succeeded", time.Second, `{}`), upd)
	wantErr(t, "Transition(wrong from)", err, nil)
	if ok {
		t.Fatalf("Transition(wrong from) = true, want false")
	}
	checkExecution(t, "GetExecution after lost CAS", getExecution(t, r, "t1", "e1"), e, true)
	if n := len(journal(t, r, "t1", "e1")); n != 1 {
		t.Errorf("journal after lost CAS has %d entries, want 1", n)
	}
}

func testTransitionRightFrom(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	cases := []struct {
		name   string
		update *storage.ExecutionUpdate
	}{
		{"without update", nil},
		{"with update", &storage.ExecutionUpdate{
			Output:     json.RawMessage(`{"result": [1, "two", null]}`),
			Error:      "partial failure",
			FinishedAt: at(5*time.Second + 7),
		}},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("e%d", i)
		e := createExecution(t, r, newExecution("t1", id, "wf", i))
		entry := endEntry("succeeded", 5*time.Second, fmt.Sprintf(`{"case": %q}`, tc.name))
		ok, err := r.Transition(ctx, "t1", id, "running", "succeeded", entry, tc.update)
		wantErr(t, "Transition "+tc.name, err, nil)
		if !ok {
			t.Fatalf("Transition %s = false, want true", tc.name)
		}

		// Without an update only the status changes.
		want := *e
		want.Status = "succeeded"
		if tc.update != nil {
			want.Output, want.Error, want.FinishedAt = tc.update.Output, tc.update.Error, tc.update.FinishedAt
		}
		got := getExecution(t, r, "t1", id)
		// UpdatedAt is the driver's to maintain.
		want.UpdatedAt = got.UpdatedAt
		checkExecution(t, "GetExecution after Transition "+tc.name, got, &want, true)

		entries := journal(t, r, "t1", id)
		if len(entries) != 2 {
			t.Fatalf("journal after Transition %s has %d entries, want 2", tc.name, len(entries))
		}
		entry.Seq = 2
		checkEntry(t, "journal entry of Transition "+tc.name, entries[1], entry)

		// The CAS now fails from the old status.
		ok, err = r.Transition(ctx, "t1", id, "running", "failed", endEntry("failed", 6*time.Second, `{}`), nil)
		wantErr(t, "second Transition "+tc.name, err, nil)
		if ok {
			t.Errorf("second Transition %s from running = true, want false", tc.name)
		}
	}
}

func testTransitionMissing(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	_, err := r.Transition(ctx, "t1", "nope", "running", "succeeded", endEntry("succeeded", time.Second, `{}`), nil)
	wantErr(t, "Transition(missing)", err, storage.ErrNotFound)
	_, err = r.Transition(ctx, "t2", "e1", "running", "succeeded", endEntry("succeeded", time.Second, `{}`), nil)
	wantErr(t, "Transition(other tenant)", err, storage.ErrNotFound)
	if got := getExecution(t, r, "t1", "e1"); got.Status != "running" {
		t.Errorf("status after other tenant's Transition = %q, want running", got.Status)
	}
}

func testTransitionRace(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createExecution(t, r, newExecution("t1", "e1", "wf", 1))

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		won   [concurrency]bool
		errs  [concurrency]error
	)
	for i := range concurrency {
		wg.Go(func() {
			<-start
			entry := endEntry("succeeded", time.Second, fmt.Sprintf(`{"racer": %d}`, i))
			won[i], errs[i] = r.Transition(ctx, "t1", "e1", "running", "succeeded", entry, nil)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i := range concurrency {
		if errs[i] != nil {
			t.Errorf("racer %d: %v", i, errs[i])
		}
		if won[i] {
			if winner >= 0 {
				t.Errorf("racers %d and %d both won the CAS", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won the CAS")
	}
	entries := journal(t, r, "t1", "e1")
	if len(entries) != 2 {
		t.Fatalf("journal has %d entries, want 2 (start and one transition)", len(entries))
	}
	want := endEntry("succeeded", time.Second, fmt.Sprintf(`{"racer": %d}`, winner))
	want.Seq = 2
	checkEntry(t, "the winner's journal entry", entries[1], want)
}

// stepEntry is the i-th entry appended after the start entry. Times step by
// odd nanosecond amounts and some are in another zone, to catch rounding.
func stepEntry(i int) storage.JournalEntry {
	t := at(time.Duration(i)*time.Second + time.Duration(i)*1001)
	if i%2 == 1 {
		t = t.In(time.FixedZone("UTC-07:00", -7*3600))
	}
	return storage.JournalEntry{
		Type:           "node.attempt.finished",
		At:             t,
		Node:           fmt.Sprintf("node-%d", i),
		Attempt:        i,
		IdempotencyKey: fmt.Sprintf("e1/node-%d/%d", i, i),
		Data:           json.RawMessage(fmt.Sprintf(`{"output": {"i": %d}}`, i)),
	}
}

func testJournalWindows(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	e := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	want := []storage.JournalEntry{startEntry(e)}
	want[0].Seq = 1
	for i := 1; i < 10; i++ {
		entry := stepEntry(i)
		seq, err := r.AppendJournal(ctx, "t1", "e1", entry)
		wantErr(t, fmt.Sprintf("AppendJournal #%d", i), err, nil)
		if seq != int64(i+1) {
			t.Errorf("AppendJournal #%d: seq = %d, want %d", i, seq, i+1)
		}
		entry.Seq = int64(i + 1)
		want = append(want, entry)
	}

	cases := []struct {
		after int64
		limit int
		first int64 // Seq of the first entry expected
		count int
	}{
		{0, 0, 1, 10},
		{0, -1, 1, 10},
		{0, 3, 1, 3},
		{3, 3, 4, 3},
		{8, 5, 9, 2},
		{4, 0, 5, 6},
		{10, 0, 0, 0},
		{42, 1, 0, 0},
	}
	for _, tc := range cases {
		label := fmt.Sprintf("Journal(after %d, limit %d)", tc.after, tc.limit)
		got, err := r.Journal(ctx, "t1", "e1", tc.after, tc.limit)
		wantErr(t, label, err, nil)
		if len(got) != tc.count {
			t.Errorf("%s: %d entries, want %d", label, len(got), tc.count)
			continue
		}
		for i, g := range got {
			checkEntry(t, fmt.Sprintf("%s[%d]", label, i), g, want[tc.first-1+int64(i)])
		}
	}
}

func testJournalPerExecution(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	createExecution(t, r, newExecution("t1", "e2", "wf", 2))
	// Same id in another tenant: its journal is separate too.
	createExecution(t, r, newExecution("t2", "e1", "wf", 3))

	type execKey struct{ tenant, id string }
	appends := []execKey{
		{"t1", "e1"}, {"t1", "e2"}, {"t1", "e2"}, {"t2", "e1"}, {"t1", "e1"}, {"t1", "e2"},
	}
	owner := func(k execKey) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"owner": %q}`, k.tenant+"/"+k.id))
	}
	next := map[execKey]int64{}
	for i, k := range appends {
		entry := storage.JournalEntry{Type: "tag", At: at(time.Duration(i)), Data: owner(k)}
		seq, err := r.AppendJournal(ctx, k.tenant, k.id, entry)
		wantErr(t, fmt.Sprintf("AppendJournal #%d", i), err, nil)
		if next[k] == 0 {
			next[k] = 2 // after the start entry
		}
		if seq != next[k] {
			t.Errorf("AppendJournal #%d to %s/%s: seq = %d, want %d", i, k.tenant, k.id, seq, next[k])
		}
		next[k]++
	}
	for k, n := range next {
		entries := journal(t, r, k.tenant, k.id)
		if int64(len(entries)) != n-1 {
			t.Errorf("journal of %s/%s has %d entries, want %d", k.tenant, k.id, len(entries), n-1)
		}
		for i, e := range entries {
			if e.Seq != int64(i+1) {
				t.Errorf("journal of %s/%s [%d]: seq = %d, want %d", k.tenant, k.id, i, e.Seq, i+1)
			}
			if i > 0 && !jsonEqual(e.Data, owner(k)) {
				t.Errorf("journal of %s/%s [%d] holds %s: an entry of another execution", k.tenant, k.id, i, e.Data)
			}
		}
	}
}

func testJournalRoundTrip(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	cases := []storage.JournalEntry{
		{Type: "node.attempt.started", At: at(1), Node: "fetch", Attempt: 3, IdempotencyKey: "e1/fetch/3",
			Data: json.RawMessage(`{"inputs": {"url": "https://example.com/?q=a&b=c"}, "headers": {"X-Ünïcode": "☃ \"quoted\" \\ \u0000"}}`)},
		{Type: "node.attempt.finished", At: at(time.Hour + 999), Node: "fetch", Attempt: 3, IdempotencyKey: "e1/fetch/3",
			Data: json.RawMessage(`{"output": [1, 2.5, -3e-7, true, false, null, "", {}, []]}`)},
		{Type: "execution.note", At: time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("UTC+14", 14*3600)),
			Data: json.RawMessage(`{"big": 1234567890123, "deep": {"a": {"b": {"c": [{"d": 1}]}}}}`)},
		{Type: "execution.marker", At: at(2)},
	}
	for i, e := range cases {
		seq, err := r.AppendJournal(ctx, "t1", "e1", e)
		wantErr(t, fmt.Sprintf("AppendJournal #%d", i), err, nil)
		cases[i].Seq = seq
	}
	got := journal(t, r, "t1", "e1")
	if len(got) != len(cases)+1 {
		t.Fatalf("journal has %d entries, want %d", len(got), len(cases)+1)
	}
	for i, want := range cases {
		checkEntry(t, fmt.Sprintf("entry %d", want.Seq), got[i+1], want)
	}
}

func testJournalMissing(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	entry := endEntry("succeeded", time.Second, `{}`)
	_, err := r.AppendJournal(ctx, "t1", "nope", entry)
	wantErr(t, "AppendJournal(missing execution)", err, storage.ErrNotFound)
	_, err = r.AppendJournal(ctx, "t2", "e1", entry)
	wantErr(t, "AppendJournal(other tenant)", err, storage.ErrNotFound)
	// Another tenant's journal is never readable; a driver may say so with
	// ErrNotFound or with an empty journal.
	entries, err := r.Journal(ctx, "t2", "e1", 0, 0)
	if err != nil {
		wantErr(t, "Journal(other tenant)", err, storage.ErrNotFound)
	}
	if len(entries) != 0 {
		t.Errorf("Journal(other tenant) returned %d entries, want none", len(entries))
	}
}

// testQuotaCounts checks the counts tenant quotas are enforced with.
func testQuotaCounts(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createStatuses(t, r, statusSpecs())
	for _, tt := range []struct {
		tenant      string
		limit, want int
	}{
		{"t1", 10, 3}, {"t1", 2, 2}, {"t2", 10, 2}, {"t3", 10, 1}, {"t4", 10, 0},
	} {
		got, err := r.CountActiveExecutions(ctx, tt.tenant, tt.limit)
		wantErr(t, "CountActiveExecutions", err, nil)
		if got != tt.want {
			t.Errorf("CountActiveExecutions(%s, %d) = %d, want %d", tt.tenant, tt.limit, got, tt.want)
		}
	}

	// Executions of t9 created at 1ms, 2ms, ... 5ms, in that order.
	for i := 1; i <= 5; i++ {
		createExecution(t, r, newExecution("t9", fmt.Sprintf("r-%d", i), "wf", i))
	}
	for _, tt := range []struct {
		n    int
		want time.Time
		ok   bool
	}{
		{1, at(5 * time.Millisecond), true},
		{2, at(4 * time.Millisecond), true},
		{5, at(time.Millisecond), true},
		{6, time.Time{}, false},
	} {
		got, ok, err := r.NthRecentExecution(ctx, "t9", tt.n)
		wantErr(t, "NthRecentExecution", err, nil)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("NthRecentExecution(t9, %d) = %v, %v; want %v, %v", tt.n, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok, err := r.NthRecentExecution(ctx, "t8", 1); err != nil || ok {
		t.Errorf("NthRecentExecution of a tenant without executions = %v, %v", ok, err)
	}

	// Stored bytes: inline outputs by length, blob markers by their size.
	for i, out := range []string{`"abc"`, `{"$nebula_blob":"sha256:00","size":1000}`, ``} {
		n := storage.NodeState{ID: fmt.Sprintf("n%d", i), Status: "succeeded", Attempts: 1, Output: json.RawMessage(out)}
		wantErr(t, "PutNode", r.PutNode(ctx, "t9", "r-1", &n), nil)
	}
	stored, err := r.StoredBytes(ctx, "t9")
	if err != nil || stored != 5+1000 {
		t.Errorf("StoredBytes(t9) = %d, %v; want 1005", stored, err)
	}
	if other, err := r.StoredBytes(ctx, "t8"); err != nil || other != 0 {
		t.Errorf("StoredBytes(t8) = %d, %v; want 0", other, err)
	}

	keyed := newExecution("t9", "k-1", "wf", 9)
	keyed.IdempotencyKey = "order-7"
	createExecution(t, r, keyed)
	got, err := r.ExecutionByKey(ctx, "t9", "wf", "order-7")
	if err != nil || got.ID != "k-1" {
		t.Errorf("ExecutionByKey = %v, %v; want k-1", got, err)
	}
	for _, miss := range [][3]string{{"t9", "wf", "order-8"}, {"t9", "other", "order-7"}, {"t8", "wf", "order-7"}, {"t9", "wf", ""}} {
		_, err := r.ExecutionByKey(ctx, miss[0], miss[1], miss[2])
		wantErr(t, fmt.Sprintf("ExecutionByKey%v", miss), err, storage.ErrNotFound)
	}
}
