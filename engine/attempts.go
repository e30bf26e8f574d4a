package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// Retry defaults for a node that has a retry block without every field.
const (
	DefaultMaxAttempts = 3
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	// maxReclaims bounds how often one node's attempts may be lost with
	// their worker before the node fails: a task that kills every worker
	// that runs it must not go round forever.
	maxReclaims = 10
)

// Timer kinds.
const (
	timerRetry    = "retry"    // the backoff before a node's next attempt
	timerDelay    = "delay"    // a builtin.delay node
	timerTimeout  = "timeout"  // a claimed attempt's time limit
	timerDeadline = "deadline" // the execution's time limit
)

// Actions the state machine runs itself, without a task: a delay is a
// durable timer, a sub-workflow is a child execution.
const (
	actionDelay       = "builtin.delay"
	actionSubworkflow = "builtin.subworkflow"
	// maxDepth bounds nested sub-workflows, so a workflow that starts
	// itself ends with an error instead of forever.
	maxDepth = 16
)

func timerID(kind, execID, node string, attempt int) string {
	if node == "" {
		return kind + ":" + execID
	}
	return kind + ":" + AttemptKey(execID, node, attempt)
}

func (a *applier) createTimer(exec *storage.Execution, kind, node string, attempt int, d time.Duration) error {
	t := &storage.Timer{
		TenantID:    exec.TenantID,
		ID:          timerID(kind, exec.ID, node, attempt),
		ExecutionID: exec.ID,
		Node:        node,
		Attempt:     attempt,
		Kind:        kind,
		DueAt:       a.st.Now.Add(d),
	}
	if err := a.tx.CreateTimer(a.ctx, t); err != nil {
		return err
	}
	a.emit(EventTimersChanged, exec.TenantID, exec.ID)
	return nil
}

func (a *applier) claimTasks(c *ClaimTasks) (Result, error) {
	ready, err := a.tx.ReadyTasks(a.ctx, c.Max)
	if err != nil {
		return Result{}, err
	}
	lease := storage.Lease{Holder: c.Holder, Token: a.st.token(), Expires: a.st.Now.Add(c.TTL)}
	claimed := make([]*storage.Task, 0, len(ready))
	for _, t := range ready {
		ok, err := a.tx.AcquireLease(a.ctx, t.ID, lease, a.st.Now)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			continue
		}
		t.LeaseHolder, t.LeaseToken, t.LeaseExpires = lease.Holder, lease.Token, lease.Expires
		claimed = append(claimed, t)
		// The attempt's time limit runs from its start, here; the worker
		// enforces it too, this timer is the word that counts.
		if t.Timeout > 0 {
			exec := &storage.Execution{TenantID: t.TenantID, ID: t.ExecutionID}
			if err := a.createTimer(exec, timerTimeout, t.Node, t.Attempt, t.Timeout); err != nil && !errors.Is(err, storage.ErrConflict) {
				return Result{}, err
			}
		}
	}
	return Result{Tasks: claimed}, nil
}

func (a *applier) renewLease(c *RenewLease) (Result, error) {
	ok, err := a.tx.RenewLease(a.ctx, c.TaskID, c.Token, a.st.Now.Add(c.TTL))
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{Err: ErrStaleLease}, nil
	}
	return Result{Accepted: true}, nil
}

func (a *applier) completeTask(c *CompleteTask) (Result, error) {
	t, err := a.tx.GetTask(a.ctx, c.TaskID)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: ErrStaleLease}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if c.Token == 0 || t.LeaseToken != c.Token {
		return Result{Err: ErrStaleLease}, nil
	}
	if err := a.dropTask(t); err != nil {
		return Result{}, err
	}
	exec, wf, err := a.load(t.TenantID, t.ExecutionID)
	if err != nil {
		return Result{}, err
	}
	n := exec.Nodes[t.Node]
	if ExecutionStatus(exec.Status).Terminal() || n == nil || n.Attempts != t.Attempt || NodeStatus(n.Status) != NodeRunning {
		return Result{Err: ErrStaleLease}, nil
	}
	plan, err := a.m.plan(wf)
	if err != nil {
		return Result{}, err
	}
	node, _ := plan.Node(t.Node)
	if c.Error == "" {
		err = a.succeedAttempt(exec, n, t.ID, c.Output)
	} else {
		err = a.failAttempt(exec, n, node, t.ID, c.Error, c.Retryable, c.Jitter)
	}
	if err != nil {
		return Result{}, err
	}
	if err := a.advance(exec, wf); err != nil {
		return Result{}, err
	}
	return Result{Accepted: true}, nil
}

// dropTask removes a task and its time limit.
func (a *applier) dropTask(t *storage.Task) error {
	if _, err := a.tx.DeleteTask(a.ctx, t.ID, 0); err != nil {
		return err
	}
	_, err := a.tx.DeleteTimer(a.ctx, timerID(timerTimeout, t.ExecutionID, t.Node, t.Attempt))
	return err
}

// succeedAttempt journals a successful attempt and records the node's
// output.
func (a *applier) succeedAttempt(exec *storage.Execution, n *storage.NodeState, key string, output json.RawMessage) error {
	if len(output) == 0 {
		output = json.RawMessage("null")
	}
	if err := a.appendJournal(exec, a.entry(EntryNodeAttemptFinished, n.ID, n.Attempts, key, map[string]any{"output": output})); err != nil {
		return err
	}
	n.Status, n.Output, n.Error, n.FinishedAt = string(NodeSucceeded), output, "", a.st.Now
	if err := a.addUsage(exec.TenantID, storedSize(output)); err != nil {
		return err
	}
	return a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n)
}

// failAttempt journals a failed attempt; then the node waits for its next
// attempt (when the error is retryable and the policy allows one), or
// counts as succeeded with the error as output (on_error: continue), or
// fails.
func (a *applier) failAttempt(exec *storage.Execution, n *storage.NodeState, node *Node, key, msg string, retryable bool, jitter uint32) error {
	data := map[string]any{"error": msg}
	var delay time.Duration
	retry := retryable && node != nil && n.Attempts < maxAttempts(node)
	if retry {
		delay = backoff(node.Retry, n.Attempts, jitter)
		data["retry_at"] = a.st.Now.Add(delay).UTC().Format(time.RFC3339Nano)
	}
	if err := a.appendJournal(exec, a.entry(EntryNodeAttemptFinished, n.ID, n.Attempts, key, data)); err != nil {
		return err
	}
	if retry {
		// The node stays running through the backoff; a durable timer
		// schedules the next attempt.
		n.Error = msg
		if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
			return err
		}
		return a.createTimer(exec, timerRetry, n.ID, n.Attempts, delay)
	}
	n.FinishedAt = a.st.Now
	if node != nil && node.OnError == "continue" {
		out, _ := json.Marshal(map[string]string{"error": msg})
		n.Status, n.Output, n.Error = string(NodeSucceeded), out, ""
	} else {
		n.Status, n.Output, n.Error = string(NodeFailed), nil, msg
	}
	return a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n)
}

// maxAttempts is how many attempts a node may make.
func maxAttempts(node *Node) int {
	if node.Retry == nil {
		return 1
	}
	if node.Retry.MaxAttempts == 0 {
		return DefaultMaxAttempts
	}
	return node.Retry.MaxAttempts
}

// backoff is the wait after failed attempt number attempt: the policy's
// backoff doubled per attempt, capped, plus up to 20% jitter (never past
// the cap) so that many nodes failing together do not retry in lockstep.
func backoff(p *RetryPolicy, attempt int, jitter uint32) time.Duration {
	base, limit := DefaultBackoff, DefaultMaxBackoff
	if p != nil && p.Backoff > 0 {
		base = time.Duration(p.Backoff)
	}
	if p != nil && p.MaxBackoff > 0 {
		limit = time.Duration(p.MaxBackoff)
	}
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	d += time.Duration(float64(d) * 0.2 * float64(jitter) / (1 << 32))
	return min(d, max(limit, base))
}

func (a *applier) reclaimTasks(c *ReclaimTasks) (Result, error) {
	stale, err := a.tx.FindStaleLeases(a.ctx, a.st.Now, c.Max)
	if err != nil {
		return Result{}, err
	}
	if c.HolderPrefix != "" {
		held, err := a.tx.LeasedTasks(a.ctx, c.HolderPrefix, c.Max)
		if err != nil {
			return Result{}, err
		}
		for _, t := range held {
			if t.LeaseHolder != c.KeepHolder && t.LeaseExpires.After(a.st.Now) {
				stale = append(stale, t)
			}
		}
	}
	n := 0
	for _, t := range stale {
		ok, err := a.reclaim(t)
		if err != nil {
			return Result{}, err
		}
		if ok {
			n++
		}
	}
	return Result{Reclaimed: n}, nil
}

// reclaim ends an attempt whose worker is gone and schedules the next
// attempt of the same node with the same parameters. Losing a worker is
// not the action's failure, so it does not count against max_attempts,
// but it is bounded.
func (a *applier) reclaim(t *storage.Task) (bool, error) {
	ok, err := a.tx.DeleteTask(a.ctx, t.ID, t.LeaseToken)
	if err != nil || !ok {
		return false, err
	}
	if _, err := a.tx.DeleteTimer(a.ctx, timerID(timerTimeout, t.ExecutionID, t.Node, t.Attempt)); err != nil {
		return false, err
	}
	exec, wf, err := a.load(t.TenantID, t.ExecutionID)
	if err != nil {
		return false, err
	}
	n := exec.Nodes[t.Node]
	if ExecutionStatus(exec.Status).Terminal() || n == nil || n.Attempts != t.Attempt {
		return true, nil
	}
	a.m.logger.Info("reclaiming attempt", "execution", exec.ID, "node", t.Node, "attempt", t.Attempt, "holder", t.LeaseHolder)
	msg := fmt.Sprintf("lease of %s lost: attempt abandoned", t.LeaseHolder)
	if n.Attempts >= maxReclaims {
		if err := a.failAttempt(exec, n, nil, t.ID, msg+"; giving up after "+strconv.Itoa(n.Attempts)+" attempts", false, 0); err != nil {
			return false, err
		}
		return true, a.advance(exec, wf)
	}
	if err := a.appendJournal(exec, a.entry(EntryNodeAttemptFinished, t.Node, t.Attempt, t.ID, map[string]any{"error": msg})); err != nil {
		return false, err
	}
	return true, a.startAttempt(exec, n, t.Action, t.Params, t.Timeout)
}

// schedule starts the next attempt of a ready node with resolved params.
func (a *applier) schedule(exec *storage.Execution, n *storage.NodeState, node *Node, params json.RawMessage) error {
	return a.startAttempt(exec, n, node.Action, params, time.Duration(node.Timeout))
}

// startAttempt records the next attempt of node n and starts it: a task
// for a worker, or, for builtin.delay, a durable timer.
func (a *applier) startAttempt(exec *storage.Execution, n *storage.NodeState, action string, params json.RawMessage, timeout time.Duration) error {
	n.Attempts++
	n.Status, n.Error = string(NodeRunning), ""
	if n.StartedAt.IsZero() {
		n.StartedAt = a.st.Now
	}
	key := AttemptKey(exec.ID, n.ID, n.Attempts)
	if err := a.appendJournal(exec, a.entry(EntryNodeAttemptStarted, n.ID, n.Attempts, key, map[string]any{"inputs": params})); err != nil {
		return err
	}
	if out, ok := pureOutput(action, params); ok {
		// Pure builtins run here: the output is a function of the
		// params, the same on every replica, and the attempt is journaled
		// like any other, without a task, a claim and a report (three
		// log entries fewer per node).
		return a.succeedAttempt(exec, n, key, out)
	}
	if action == actionSubworkflow {
		if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
			return err
		}
		return a.startChild(exec, n, key, params)
	}
	if action == actionDelay {
		d, err := delayOf(params)
		if err != nil {
			return a.failAttempt(exec, n, nil, key, err.Error(), false, 0)
		}
		if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
			return err
		}
		return a.createTimer(exec, timerDelay, n.ID, n.Attempts, d)
	}
	t := &storage.Task{
		TenantID:    exec.TenantID,
		ID:          key,
		ExecutionID: exec.ID,
		Node:        n.ID,
		Attempt:     n.Attempts,
		Action:      action,
		Params:      params,
		Timeout:     timeout,
		CreatedAt:   a.st.Now,
	}
	if err := a.tx.CreateTask(a.ctx, t); err != nil {
		return err
	}
	a.emit(EventTasksReady, exec.TenantID, exec.ID)
	return a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n)
}

// pureOutput returns the output of a pure builtin (builtin.set,
// builtin.noop) run on params. ok is false for any other action, and for an
// output big enough to belong in the blob store or params the action
// would refuse: a worker runs those, as before.
func pureOutput(action string, params json.RawMessage) (json.RawMessage, bool) {
	switch action {
	case "builtin.noop":
		return json.RawMessage("{}"), true
	case "builtin.set":
		if len(params) > DefaultBlobThreshold {
			return nil, false
		}
		out, err := runSet(context.Background(), params)
		return out, err == nil
	}
	return nil, false
}

// delayOf reads builtin.delay's duration.
func delayOf(params json.RawMessage) (time.Duration, error) {
	var p struct {
		Duration any `json:"duration"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return 0, fmt.Errorf("builtin.delay: params: %v", err)
	}
	s, ok := p.Duration.(string)
	if !ok {
		return 0, fmt.Errorf("builtin.delay: duration must be a string such as \"30s\", got %v", p.Duration)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("builtin.delay: bad duration %q", s)
	}
	return d, nil
}

func (a *applier) fireTimers(c *FireTimers) (Result, error) {
	due, err := a.tx.DueTimers(a.ctx, a.st.Now, c.Max)
	if err != nil {
		return Result{}, err
	}
	fired := 0
	for _, t := range due {
		// Deleting first makes firing happen once, whatever follows.
		ok, err := a.tx.DeleteTimer(a.ctx, t.ID)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			continue
		}
		fired++
		if err := a.fire(t, c.Jitter); err != nil {
			return Result{}, err
		}
	}
	return Result{Fired: fired}, nil
}

// fire carries out what a due timer stands for, if it still applies.
func (a *applier) fire(t *storage.Timer, jitter uint32) error {
	exec, wf, err := a.load(t.TenantID, t.ExecutionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if ExecutionStatus(exec.Status).Terminal() {
		return nil
	}
	if t.Kind == timerDeadline {
		return a.end(exec, StatusTimedOut, nil, "execution timed out")
	}
	n := exec.Nodes[t.Node]
	if n == nil || n.Attempts != t.Attempt || NodeStatus(n.Status) != NodeRunning {
		return nil // the attempt this timer was for is over
	}
	plan, err := a.m.plan(wf)
	if err != nil {
		return err
	}
	node, _ := plan.Node(t.Node)
	key := AttemptKey(exec.ID, t.Node, t.Attempt)
	switch t.Kind {
	case timerRetry:
		scope, err := a.scope(exec)
		if err != nil {
			return err
		}
		params, rerr := plan.ResolveParams(t.Node, scope)
		if rerr != nil {
			n.Attempts++
			k := AttemptKey(exec.ID, n.ID, n.Attempts)
			if err := a.appendJournal(exec, a.entry(EntryNodeAttemptStarted, n.ID, n.Attempts, k, map[string]any{"inputs": nil})); err != nil {
				return err
			}
			err = a.failAttempt(exec, n, nil, k, rerr.Error(), false, 0)
		} else {
			err = a.schedule(exec, n, node, params)
		}
		if err != nil {
			return err
		}
	case timerDelay:
		if err := a.succeedAttempt(exec, n, key, json.RawMessage("{}")); err != nil {
			return err
		}
	case timerTimeout:
		task, err := a.tx.GetTask(a.ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := a.tx.DeleteTask(a.ctx, task.ID, 0); err != nil {
			return err
		}
		msg := fmt.Sprintf("attempt timed out after %s", task.Timeout)
		if err := a.failAttempt(exec, n, node, key, msg, true, jitter); err != nil {
			return err
		}
	default:
		return fmt.Errorf("engine: timer %s of unknown kind %q", t.ID, t.Kind)
	}
	return a.advance(exec, wf)
}

func (a *applier) cancelExecution(c *CancelExecution) (Result, error) {
	exec, _, err := a.load(c.Tenant, c.ExecutionID)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if ExecutionStatus(exec.Status).Terminal() {
		return Result{ExecutionID: exec.ID}, nil
	}
	reason := c.Reason
	if reason == "" {
		reason = "cancelled by request"
	}
	if err := a.appendJournal(exec, a.entry(EntryCancellationRequested, "", 0, "", map[string]any{"reason": reason})); err != nil {
		return Result{}, err
	}
	if err := a.end(exec, StatusCancelled, nil, reason); err != nil {
		return Result{}, err
	}
	return Result{ExecutionID: exec.ID}, nil
}

// advance runs the decider on exec and carries out its decision: skipped
// nodes are recorded, ready nodes scheduled, and a terminal execution
// closed. It loops because a node whose params cannot be resolved fails
// at once, which changes what the decider sees.
func (a *applier) advance(exec *storage.Execution, wf *storage.Workflow) error {
	plan, err := a.m.plan(wf)
	if err != nil {
		return a.end(exec, StatusFailed, nil, err.Error())
	}
	ref := execRef{exec.TenantID, exec.ID}
	meter := &Meter{}
	for {
		scope, err := a.scope(exec)
		if err != nil {
			return err
		}
		scope.Meter = meter
		meter.Cost = 0
		d := plan.Decide(scope)
		a.work.charge(ref, exec.WorkflowID, meter.Cost, 0)
		for _, id := range d.Skipped {
			n := nodeState(exec, id)
			n.Status, n.FinishedAt = string(NodeSkipped), a.st.Now
			if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
				return err
			}
		}
		if d.Terminal {
			return a.end(exec, d.Status, d.Output, d.Error)
		}
		again := false
		for _, id := range d.Ready {
			if a.work.over(ref) && (ref != a.progress || a.work.started(ref) > 0) {
				// The entry's budget, or this execution's share of it,
				// is spent: the nodes not started stay ready, and a
				// later entry goes on from here.
				a.emit(EventExecutionChanged, exec.TenantID, exec.ID)
				return a.deferExecution(exec)
			}
			node, _ := plan.Node(id)
			n := nodeState(exec, id)
			meter.Cost = 0
			params, rerr := plan.ResolveParams(id, scope)
			a.work.charge(ref, exec.WorkflowID, meter.Cost, 1)
			if rerr != nil {
				// The attempt is recorded, so the journal says why the
				// node failed.
				n.Attempts++
				n.StartedAt = a.st.Now
				key := AttemptKey(exec.ID, id, n.Attempts)
				if err := a.appendJournal(exec, a.entry(EntryNodeAttemptStarted, id, n.Attempts, key, map[string]any{"inputs": nil})); err != nil {
					return err
				}
				if err := a.failAttempt(exec, n, nil, key, rerr.Error(), false, 0); err != nil {
					return err
				}
				again = true
				continue
			}
			if err := a.schedule(exec, n, node, params); err != nil {
				return err
			}
			if NodeStatus(n.Status).Terminal() {
				again = true // builtin.delay with bad params failed at once
			}
		}
		a.emit(EventExecutionChanged, exec.TenantID, exec.ID)
		if !again {
			return nil
		}
	}
}

// deferExecution records that exec has work left for a Continue command.
func (a *applier) deferExecution(exec *storage.Execution) error {
	if err := a.tx.DeferExecution(a.ctx, exec.TenantID, exec.ID, a.st.token()); err != nil {
		return err
	}
	a.work.deferred++
	a.emit(EventDeferred, exec.TenantID, exec.ID)
	return nil
}

// continueExecutions advances deferred executions, tenants taking turns,
// until the entry's budget is spent. Each execution gets a share per turn
// (the budget's Exec bounds), and when every deferred execution had its
// turn and budget is left, they take another. The first always starts at
// least one node, so that every Continue makes progress whatever ran
// before it in the entry.
func (a *applier) continueExecutions(c *Continue) (Result, error) {
	res := Result{}
	first := true
	for round := 0; round < maxContinueRounds && !a.work.entryOver(); round++ {
		rows, err := a.tx.DeferredExecutions(a.ctx, max(c.Max, 1))
		if err != nil {
			return Result{}, err
		}
		advanced := 0
		for _, d := range rows {
			if !first && a.work.entryOver() {
				break
			}
			if _, err := a.tx.ResumeExecution(a.ctx, d.TenantID, d.ExecutionID); err != nil {
				return Result{}, err
			}
			exec, wf, err := a.load(d.TenantID, d.ExecutionID)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return Result{}, err
			}
			if ExecutionStatus(exec.Status) != StatusRunning {
				continue // ended (cancelled, timed out) since it was deferred
			}
			ref := execRef{d.TenantID, d.ExecutionID}
			a.work.turn(ref)
			if first {
				a.progress, first = ref, false
			}
			if err := a.advance(exec, wf); err != nil {
				return Result{}, err
			}
			advanced++
		}
		res.Continued += advanced
		if advanced == 0 {
			break
		}
	}
	var err error
	if res.Deferred, err = a.tx.CountDeferred(a.ctx); err != nil {
		return Result{}, err
	}
	return res, nil
}

// maxContinueRounds bounds the turns one Continue gives the deferred
// executions.
const maxContinueRounds = 16

// end moves an execution to a terminal status: nodes that never finished
// are cancelled, queued and running attempts and timers are dropped (late
// results are refused), and the journal says why.
func (a *applier) end(exec *storage.Execution, status ExecutionStatus, output json.RawMessage, errMsg string) error {
	upd := &storage.ExecutionUpdate{FinishedAt: a.st.Now}
	var entry storage.JournalEntry
	switch status {
	case StatusSucceeded:
		if len(output) == 0 {
			output = json.RawMessage("null")
		}
		if len(output) > DefaultBlobThreshold && a.m.blobs != nil {
			// Every node stores the same content under the same
			// reference: a deterministic, idempotent write.
			m, err := storeOutput(a.ctx, a.m.blobs, output)
			if err != nil {
				return err
			}
			output = m
		}
		upd.Output = output
		entry = a.entry(EntryExecutionSucceeded, "", 0, "", map[string]any{"output": output})
	case StatusCancelled:
		upd.Error = errMsg
		entry = a.entry(EntryExecutionCancelled, "", 0, "", map[string]any{"reason": errMsg})
	case StatusTimedOut:
		upd.Error = errMsg
		entry = a.entry(EntryExecutionTimedOut, "", 0, "", map[string]any{"error": errMsg})
	default:
		upd.Error = errMsg
		entry = a.entry(EntryExecutionFailed, "", 0, "", map[string]any{"error": errMsg})
	}
	ok, err := a.tx.Transition(a.ctx, exec.TenantID, exec.ID, exec.Status, string(status), entry, upd)
	if err != nil || !ok {
		return err
	}
	// exec now matches the stored row.
	exec.Status, exec.Output, exec.Error = string(status), upd.Output, upd.Error
	exec.UpdatedAt, exec.FinishedAt = a.st.Now, upd.FinishedAt
	if _, err := a.tx.DeleteExecutionTasks(a.ctx, exec.TenantID, exec.ID); err != nil {
		return err
	}
	if _, err := a.tx.DeleteExecutionTimers(a.ctx, exec.TenantID, exec.ID); err != nil {
		return err
	}
	for _, n := range exec.Nodes {
		if s := NodeStatus(n.Status); s == NodePending || s == NodeRunning {
			n.Status, n.FinishedAt = string(NodeCancelled), a.st.Now
			if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
				return err
			}
		}
	}
	a.emitStatus(EventExecutionFinished, exec.TenantID, exec.ID, status)
	a.promoteDue = true
	// Children do not outlive their parent.
	children, err := a.tx.ChildExecutions(a.ctx, exec.TenantID, exec.ID)
	if err != nil {
		return err
	}
	for _, child := range children {
		if ExecutionStatus(child.Status).Terminal() {
			continue
		}
		c, _, err := a.load(child.TenantID, child.ID)
		if err != nil {
			return err
		}
		reason := fmt.Sprintf("parent execution %s ended %s", exec.ID, status)
		if err := a.appendJournal(c, a.entry(EntryCancellationRequested, "", 0, "", map[string]any{"reason": reason})); err != nil {
			return err
		}
		if err := a.end(c, StatusCancelled, nil, reason); err != nil {
			return err
		}
	}
	return a.childEnded(exec, status, output, errMsg)
}

// childID is the id of the execution a sub-workflow attempt starts: made
// from the attempt, since applying cannot draw new ids.
func childID(parentID, node string, attempt int) string {
	return parentID + "." + node + "." + strconv.Itoa(attempt)
}

// startChild starts the child execution of a builtin.subworkflow attempt.
// With wait (the default) the node runs until the child ends; without, it
// succeeds at once with the child's id.
func (a *applier) startChild(parent *storage.Execution, n *storage.NodeState, key string, params json.RawMessage) error {
	var p struct {
		Workflow string          `json:"workflow"`
		Input    json.RawMessage `json:"input"`
		Wait     *bool           `json:"wait"`
	}
	fail := func(format string, args ...any) error {
		return a.failAttempt(parent, n, nil, key, fmt.Sprintf("builtin.subworkflow: "+format, args...), false, 0)
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return fail("params: %v", err)
	}
	if p.Workflow == "" {
		return fail("params: workflow is required")
	}
	if in := strings.TrimSpace(string(p.Input)); in != "" && in != "null" && in[0] != '{' {
		return fail("params: input must be an object")
	}
	depth := 1
	for cur := parent; cur.ParentID != ""; depth++ {
		if depth >= maxDepth {
			return fail("sub-workflows nested deeper than %d", maxDepth)
		}
		next, err := a.tx.GetExecution(a.ctx, cur.TenantID, cur.ParentID)
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if err != nil {
			return err
		}
		cur = next
	}
	wf, err := a.tx.GetWorkflow(a.ctx, parent.TenantID, p.Workflow, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return fail("workflow %q not found", p.Workflow)
	}
	if err != nil {
		return err
	}
	child := &storage.Execution{
		TenantID:   parent.TenantID,
		ID:         childID(parent.ID, n.ID, n.Attempts),
		Input:      p.Input,
		ParentID:   parent.ID,
		ParentNode: n.ID,
	}
	_, refusal, err := a.create(child, wf)
	if err != nil {
		return err
	}
	if refusal != nil {
		return fail("%v", refusal)
	}
	if p.Wait != nil && !*p.Wait {
		out, _ := json.Marshal(map[string]string{"execution_id": child.ID})
		return a.succeedAttempt(parent, n, key, out)
	}
	// The child may have ended already, recording its result on this
	// node in the store: read the node back so the caller decides on
	// what is stored, not on this stale copy.
	fresh, err := a.tx.GetExecution(a.ctx, parent.TenantID, parent.ID)
	if err != nil {
		return err
	}
	if fn := fresh.Nodes[n.ID]; fn != nil {
		*n = *fn
	}
	return nil
}

// childEnded records the end of a sub-workflow's child on its parent's
// node, and queues the parent to be advanced once the current command's
// own work is done (the parent may be the execution being advanced now).
func (a *applier) childEnded(child *storage.Execution, status ExecutionStatus, output json.RawMessage, errMsg string) error {
	if child.ParentID == "" {
		return nil
	}
	parent, wf, err := a.load(child.TenantID, child.ParentID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	n := parent.Nodes[child.ParentNode]
	if ExecutionStatus(parent.Status).Terminal() || n == nil || NodeStatus(n.Status) != NodeRunning ||
		childID(parent.ID, n.ID, n.Attempts) != child.ID {
		return nil // not waiting for this child (wait: false, or an older attempt)
	}
	key := AttemptKey(parent.ID, n.ID, n.Attempts)
	if status == StatusSucceeded {
		err = a.succeedAttempt(parent, n, key, output)
	} else {
		plan, perr := a.m.plan(wf)
		if perr != nil {
			return perr
		}
		node, _ := plan.Node(n.ID)
		err = a.failAttempt(parent, n, node, key, fmt.Sprintf("child execution %s %s: %s", child.ID, status, errMsg), false, 0)
	}
	if err != nil {
		return err
	}
	a.followUps = append(a.followUps, execRef{tenant: parent.TenantID, id: parent.ID})
	return nil
}

// AttemptKey is the idempotency key of one attempt, and the id of its task.
func AttemptKey(executionID, node string, attempt int) string {
	return executionID + "/" + node + "/" + strconv.Itoa(attempt)
}
