package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// Refusals a command may meet when applied. They travel back in
// Result.Err; applying the log goes on.
var (
	// ErrStaleLease: the lease token no longer holds the task (it was
	// reclaimed, or the execution ended).
	ErrStaleLease = errors.New("stale lease")
)

// MachineConfig configures a Machine. Every node of a cluster must use the
// same values, since they shape what Apply writes.
type MachineConfig struct {
	// Options are used to compile stored definitions.
	Options Options
	Logger  *slog.Logger
}

// Machine applies commands to a store. It is the deterministic heart of the
// engine: given the same state, commands and stamps it writes the same
// changes on every node. It keeps only a cache of compiled plans, which
// are a pure function of stored definitions.
type Machine struct {
	opts   Options
	logger *slog.Logger

	mu    sync.Mutex
	plans map[string]*Plan // by tenant/id/version
}

// NewMachine returns a Machine.
func NewMachine(cfg MachineConfig) *Machine {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Machine{opts: cfg.Options, logger: l, plans: make(map[string]*Plan)}
}

// Stamp is what the log entry carrying a command says about when and
// where it applies: the leader's clock when it was proposed, and the log
// position, used to make fencing tokens.
type Stamp struct {
	Now   time.Time
	Index uint64 // log index of the entry
	Pos   int    // position of the command within the entry
}

// token is a fencing token unique to this command: entries are applied in
// index order, so tokens only grow.
func (s Stamp) token() uint64 { return s.Index<<16 | uint64(s.Pos&0xffff) }

// Apply applies cmd inside the caller's transaction tx. A returned error is
// a storage failure: the caller must not commit. Refusals are in Result.Err.
func (m *Machine) Apply(ctx context.Context, tx storage.Repos, st Stamp, cmd Command) (Result, []Event, error) {
	a := &applier{m: m, ctx: ctx, tx: tx, st: st}
	var res Result
	var err error
	switch c := cmd.(type) {
	case *PutWorkflow:
		res, err = a.putWorkflow(c)
	case *DeleteWorkflow:
		res, err = a.deleteWorkflow(c)
	case *StartExecution:
		res, err = a.startExecution(c)
	case *ClaimTasks:
		res, err = a.claimTasks(c)
	case *CompleteTask:
		res, err = a.completeTask(c)
	case *RenewLease:
		res, err = a.renewLease(c)
	case *ReclaimTasks:
		res, err = a.reclaimTasks(c)
	default:
		return Result{}, nil, fmt.Errorf("engine: no handler for command %T", cmd)
	}
	return res, a.events, err
}

// applier carries the state of applying one command.
type applier struct {
	m      *Machine
	ctx    context.Context
	tx     storage.Repos
	st     Stamp
	events []Event
}

func (a *applier) emit(kind EventKind, tenant, execID string) {
	a.events = append(a.events, Event{Kind: kind, Tenant: tenant, ExecutionID: execID})
}

func (a *applier) putWorkflow(c *PutWorkflow) (Result, error) {
	var def struct {
		Name string `json:"name"`
	}
	// The definition passed Compile before it was proposed; the name is
	// only copied for listings.
	_ = json.Unmarshal(c.Definition, &def)
	w := &storage.Workflow{TenantID: c.Tenant, ID: c.ID, Name: def.Name, Definition: c.Definition, CreatedAt: a.st.Now}
	if err := a.tx.PutWorkflow(a.ctx, w); err != nil {
		return Result{}, err
	}
	return Result{Version: w.Version}, nil
}

func (a *applier) deleteWorkflow(c *DeleteWorkflow) (Result, error) {
	err := a.tx.DeleteWorkflow(a.ctx, c.Tenant, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	return Result{}, err
}

func (a *applier) startExecution(c *StartExecution) (Result, error) {
	wf, err := a.tx.GetWorkflow(a.ctx, c.Tenant, c.WorkflowID, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	input := c.Input
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	plan, err := a.m.plan(wf)
	if err != nil {
		// The stored definition no longer compiles (e.g. an action this
		// build lacks): refuse the start, never stop applying the log.
		return Result{Err: err}, nil
	}
	// Every node gets its state row now, so an execution always shows its
	// whole graph and ending it can cancel the nodes that never ran.
	nodes := make(map[string]*storage.NodeState, len(plan.Definition().Nodes))
	for _, n := range plan.Definition().Nodes {
		nodes[n.ID] = &storage.NodeState{ID: n.ID, Status: string(NodePending)}
	}
	exec := &storage.Execution{
		TenantID:        c.Tenant,
		ID:              c.ExecutionID,
		WorkflowID:      wf.ID,
		WorkflowVersion: wf.Version,
		Status:          string(StatusRunning),
		Input:           input,
		IdempotencyKey:  c.IdempotencyKey,
		CreatedAt:       a.st.Now,
		UpdatedAt:       a.st.Now,
		Nodes:           nodes,
	}
	first := a.entry(EntryExecutionStarted, "", 0, "", map[string]any{"input": input})
	existing, created, err := a.tx.CreateExecution(a.ctx, exec, first)
	if errors.Is(err, storage.ErrConflict) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if !created {
		return Result{ExecutionID: existing.ID}, nil
	}
	if err := a.advance(exec, wf); err != nil {
		return Result{}, err
	}
	return Result{ExecutionID: exec.ID, Created: true}, nil
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
		if ok {
			t.LeaseHolder, t.LeaseToken, t.LeaseExpires = lease.Holder, lease.Token, lease.Expires
			claimed = append(claimed, t)
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
	exec, wf, err := a.load(t.TenantID, t.ExecutionID)
	if err != nil {
		return Result{}, err
	}
	if _, err := a.tx.DeleteTask(a.ctx, t.ID, c.Token); err != nil {
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
	if err := a.finishAttempt(exec, n, node, t, c.Output, c.Error); err != nil {
		return Result{}, err
	}
	if err := a.advance(exec, wf); err != nil {
		return Result{}, err
	}
	return Result{Accepted: true}, nil
}

// finishAttempt journals the end of an attempt and records the node's
// resulting state.
func (a *applier) finishAttempt(exec *storage.Execution, n *storage.NodeState, node *Node, t *storage.Task, output json.RawMessage, errMsg string) error {
	data := map[string]any{"output": output}
	if errMsg != "" {
		data = map[string]any{"error": errMsg}
	}
	if err := a.appendJournal(exec, a.entry(EntryNodeAttemptFinished, t.Node, t.Attempt, t.ID, data)); err != nil {
		return err
	}
	n.FinishedAt = a.st.Now
	switch {
	case errMsg == "":
		n.Status, n.Output, n.Error = string(NodeSucceeded), output, ""
	case node != nil && node.OnError == "continue":
		out, _ := json.Marshal(map[string]string{"error": errMsg})
		n.Status, n.Output, n.Error = string(NodeSucceeded), out, ""
	default:
		n.Status, n.Output, n.Error = string(NodeFailed), nil, errMsg
	}
	return a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n)
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
// attempt of the same node with the same parameters.
func (a *applier) reclaim(t *storage.Task) (bool, error) {
	ok, err := a.tx.DeleteTask(a.ctx, t.ID, t.LeaseToken)
	if err != nil || !ok {
		return false, err
	}
	exec, _, err := a.load(t.TenantID, t.ExecutionID)
	if err != nil {
		return false, err
	}
	n := exec.Nodes[t.Node]
	if ExecutionStatus(exec.Status).Terminal() || n == nil || n.Attempts != t.Attempt {
		return true, nil
	}
	a.m.logger.Info("reclaiming attempt", "execution", exec.ID, "node", t.Node, "attempt", t.Attempt, "holder", t.LeaseHolder)
	lost := map[string]any{"error": fmt.Sprintf("lease of %s lost: attempt abandoned", t.LeaseHolder)}
	if err := a.appendJournal(exec, a.entry(EntryNodeAttemptFinished, t.Node, t.Attempt, t.ID, lost)); err != nil {
		return false, err
	}
	return true, a.schedule(exec, n, t.Action, t.Params)
}

// schedule creates the next attempt of node n with resolved params.
func (a *applier) schedule(exec *storage.Execution, n *storage.NodeState, action string, params json.RawMessage) error {
	n.Attempts++
	n.Status = string(NodeRunning)
	if n.StartedAt.IsZero() {
		n.StartedAt = a.st.Now
	}
	t := &storage.Task{
		TenantID:    exec.TenantID,
		ID:          AttemptKey(exec.ID, n.ID, n.Attempts),
		ExecutionID: exec.ID,
		Node:        n.ID,
		Attempt:     n.Attempts,
		Action:      action,
		Params:      params,
		CreatedAt:   a.st.Now,
	}
	if err := a.tx.CreateTask(a.ctx, t); err != nil {
		return err
	}
	if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
		return err
	}
	a.emit(EventTasksReady, exec.TenantID, exec.ID)
	return a.appendJournal(exec, a.entry(EntryNodeAttemptStarted, n.ID, n.Attempts, t.ID, map[string]any{"inputs": params}))
}

// AttemptKey is the idempotency key of one attempt, and the id of its task.
func AttemptKey(executionID, node string, attempt int) string {
	return executionID + "/" + node + "/" + strconv.Itoa(attempt)
}

// advance runs the decider on exec and carries out its decision: skipped
// nodes are recorded, ready nodes scheduled, and a terminal execution
// closed. It loops because a node whose params cannot be resolved fails
// at once, which changes what the decider sees.
func (a *applier) advance(exec *storage.Execution, wf *storage.Workflow) error {
	plan, err := a.m.plan(wf)
	if err != nil {
		return a.finish(exec, StatusFailed, nil, err.Error())
	}
	for {
		scope, err := newScope(exec, plan)
		if err != nil {
			return err
		}
		d := plan.Decide(scope)
		for _, id := range d.Skipped {
			n := nodeState(exec, id)
			n.Status, n.FinishedAt = string(NodeSkipped), a.st.Now
			if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
				return err
			}
		}
		if d.Terminal {
			return a.finish(exec, d.Status, d.Output, d.Error)
		}
		again := false
		for _, id := range d.Ready {
			node, _ := plan.Node(id)
			n := nodeState(exec, id)
			params, rerr := plan.ResolveParams(id, scope)
			if rerr != nil {
				// The attempt is recorded, so the journal says why the
				// node failed.
				n.Attempts++
				n.Status, n.Error, n.StartedAt, n.FinishedAt = string(NodeFailed), rerr.Error(), a.st.Now, a.st.Now
				key := AttemptKey(exec.ID, id, n.Attempts)
				if err := a.appendJournal(exec, a.entry(EntryNodeAttemptStarted, id, n.Attempts, key, map[string]any{"inputs": nil})); err != nil {
					return err
				}
				if err := a.appendJournal(exec, a.entry(EntryNodeAttemptFinished, id, n.Attempts, key, map[string]any{"error": rerr.Error()})); err != nil {
					return err
				}
				if err := a.tx.PutNode(a.ctx, exec.TenantID, exec.ID, n); err != nil {
					return err
				}
				again = true
				continue
			}
			if err := a.schedule(exec, n, node.Action, params); err != nil {
				return err
			}
		}
		a.emit(EventExecutionChanged, exec.TenantID, exec.ID)
		if !again {
			return nil
		}
	}
}

// finish moves a running execution to a terminal status, cancels the
// nodes that never ran and drops the tasks still queued or leased: their
// late results will be refused.
func (a *applier) finish(exec *storage.Execution, status ExecutionStatus, output json.RawMessage, errMsg string) error {
	var entry storage.JournalEntry
	upd := &storage.ExecutionUpdate{FinishedAt: a.st.Now}
	switch status {
	case StatusSucceeded:
		if len(output) == 0 {
			output = json.RawMessage("null")
		}
		upd.Output = output
		entry = a.entry(EntryExecutionSucceeded, "", 0, "", map[string]any{"output": output})
	default:
		upd.Error = errMsg
		entry = a.entry(EntryExecutionFailed, "", 0, "", map[string]any{"error": errMsg})
	}
	ok, err := a.tx.Transition(a.ctx, exec.TenantID, exec.ID, exec.Status, string(status), entry, upd)
	if err != nil || !ok {
		return err
	}
	exec.Status = string(status)
	if _, err := a.tx.DeleteExecutionTasks(a.ctx, exec.TenantID, exec.ID); err != nil {
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
	a.emit(EventExecutionFinished, exec.TenantID, exec.ID)
	return nil
}

// load reads an execution with its nodes and the workflow version it runs.
func (a *applier) load(tenant, id string) (*storage.Execution, *storage.Workflow, error) {
	exec, err := a.tx.GetExecution(a.ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	if exec.Nodes == nil {
		exec.Nodes = map[string]*storage.NodeState{}
	}
	wf, err := a.tx.GetWorkflowVersion(a.ctx, tenant, exec.WorkflowID, exec.WorkflowVersion)
	if err != nil {
		return nil, nil, err
	}
	return exec, wf, nil
}

func (a *applier) entry(typ, node string, attempt int, key string, data map[string]any) storage.JournalEntry {
	raw, err := json.Marshal(data)
	if err != nil {
		// Every value here is JSON already or a string.
		panic(fmt.Sprintf("engine: journal data: %v", err))
	}
	return storage.JournalEntry{Type: typ, At: a.st.Now, Node: node, Attempt: attempt, IdempotencyKey: key, Data: raw}
}

func (a *applier) appendJournal(exec *storage.Execution, e storage.JournalEntry) error {
	_, err := a.tx.AppendJournal(a.ctx, exec.TenantID, exec.ID, e)
	return err
}

// nodeState returns the stored state of node id, creating a pending one.
func nodeState(exec *storage.Execution, id string) *storage.NodeState {
	n := exec.Nodes[id]
	if n == nil {
		n = &storage.NodeState{ID: id, Status: string(NodePending)}
		exec.Nodes[id] = n
	}
	return n
}

// newScope builds the expression scope of an execution.
func newScope(exec *storage.Execution, plan *Plan) (*Scope, error) {
	input, err := DecodeValue(exec.Input)
	if err != nil {
		return nil, fmt.Errorf("execution %s input: %w", exec.ID, err)
	}
	s := &Scope{Input: input, Nodes: make(map[string]NodeView, len(exec.Nodes)), ExecutionID: exec.ID, WorkflowID: exec.WorkflowID}
	for id, n := range exec.Nodes {
		out, err := DecodeValue(n.Output)
		if err != nil {
			return nil, fmt.Errorf("execution %s node %s output: %w", exec.ID, id, err)
		}
		s.Nodes[id] = NodeView{Status: NodeStatus(n.Status), Output: out, Error: n.Error}
	}
	return s, nil
}

// plan returns the compiled plan of a stored workflow version.
func (m *Machine) plan(wf *storage.Workflow) (*Plan, error) {
	key := wf.TenantID + "/" + wf.ID + "/" + strconv.Itoa(wf.Version)
	m.mu.Lock()
	p, ok := m.plans[key]
	m.mu.Unlock()
	if ok {
		return p, nil
	}
	def, err := ParseDefinition(wf.Definition)
	if err != nil {
		return nil, fmt.Errorf("workflow %s version %d: %w", wf.ID, wf.Version, err)
	}
	p, err = Compile(def, m.opts)
	if err != nil {
		return nil, fmt.Errorf("workflow %s version %d: %w", wf.ID, wf.Version, err)
	}
	m.mu.Lock()
	m.plans[key] = p
	m.mu.Unlock()
	return p, nil
}
