package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
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
	// Blobs holds outputs too large for the log; expressions read them
	// from here. Every node must be able to read every blob.
	Blobs  storage.BlobStore
	Logger *slog.Logger
}

// Machine applies commands to a store. It is the deterministic heart of the
// engine: given the same state, commands and stamps it writes the same
// changes on every node. It keeps only a cache of compiled plans, which
// are a pure function of stored definitions.
type Machine struct {
	opts   Options
	blobs  storage.BlobStore
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
	return &Machine{opts: cfg.Options, blobs: cfg.Blobs, logger: l, plans: make(map[string]*Plan)}
}

// Stamp is what the log entry carrying a command says about when and
// where it applies: the leader's clock when it was proposed, and the log
// position, used to make fencing tokens.
type Stamp struct {
	Now   time.Time
	Index uint64 // log index of the entry
	Pos   int    // position of the command within the entry
	// Work is what the entry has spent of its budget, shared by its
	// commands; nil gives the command a budget of its own.
	Work *Work
}

// token is a fencing token unique to this command: entries are applied in
// index order, so tokens only grow.
func (s Stamp) token() uint64 { return s.Index<<16 | uint64(s.Pos&0xffff) }

// Apply applies cmd inside the caller's transaction tx. A returned error is
// a storage failure: the caller must not commit. Refusals are in Result.Err.
func (m *Machine) Apply(ctx context.Context, tx storage.Repos, st Stamp, cmd Command) (Result, []Event, error) {
	work := st.Work
	if work == nil {
		work = NewWork()
	}
	a := &applier{m: m, ctx: ctx, tx: tx, st: st, work: work}
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
	case *CancelExecution:
		res, err = a.cancelExecution(c)
	case *FireTimers:
		res, err = a.fireTimers(c)
	case *SetLimits:
		res, err = a.setLimits(c)
	case *FireCron:
		res, err = a.fireCron(c)
	case *PutCredential:
		err = a.tx.PutCredential(a.ctx, &storage.Credential{
			TenantID: c.Tenant, Name: c.Name, Type: c.Type, Data: c.Sealed, CreatedAt: a.st.Now, UpdatedAt: a.st.Now,
		})
	case *DeleteCredential:
		err = a.tx.DeleteCredential(a.ctx, c.Tenant, c.Name)
		if errors.Is(err, storage.ErrNotFound) {
			res, err = Result{Err: err}, nil
		}
	case *RegisterAction:
		res, err = a.registerAction(c)
	case *ResealCredential:
		res, err = a.resealCredential(c)
	case *CreateTenant:
		res, err = a.createTenant(c)
	case *SetTenantQuota:
		res, err = a.setTenantQuota(c)
	case *IssueToken:
		res, err = a.issueToken(c)
	case *RevokeToken:
		res, err = a.revokeToken(c)
	case *Continue:
		res, err = a.continueExecutions(c)
	default:
		return Result{}, nil, fmt.Errorf("engine: no handler for command %T", cmd)
	}
	if err == nil {
		err = a.runFollowUps()
	}
	if c, ok := cmd.(*CompleteTask); ok && err == nil && res.Err == nil && c.Claim != nil {
		var claimed Result
		if claimed, err = a.claimTasks(c.Claim); err == nil {
			res.Tasks = claimed.Tasks
			if len(claimed.Tasks) < c.Claim.Max {
				// Every ready task is leased now: waking the other
				// workers would only make them claim nothing.
				a.events = slices.DeleteFunc(a.events, func(e Event) bool { return e.Kind == EventTasksReady })
			}
		}
	}
	return res, a.events, err
}

// execRef names an execution.
type execRef struct{ tenant, id string }

// runFollowUps advances the parents whose sub-workflow ended during the
// command, and starts waiting executions if slots freed; each step may
// cause more of both.
func (a *applier) runFollowUps() error {
	for len(a.followUps) > 0 || a.promoteDue {
		if len(a.followUps) == 0 {
			a.promoteDue = false
			if err := a.promote(); err != nil {
				return err
			}
			continue
		}
		ref := a.followUps[0]
		a.followUps = a.followUps[1:]
		exec, wf, err := a.load(ref.tenant, ref.id)
		if err != nil {
			return err
		}
		if ExecutionStatus(exec.Status).Terminal() {
			continue
		}
		if err := a.advance(exec, wf); err != nil {
			return err
		}
	}
	return nil
}

// applier carries the state of applying one command.
type applier struct {
	m      *Machine
	ctx    context.Context
	tx     storage.Repos
	st     Stamp
	events []Event
	// followUps are executions to advance once the command's own work is
	// done.
	followUps []execRef
	// promoteDue: a slot may have freed, so waiting executions may start
	// once the command's own work is done.
	promoteDue bool
	// decoded holds scope's values by execution, then node ("" for the
	// input).
	decoded map[string]map[string]decoded
	// work is the entry's spending; progress, when set, is an execution
	// that may start one node whatever the budget says (see
	// continueExecutions).
	work     *Work
	progress execRef
}

func (a *applier) emit(kind EventKind, tenant, execID string) {
	a.events = append(a.events, Event{Kind: kind, Tenant: tenant, ExecutionID: execID})
}

// emitStatus is emit for an event that carries the execution's status.
func (a *applier) emitStatus(kind EventKind, tenant, execID string, status ExecutionStatus) {
	a.events = append(a.events, Event{Kind: kind, Tenant: tenant, ExecutionID: execID, Status: string(status)})
}

func (a *applier) putWorkflow(c *PutWorkflow) (Result, error) {
	// The definition passed Compile before it was proposed, and the
	// proposer checked the limits and its registry actions against its
	// own, possibly lagging, copy of the state; these checks are the ones
	// every replica makes alike. The name is only copied for listings.
	var name string
	if parsed, err := ParseDefinition(c.Definition); err == nil {
		name = parsed.Name
		limits, err := definitionLimits(a.ctx, a.tx)
		if err != nil {
			return Result{}, err
		}
		if refusal := limits.check(parsed, len(c.Definition)); refusal != nil {
			return Result{Err: refusal}, nil
		}
		if registered := a.m.opts.Registered; registered != nil {
			refusal, err := unregisteredAction(a.ctx, a.tx, c.Tenant, parsed, registered)
			if err != nil || refusal != nil {
				return Result{Err: refusal}, err
			}
		}
	}
	if refusal, err := a.checkNewWorkflow(c.Tenant, c.ID); err != nil || refusal != nil {
		return Result{Err: refusal}, err
	}
	w := &storage.Workflow{TenantID: c.Tenant, ID: c.ID, Name: name, Definition: c.Definition, CreatedAt: a.st.Now}
	if err := a.tx.PutWorkflow(a.ctx, w); err != nil {
		return Result{}, err
	}
	a.emit(EventWorkflowsChanged, c.Tenant, "")
	return Result{Version: w.Version}, nil
}

func (a *applier) registerAction(c *RegisterAction) (Result, error) {
	// An empty or malformed version would read as "latest" below and
	// could never be named by a workflow; the proposer refuses it, and so
	// does every replica.
	if c.ID == "" || storage.ValidateActionVersion(c.Version) != nil {
		return Result{Err: fmt.Errorf("%w: action %q version %q", ErrInvalidAction, c.ID, c.Version)}, nil
	}
	_, err := a.tx.GetAction(a.ctx, c.Tenant, c.ID, c.Version)
	created := errors.Is(err, storage.ErrNotFound)
	if err != nil && !created {
		return Result{}, err
	}
	if created {
		q, err := a.quota(c.Tenant)
		if err != nil {
			return Result{}, err
		}
		if refusal, err := a.checkStorage(c.Tenant, q); err != nil || refusal != nil {
			return Result{Err: refusal}, err
		}
	}
	err = a.tx.PutAction(a.ctx, &storage.Action{
		TenantID: c.Tenant, ID: c.ID, Version: c.Version, Capabilities: c.Capabilities,
		ModuleRef: c.ModuleRef, Size: c.Size, CreatedAt: a.st.Now,
	})
	if errors.Is(err, storage.ErrConflict) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if created {
		if err := a.addUsage(c.Tenant, c.Size); err != nil {
			return Result{}, err
		}
	}
	return Result{Created: created}, nil
}

func (a *applier) deleteWorkflow(c *DeleteWorkflow) (Result, error) {
	err := a.tx.DeleteWorkflow(a.ctx, c.Tenant, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	a.emit(EventWorkflowsChanged, c.Tenant, "")
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
	exec := &storage.Execution{TenantID: c.Tenant, ID: c.ExecutionID, Input: c.Input, IdempotencyKey: c.IdempotencyKey}
	existing, refusal, err := a.create(exec, wf)
	if errors.Is(refusal, storage.ErrConflict) {
		// The id is the proposer's, made at random for this start: an
		// execution of this workflow that holds it is this very command,
		// applied before. A follower sends the command again when the
		// leader's answer was lost on the way (a broken connection), so
		// the second time answers like the first rather than refusing.
		if prev, gerr := a.tx.GetExecution(a.ctx, c.Tenant, c.ExecutionID); gerr == nil && prev.WorkflowID == c.WorkflowID {
			return Result{ExecutionID: prev.ID}, nil
		}
	}
	if err != nil || refusal != nil {
		return Result{Err: refusal}, err
	}
	if existing != nil {
		return Result{ExecutionID: existing.ID}, nil
	}
	res := Result{ExecutionID: exec.ID, Created: true}
	if ExecutionStatus(exec.Status).Terminal() {
		// Final: nothing later in the command can change it.
		res.Execution = exec
	}
	return res, nil
}

// create stores exec (tenant, id, input, idempotency key and parent
// already set) as an execution of wf and starts it. With an idempotency
// key used before it returns the existing execution instead. A refusal
// (the definition no longer compiles, the id is taken) is returned apart
// from storage errors.
func (a *applier) create(exec *storage.Execution, wf *storage.Workflow) (existing *storage.Execution, refusal, err error) {
	if len(exec.Input) == 0 {
		exec.Input = json.RawMessage("{}")
	}
	plan, err := a.m.plan(wf)
	if err != nil {
		// The stored definition no longer compiles (e.g. an action this
		// build lacks): refuse the start, never stop applying the log.
		return nil, err, nil
	}
	// Every node gets its state row now, so an execution always shows its
	// whole graph and ending it can cancel the nodes that never ran.
	exec.Nodes = make(map[string]*storage.NodeState, len(plan.Definition().Nodes))
	for _, n := range plan.Definition().Nodes {
		exec.Nodes[n.ID] = &storage.NodeState{ID: n.ID, Status: string(NodePending)}
	}
	exec.WorkflowID, exec.WorkflowVersion = wf.ID, wf.Version
	if refusal, err := a.checkNewExecution(exec); err != nil || refusal != nil {
		return nil, refusal, err
	}
	exec.CreatedAt, exec.UpdatedAt = a.st.Now, a.st.Now
	// Children never wait: their parent holds a slot and waits for them.
	queue := false
	if exec.ParentID == "" {
		if queue, err = a.atCapacity(); err != nil {
			return nil, nil, err
		}
	}
	exec.Status = string(StatusRunning)
	first := a.entry(EntryExecutionStarted, "", 0, "", map[string]any{"input": exec.Input})
	if queue {
		exec.Status = string(StatusPending)
		first = a.entry(EntryExecutionQueued, "", 0, "", map[string]any{"input": exec.Input})
	}
	old, created, err := a.tx.CreateExecution(a.ctx, exec, first)
	if errors.Is(err, storage.ErrConflict) {
		return nil, err, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !created || queue {
		return old, nil, nil
	}
	a.emit(EventExecutionStarted, exec.TenantID, exec.ID)
	return nil, nil, a.begin(exec, wf, plan)
}

// begin starts a created execution: its time limit, then its roots.
func (a *applier) begin(exec *storage.Execution, wf *storage.Workflow, plan *Plan) error {
	if d := time.Duration(plan.Definition().Timeout); d > 0 {
		if err := a.createTimer(exec, timerDeadline, "", 0, d); err != nil {
			return err
		}
	}
	return a.advance(exec, wf)
}

// definitionLimits returns the limits on saved workflows recorded in the
// replicated state (the leader's configuration).
func definitionLimits(ctx context.Context, r storage.Repos) (DefinitionLimits, error) {
	nodes, err := r.Setting(ctx, settingMaxWorkflowNodes, 0)
	if err != nil {
		return DefinitionLimits{}, err
	}
	size, err := r.Setting(ctx, settingMaxDefinitionBytes, 0)
	if err != nil {
		return DefinitionLimits{}, err
	}
	return DefinitionLimits{MaxNodes: int(nodes), MaxBytes: int(size)}.withDefaults(), nil
}

// settingMaxConcurrent is the key of engine.max_concurrent_executions in
// the replicated settings.
const settingMaxConcurrent = "max_concurrent_executions"

// atCapacity reports whether a new top-level execution must wait: the
// bound is reached, or others wait already (they go first).
func (a *applier) atCapacity() (bool, error) {
	limit, err := a.tx.Setting(a.ctx, settingMaxConcurrent, 0)
	if err != nil || limit <= 0 {
		return false, err
	}
	waiting, err := a.tx.PendingExecutions(a.ctx, 1)
	if err != nil || len(waiting) > 0 {
		return len(waiting) > 0, err
	}
	running, err := a.tx.CountExecutions(a.ctx, string(StatusRunning))
	return int64(running) >= limit, err
}

// promote starts waiting executions, oldest first, while slots are free.
func (a *applier) promote() error {
	limit, err := a.tx.Setting(a.ctx, settingMaxConcurrent, 0)
	if err != nil {
		return err
	}
	for {
		if limit > 0 {
			running, err := a.tx.CountExecutions(a.ctx, string(StatusRunning))
			if err != nil {
				return err
			}
			if int64(running) >= limit {
				return nil
			}
		}
		next, err := a.tx.PendingExecutions(a.ctx, 1)
		if err != nil || len(next) == 0 {
			return err
		}
		exec, wf, err := a.load(next[0].TenantID, next[0].ID)
		if err != nil {
			return err
		}
		entry := a.entry(EntryExecutionStarted, "", 0, "", map[string]any{})
		ok, err := a.tx.Transition(a.ctx, exec.TenantID, exec.ID, string(StatusPending), string(StatusRunning), entry, nil)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("engine: pending execution %s changed under promotion", exec.ID)
		}
		exec.Status = string(StatusRunning)
		a.emit(EventExecutionStarted, exec.TenantID, exec.ID)
		plan, err := a.m.plan(wf)
		if err != nil {
			if err := a.end(exec, StatusFailed, nil, err.Error()); err != nil {
				return err
			}
			continue
		}
		if err := a.begin(exec, wf, plan); err != nil {
			return err
		}
	}
}

func (a *applier) fireCron(c *FireCron) (Result, error) {
	key := "cron:" + c.Tenant + "/" + c.WorkflowID + "/" + strconv.Itoa(c.Trigger)
	last, err := a.tx.Setting(a.ctx, key, math.MinInt64)
	if err != nil {
		return Result{}, err
	}
	if c.Tick.UnixNano() <= last {
		return Result{Err: fmt.Errorf("%w: tick %s of %s already fired", storage.ErrConflict, c.Tick.Format(time.RFC3339Nano), c.WorkflowID)}, nil
	}
	wf, err := a.tx.GetWorkflow(a.ctx, c.Tenant, c.WorkflowID, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	plan, err := a.m.plan(wf)
	if err != nil {
		return Result{Err: err}, nil
	}
	tr := plan.Definition().Triggers
	if c.Trigger >= len(tr) || tr[c.Trigger].Type != "cron" {
		return Result{Err: fmt.Errorf("%w: workflow %s has no cron trigger %d", storage.ErrNotFound, c.WorkflowID, c.Trigger)}, nil
	}
	if err := a.tx.PutSetting(a.ctx, key, c.Tick.UnixNano()); err != nil {
		return Result{}, err
	}
	input, _ := json.Marshal(map[string]string{
		"trigger": "cron", "schedule": tr[c.Trigger].Schedule, "tick": c.Tick.UTC().Format(time.RFC3339Nano),
	})
	exec := &storage.Execution{TenantID: c.Tenant, ID: c.ExecutionID, Input: input}
	_, refusal, err := a.create(exec, wf)
	if err != nil || refusal != nil {
		return Result{Err: refusal}, err
	}
	return Result{ExecutionID: exec.ID, Created: true}, nil
}

func (a *applier) setLimits(c *SetLimits) (Result, error) {
	for _, s := range []struct {
		key   string
		value int
	}{
		{settingMaxConcurrent, c.MaxConcurrentExecutions},
		{settingMaxWorkflowNodes, c.MaxWorkflowNodes},
		{settingMaxDefinitionBytes, c.MaxDefinitionBytes},
	} {
		if err := a.tx.PutSetting(a.ctx, s.key, int64(s.value)); err != nil {
			return Result{}, err
		}
	}
	a.promoteDue = true
	return Result{}, nil
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
	raw, err := journalData(data)
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

// scope builds the expression scope of an execution, reading outputs kept
// in the blob store. A blob that cannot be read is a storage failure: the
// node stops rather than decide on a different scope than its peers.
func (a *applier) scope(exec *storage.Execution) (*Scope, error) {
	// An execution advances several times within one command; each value
	// is decoded once and reused while its stored form is unchanged.
	// Nothing writes into decoded values, so sharing them is safe.
	memo := a.decoded[exec.ID]
	if memo == nil {
		if a.decoded == nil {
			a.decoded = make(map[string]map[string]decoded)
		}
		memo = make(map[string]decoded, len(exec.Nodes)+1)
		a.decoded[exec.ID] = memo
	}
	value := func(key string, stored json.RawMessage, expand bool) (any, error) {
		if d, ok := memo[key]; ok && bytes.Equal(d.stored, stored) {
			return d.value, nil
		}
		raw := stored
		if expand {
			var err error
			if raw, err = ExpandOutput(a.ctx, a.m.blobs, stored); err != nil {
				return nil, err
			}
		}
		v, err := DecodeValue(raw)
		if err != nil {
			return nil, err
		}
		memo[key] = decoded{stored: stored, value: v}
		return v, nil
	}
	input, err := value("", exec.Input, false)
	if err != nil {
		return nil, fmt.Errorf("execution %s input: %w", exec.ID, err)
	}
	s := &Scope{Input: input, Nodes: make(map[string]NodeView, len(exec.Nodes)), ExecutionID: exec.ID, WorkflowID: exec.WorkflowID}
	for id, n := range exec.Nodes {
		// Node ids are never empty, so "" cannot clash with the input.
		out, err := value(id, n.Output, true)
		if err != nil {
			return nil, fmt.Errorf("execution %s node %s output: %w", exec.ID, id, err)
		}
		s.Nodes[id] = NodeView{Status: NodeStatus(n.Status), Output: out, Error: n.Error}
	}
	return s, nil
}

// decoded is a value scope decoded and the stored form it came from.
type decoded struct {
	stored json.RawMessage
	value  any
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

// resealCredential swaps a credential's sealed data for a re-sealed copy,
// unless it changed since the proposer read it.
func (a *applier) resealCredential(c *ResealCredential) (Result, error) {
	cur, err := a.tx.GetCredential(a.ctx, c.Tenant, c.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if !bytes.Equal(cur.Data, c.Expect) {
		return Result{Err: fmt.Errorf("credential %q changed during the key rotation: %w", c.Name, storage.ErrConflict)}, nil
	}
	cur.Data = c.Sealed
	return Result{}, a.tx.PutCredential(a.ctx, cur)
}

// journalData encodes an entry's data exactly as json.Marshal does. Nearly
// every entry holds one field, a JSON value or a string: those are
// written directly, since reflection over a map was a noticeable part of
// applying an execution.
func journalData(data map[string]any) ([]byte, error) {
	if len(data) != 1 {
		return json.Marshal(data)
	}
	for k, v := range data {
		for _, c := range []byte(k) {
			if (c < 'a' || c > 'z') && c != '_' {
				return json.Marshal(data)
			}
		}
		buf := bytes.NewBuffer(make([]byte, 0, len(k)+16))
		buf.WriteString(`{"` + k + `":`)
		switch v := v.(type) {
		case json.RawMessage:
			if v == nil {
				buf.WriteString("null")
				break
			}
			var c bytes.Buffer
			if err := json.Compact(&c, v); err != nil {
				return nil, err
			}
			json.HTMLEscape(buf, c.Bytes())
		case string:
			s, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			buf.Write(s)
		default:
			return json.Marshal(data)
		}
		buf.WriteByte('}')
		return buf.Bytes(), nil
	}
	panic("unreachable")
}
