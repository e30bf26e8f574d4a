package storagetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func taskTests() []test {
	return []test{
		{"CreateGet", testCreateTask},
		{"ReadyTasks", testReadyTasks},
		{"AcquireLease", testAcquireLease},
		{"AcquireLeaseRace", testAcquireLeaseRace},
		{"RenewLease", testRenewLease},
		{"FindStaleLeases", testFindStaleLeases},
		{"LeasedTasks", testLeasedTasks},
		{"DeleteTask", testDeleteTask},
		{"DeleteExecutionTasks", testDeleteExecutionTasks},
	}
}

// newTask returns the first attempt of node n of e, created n seconds after
// the epoch. Its timeout has nanoseconds so that a driver that rounds it
// fails, and is 0 (the worker's default) for node 0.
func newTask(e *storage.Execution, n int) *storage.Task {
	node := fmt.Sprintf("node-%d", n)
	return &storage.Task{
		TenantID:    e.TenantID,
		ID:          fmt.Sprintf("%s/%s/1", e.ID, node),
		ExecutionID: e.ID,
		Node:        node,
		Attempt:     1,
		Action:      "http.request",
		Params:      json.RawMessage(fmt.Sprintf(`{"url": "https://example.com/%d", "method": "GET"}`, n)),
		Timeout:     time.Duration(n)*time.Minute + time.Duration(n),
		CreatedAt:   at(time.Duration(n) * time.Second),
	}
}

// createTasks creates an execution of tenant t1 and count tasks of it, in
// order.
func createTasks(t *testing.T, r storage.Repos, count int) []*storage.Task {
	t.Helper()
	e := createExecution(t, r, newExecution("t1", "e1", "wf", 1))
	tasks := make([]*storage.Task, count)
	for i := range tasks {
		tasks[i] = newTask(e, i)
		if err := r.CreateTask(t.Context(), tasks[i]); err != nil {
			t.Fatalf("CreateTask(%s): %v", tasks[i].ID, err)
		}
	}
	return tasks
}

// lease grants l on task (at the epoch) and records it in task, failing t
// if it is not granted.
func lease(t *testing.T, r storage.Repos, task *storage.Task, l storage.Lease) {
	t.Helper()
	ok, err := r.AcquireLease(t.Context(), task.ID, l, at(0))
	if err != nil || !ok {
		t.Fatalf("AcquireLease(%s, %+v) = %v, %v; want true", task.ID, l, ok, err)
	}
	task.LeaseHolder, task.LeaseToken, task.LeaseExpires = l.Holder, l.Token, l.Expires
}

func getTask(t *testing.T, r storage.Repos, id string) *storage.Task {
	t.Helper()
	task, err := r.GetTask(t.Context(), id)
	if err != nil {
		t.Fatalf("GetTask(%s): %v", id, err)
	}
	return task
}

func testCreateTask(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tasks := createTasks(t, r, 2)
	for _, task := range tasks {
		checkTask(t, "GetTask("+task.ID+")", getTask(t, r, task.ID), task)
	}

	dup := *tasks[0]
	dup.Action = "other"
	wantErr(t, "CreateTask(duplicate)", r.CreateTask(ctx, &dup), storage.ErrConflict)
	checkTask(t, "GetTask after duplicate", getTask(t, r, tasks[0].ID), tasks[0])

	_, err := r.GetTask(ctx, "nope")
	wantErr(t, "GetTask(missing)", err, storage.ErrNotFound)
}

func testReadyTasks(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tasks := createTasks(t, r, 5)
	lease(t, r, tasks[1], storage.Lease{Holder: "w1", Token: 7, Expires: at(time.Hour)})

	cases := []struct {
		limit int
		want  []string
	}{
		{10, []string{tasks[0].ID, tasks[2].ID, tasks[3].ID, tasks[4].ID}},
		{2, []string{tasks[0].ID, tasks[2].ID}},
		{1, []string{tasks[0].ID}},
	}
	for _, tc := range cases {
		got, err := r.ReadyTasks(ctx, tc.limit)
		wantErr(t, fmt.Sprintf("ReadyTasks(%d)", tc.limit), err, nil)
		wantIDs(t, fmt.Sprintf("ReadyTasks(%d)", tc.limit), ids(got, taskID), tc.want)
		if len(got) > 0 {
			checkTask(t, "ReadyTasks first", got[0], tasks[0])
		}
	}
}

func testAcquireLease(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	task := createTasks(t, r, 1)[0]
	expires := at(30 * time.Second)

	steps := []struct {
		name  string
		lease storage.Lease
		now   time.Time
		want  bool
		held  storage.Lease // the lease the task holds afterwards
	}{
		{"free task", storage.Lease{Holder: "w1", Token: 10, Expires: expires}, at(0), true,
			storage.Lease{Holder: "w1", Token: 10, Expires: expires}},
		{"held, before expiry", storage.Lease{Holder: "w2", Token: 11, Expires: at(time.Minute)}, expires.Add(-1), false,
			storage.Lease{Holder: "w1", Token: 10, Expires: expires}},
		{"held, at expiry", storage.Lease{Holder: "w2", Token: 12, Expires: at(90 * time.Second)}, expires, true,
			storage.Lease{Holder: "w2", Token: 12, Expires: at(90 * time.Second)}},
		{"held, after expiry", storage.Lease{Holder: "w3", Token: 13, Expires: at(time.Hour)}, at(91 * time.Second), true,
			storage.Lease{Holder: "w3", Token: 13, Expires: at(time.Hour)}},
		{"same holder, before expiry", storage.Lease{Holder: "w3", Token: 14, Expires: at(2 * time.Hour)}, at(time.Minute), false,
			storage.Lease{Holder: "w3", Token: 13, Expires: at(time.Hour)}},
	}
	for _, s := range steps {
		ok, err := r.AcquireLease(ctx, task.ID, s.lease, s.now)
		wantErr(t, "AcquireLease "+s.name, err, nil)
		if ok != s.want {
			t.Errorf("AcquireLease %s = %v, want %v", s.name, ok, s.want)
		}
		want := *task
		want.LeaseHolder, want.LeaseToken, want.LeaseExpires = s.held.Holder, s.held.Token, s.held.Expires
		checkTask(t, "GetTask after "+s.name, getTask(t, r, task.ID), &want)
	}

	// The task may have completed since the caller saw it: not an error.
	ok, err := r.AcquireLease(ctx, "nope", storage.Lease{Holder: "w1", Token: 20, Expires: expires}, at(0))
	wantErr(t, "AcquireLease(missing task)", err, nil)
	if ok {
		t.Errorf("AcquireLease(missing task) = true, want false")
	}
}

func testAcquireLeaseRace(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	task := createTasks(t, r, 1)[0]

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		won   [concurrency]bool
		errs  [concurrency]error
	)
	leaseOf := func(i int) storage.Lease {
		return storage.Lease{Holder: fmt.Sprintf("worker-%d", i), Token: uint64(100 + i), Expires: at(time.Minute)}
	}
	for i := range concurrency {
		wg.Go(func() {
			<-start
			won[i], errs[i] = r.AcquireLease(ctx, task.ID, leaseOf(i), at(0))
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
				t.Errorf("racers %d and %d were both granted the lease", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no racer was granted the lease")
	}
	l := leaseOf(winner)
	want := *task
	want.LeaseHolder, want.LeaseToken, want.LeaseExpires = l.Holder, l.Token, l.Expires
	checkTask(t, "GetTask after the race", getTask(t, r, task.ID), &want)
}

func testRenewLease(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	task := createTasks(t, r, 1)[0]
	lease(t, r, task, storage.Lease{Holder: "w1", Token: 10, Expires: at(30 * time.Second)})

	steps := []struct {
		name        string
		token       uint64
		expires     time.Time
		want        bool
		wantExpires time.Time
	}{
		{"stale token", 9, at(time.Minute), false, at(30 * time.Second)},
		{"token 0", 0, at(time.Minute), false, at(30 * time.Second)},
		{"current token", 10, at(time.Minute), true, at(time.Minute)},
		{"current token again", 10, at(2 * time.Minute), true, at(2 * time.Minute)},
	}
	for _, s := range steps {
		ok, err := r.RenewLease(ctx, task.ID, s.token, s.expires)
		wantErr(t, "RenewLease "+s.name, err, nil)
		if ok != s.want {
			t.Errorf("RenewLease %s = %v, want %v", s.name, ok, s.want)
		}
		want := *task
		want.LeaseExpires = s.wantExpires
		checkTask(t, "GetTask after RenewLease "+s.name, getTask(t, r, task.ID), &want)
	}

	// Once another holder took the expired lease, the old token is stale.
	ok, err := r.AcquireLease(ctx, task.ID, storage.Lease{Holder: "w2", Token: 11, Expires: at(time.Hour)}, at(2*time.Minute))
	if err != nil || !ok {
		t.Fatalf("AcquireLease after expiry = %v, %v; want true", ok, err)
	}
	ok, err = r.RenewLease(ctx, task.ID, 10, at(3*time.Hour))
	wantErr(t, "RenewLease(superseded token)", err, nil)
	if ok {
		t.Errorf("RenewLease(superseded token) = true, want false")
	}

	// A heartbeat for a task that completed meanwhile is a refusal, not an
	// error.
	ok, err = r.RenewLease(ctx, "nope", 10, at(time.Hour))
	wantErr(t, "RenewLease(missing task)", err, nil)
	if ok {
		t.Errorf("RenewLease(missing task) = true, want false")
	}
}

func testFindStaleLeases(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tasks := createTasks(t, r, 5)
	expiries := []time.Duration{30 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i, d := range expiries {
		lease(t, r, tasks[i], storage.Lease{Holder: "w", Token: uint64(i + 1), Expires: at(d)})
	}
	// tasks[4] stays unleased: it is ready, not stale.

	cases := []struct {
		name  string
		now   time.Time
		limit int
		want  []*storage.Task
	}{
		{"before any expiry", at(5 * time.Second), 10, nil},
		{"at an expiry", at(30 * time.Second), 10, []*storage.Task{tasks[1], tasks[2], tasks[0]}},
		{"just before an expiry", at(30*time.Second - 1), 10, []*storage.Task{tasks[1], tasks[2]}},
		{"limit", at(30 * time.Second), 2, []*storage.Task{tasks[1], tasks[2]}},
		{"after all", at(time.Hour), 10, []*storage.Task{tasks[1], tasks[2], tasks[0], tasks[3]}},
	}
	for _, tc := range cases {
		got, err := r.FindStaleLeases(ctx, tc.now, tc.limit)
		wantErr(t, "FindStaleLeases "+tc.name, err, nil)
		wantIDs(t, "FindStaleLeases "+tc.name, ids(got, taskID), ids(tc.want, taskID))
		for i := range min(len(got), len(tc.want)) {
			checkTask(t, fmt.Sprintf("FindStaleLeases %s [%d]", tc.name, i), got[i], tc.want[i])
		}
	}
}

func testLeasedTasks(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tasks := createTasks(t, r, 5)
	lease(t, r, tasks[2], storage.Lease{Holder: "node-a/w1", Token: 1, Expires: at(time.Minute)})
	lease(t, r, tasks[0], storage.Lease{Holder: "node-a/w2", Token: 2, Expires: at(time.Minute)})
	lease(t, r, tasks[1], storage.Lease{Holder: "node-b/w1", Token: 3, Expires: at(time.Minute)})
	lease(t, r, tasks[3], storage.Lease{Holder: "NODE-A/w3", Token: 4, Expires: at(time.Minute)})
	// tasks[4] stays unleased.

	cases := []struct {
		prefix string
		limit  int
		want   []*storage.Task
	}{
		{"node-a/", 10, []*storage.Task{tasks[0], tasks[2]}},
		{"node-a/", 1, []*storage.Task{tasks[0]}},
		{"node-b/", 10, []*storage.Task{tasks[1]}},
		{"node-a/w1", 10, []*storage.Task{tasks[2]}},
		{"node-", 10, []*storage.Task{tasks[0], tasks[1], tasks[2]}},
		{"", 10, []*storage.Task{tasks[0], tasks[1], tasks[2], tasks[3]}},
		{"node-c/", 10, nil},
		{"node_a/", 10, nil},
		{"node%", 10, nil},
	}
	for _, tc := range cases {
		label := fmt.Sprintf("LeasedTasks(%q, %d)", tc.prefix, tc.limit)
		got, err := r.LeasedTasks(ctx, tc.prefix, tc.limit)
		wantErr(t, label, err, nil)
		wantIDs(t, label, ids(got, taskID), ids(tc.want, taskID))
		for i := range min(len(got), len(tc.want)) {
			checkTask(t, fmt.Sprintf("%s[%d]", label, i), got[i], tc.want[i])
		}
	}
}

func testDeleteTask(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tasks := createTasks(t, r, 4)
	lease(t, r, tasks[0], storage.Lease{Holder: "w1", Token: 10, Expires: at(time.Minute)})
	lease(t, r, tasks[1], storage.Lease{Holder: "w1", Token: 11, Expires: at(time.Minute)})

	steps := []struct {
		name   string
		id     string
		token  uint64
		want   bool
		exists bool // whether the task exists afterwards
	}{
		{"wrong token", tasks[0].ID, 9, false, true},
		{"right token", tasks[0].ID, 10, true, false},
		{"right token again", tasks[0].ID, 10, false, false},
		{"token 0 on a leased task", tasks[1].ID, 0, true, false},
		{"token on an unleased task", tasks[2].ID, 10, false, true},
		{"token 0 on an unleased task", tasks[2].ID, 0, true, false},
		{"missing task", "nope", 0, false, false},
	}
	for _, s := range steps {
		ok, err := r.DeleteTask(ctx, s.id, s.token)
		wantErr(t, "DeleteTask "+s.name, err, nil)
		if ok != s.want {
			t.Errorf("DeleteTask %s = %v, want %v", s.name, ok, s.want)
		}
		_, err = r.GetTask(ctx, s.id)
		if s.exists {
			wantErr(t, "GetTask after DeleteTask "+s.name, err, nil)
		} else {
			wantErr(t, "GetTask after DeleteTask "+s.name, err, storage.ErrNotFound)
		}
	}
	checkTask(t, "untouched task", getTask(t, r, tasks[3].ID), tasks[3])
}

func testDeleteExecutionTasks(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tasks := createTasks(t, r, 3) // of t1/e1
	lease(t, r, tasks[1], storage.Lease{Holder: "w1", Token: 10, Expires: at(time.Minute)})
	other := newTask(createExecution(t, r, newExecution("t1", "e2", "wf", 2)), 0)
	wantErr(t, "CreateTask(e2)", r.CreateTask(ctx, other), nil)
	foreign := newTask(createExecution(t, r, newExecution("t2", "e1", "wf", 3)), 9)
	foreign.ID = "t2-task"
	wantErr(t, "CreateTask(t2/e1)", r.CreateTask(ctx, foreign), nil)

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
		n, err := r.DeleteExecutionTasks(ctx, s.tenant, s.exec)
		wantErr(t, "DeleteExecutionTasks "+s.name, err, nil)
		if n != s.want {
			t.Errorf("DeleteExecutionTasks %s = %d, want %d", s.name, n, s.want)
		}
	}
	for _, task := range tasks {
		_, err := r.GetTask(ctx, task.ID)
		wantErr(t, "GetTask(deleted "+task.ID+")", err, storage.ErrNotFound)
	}
	checkTask(t, "task of e2", getTask(t, r, other.ID), other)
	checkTask(t, "task of t2/e1", getTask(t, r, foreign.ID), foreign)
}
