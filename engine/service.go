package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nebula-engine/nebula/internal/ids"
	"github.com/nebula-engine/nebula/storage"
)

// Submitter proposes a command to the replicated log and returns what
// applying it produced. The cluster package implements it.
type Submitter interface {
	Submit(ctx context.Context, cmd Command) (Result, error)
}

// ReadBarrier makes the next local read linearizable: it returns once the
// local state holds every write acknowledged before the call.
type ReadBarrier interface {
	ReadBarrier(ctx context.Context) error
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Submitter Submitter
	// Barrier serves consistent reads; nil means local reads are already
	// linearizable (a store that is not replicated).
	Barrier ReadBarrier
	// Store serves reads; it is the local copy of the replicated state.
	Store   storage.Repos
	Options Options
	Logger  *slog.Logger
	// Hub receives the events of applied commands; nil makes one.
	Hub *Hub
	// DefinitionLimits are engine.max_workflow_nodes and
	// max_definition_bytes; the leader records them in the replicated
	// state (SyncLimits).
	DefinitionLimits DefinitionLimits
	// MaxConcurrentExecutions is engine.max_concurrent_executions; the
	// leader records it in the replicated state (0: no bound).
	MaxConcurrentExecutions int
	// Blobs holds outputs too large for the log; answers carry their
	// content.
	Blobs storage.BlobStore
	// Secrets seals credential data before it is proposed.
	Secrets storage.SecretsStore
	// CheckModule vets a community action's module before it is
	// registered: the composition root compiles it in the WebAssembly
	// runtime and applies the sandbox policy to its capabilities. Its
	// error refuses the registration, wrapped in ErrInvalidAction. nil
	// accepts every module that passes the engine's own checks.
	CheckModule func(ctx context.Context, id string, module []byte, capabilities []string) error
	// ActionsEnabled is sandbox.community_actions.enabled: when false,
	// registrations fail with ErrActionsDisabled.
	ActionsEnabled bool
}

// Service is the engine as the API sees it: validated writes become
// commands, reads come from the local store, and callers can wait for an
// execution to finish.
type Service struct {
	secrets       storage.SecretsStore
	trig          triggerIndex
	blobs         storage.BlobStore
	maxConcurrent int
	defLimits     DefinitionLimits
	sub           Submitter
	barrier       ReadBarrier
	store         storage.Repos
	opts          Options
	logger        *slog.Logger
	hub           *Hub

	// The registry of community actions.
	checkModule    func(ctx context.Context, id string, module []byte, capabilities []string) error
	actionsEnabled bool
}

// NewService returns a Service.
func NewService(cfg ServiceConfig) *Service {
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	h := cfg.Hub
	if h == nil {
		h = NewHub()
	}
	return &Service{secrets: cfg.Secrets, blobs: cfg.Blobs, maxConcurrent: cfg.MaxConcurrentExecutions, defLimits: cfg.DefinitionLimits.withDefaults(), sub: cfg.Submitter, barrier: cfg.Barrier, store: cfg.Store, opts: cfg.Options, logger: l, hub: h,
		checkModule: cfg.CheckModule, actionsEnabled: cfg.ActionsEnabled}
}

// Hub returns the service's event hub; the FSM publishes into it.
func (s *Service) Hub() *Hub { return s.hub }

// Consistent returns once reads made after it see every write
// acknowledged before it (a linearizable read).
func (s *Service) Consistent(ctx context.Context) error {
	if s.barrier == nil {
		return nil
	}
	return s.barrier.ReadBarrier(ctx)
}

// ackWaiter is a ReadBarrier that may acknowledge writes before it has
// applied them (cluster.Node).
type ackWaiter interface {
	WaitAcknowledged(ctx context.Context) error
}

// LocalRead returns once a local read sees every write this node has
// acknowledged, which it may do before applying them.
func (s *Service) LocalRead(ctx context.Context) error {
	if w, ok := s.barrier.(ackWaiter); ok {
		return w.WaitAcknowledged(ctx)
	}
	return nil
}

// submit proposes cmd and turns a refusal into an error.
func (s *Service) submit(ctx context.Context, cmd Command) (Result, error) {
	res, err := s.sub.Submit(ctx, cmd)
	if err != nil {
		return res, err
	}
	return res, res.Err
}

// PutWorkflow validates def and stores it as the next version of def.ID.
func (s *Service) PutWorkflow(ctx context.Context, tenant string, def *Definition) (*storage.Workflow, error) {
	if def.ID == "" {
		def.ID = ids.New()
	}
	if _, err := Compile(def, s.opts); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("encode workflow: %w", err)
	}
	// The local state may lag; the state machine checks again when the
	// command applies. These checks answer early, without a proposal.
	limits, err := definitionLimits(ctx, s.store)
	if err != nil {
		return nil, err
	}
	if err := limits.check(def, len(raw)); err != nil {
		return nil, err
	}
	refusal, err := unregisteredAction(ctx, s.store, tenant, def, s.opts.Registered)
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	res, err := s.submit(ctx, &PutWorkflow{Tenant: tenant, ID: def.ID, Definition: raw})
	if err != nil {
		return nil, err
	}
	return s.store.GetWorkflow(ctx, tenant, def.ID, res.Version)
}

// GetWorkflow returns the latest version of a workflow.
func (s *Service) GetWorkflow(ctx context.Context, tenant, id string) (*storage.Workflow, error) {
	return s.store.GetWorkflow(ctx, tenant, id, 0)
}

// ListWorkflows returns a page of workflows.
func (s *Service) ListWorkflows(ctx context.Context, tenant string, page storage.Page) ([]*storage.Workflow, string, error) {
	return s.store.ListWorkflows(ctx, tenant, page)
}

// DeleteWorkflow deletes a workflow; running executions finish.
func (s *Service) DeleteWorkflow(ctx context.Context, tenant, id string) error {
	_, err := s.submit(ctx, &DeleteWorkflow{Tenant: tenant, ID: id})
	return err
}

// StartRequest asks for a new execution.
type StartRequest struct {
	Tenant         string
	WorkflowID     string
	Input          json.RawMessage
	IdempotencyKey string
}

// StartExecution starts an execution of the latest version of a workflow.
// With an idempotency key used before, it returns the execution that key
// started and created=false.
func (s *Service) StartExecution(ctx context.Context, req StartRequest) (*storage.Execution, bool, error) {
	cmd := &StartExecution{
		Tenant:         req.Tenant,
		ExecutionID:    ids.New(),
		WorkflowID:     req.WorkflowID,
		Input:          req.Input,
		IdempotencyKey: req.IdempotencyKey,
	}
	res, err := s.submit(ctx, cmd)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, false, fmt.Errorf("workflow %q: %w", req.WorkflowID, storage.ErrNotFound)
		}
		return nil, false, err
	}
	if e := res.Execution; e != nil {
		return e, res.Created, s.expand(ctx, e)
	}
	e, err := s.GetExecution(ctx, req.Tenant, res.ExecutionID)
	return e, res.Created, err
}

// GetExecution returns an execution with its nodes, large outputs read
// back from the blob store.
func (s *Service) GetExecution(ctx context.Context, tenant, id string) (*storage.Execution, error) {
	e, err := s.store.GetExecution(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return e, s.expand(ctx, e)
}

// ListExecutions returns a page of executions.
func (s *Service) ListExecutions(ctx context.Context, tenant string, f storage.ExecutionFilter, page storage.Page) ([]*storage.Execution, string, error) {
	list, next, err := s.store.ListExecutions(ctx, tenant, f, page)
	if err != nil {
		return nil, "", err
	}
	for _, e := range list {
		if err := s.expand(ctx, e); err != nil {
			return nil, "", err
		}
	}
	return list, next, nil
}

// expand replaces blob markers in an execution's outputs by their content.
func (s *Service) expand(ctx context.Context, e *storage.Execution) error {
	var err error
	if e.Output, err = ExpandOutput(ctx, s.blobs, e.Output); err != nil {
		return err
	}
	for _, n := range e.Nodes {
		if n.Output, err = ExpandOutput(ctx, s.blobs, n.Output); err != nil {
			return err
		}
	}
	return nil
}

// ClaimTasks leases up to max ready tasks to holder for ttl, waiting up to
// wait for some to be ready (a long poll). It proposes a claim only when
// the local state shows ready tasks, so an idle poll writes nothing.
func (s *Service) ClaimTasks(ctx context.Context, holder string, max int, ttl, wait time.Duration) ([]*storage.Task, error) {
	ready, stop := s.hub.TasksReady()
	defer stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		waiting, err := s.store.ReadyTasks(ctx, 1)
		if err != nil {
			return nil, err
		}
		if len(waiting) > 0 {
			res, err := s.submit(ctx, &ClaimTasks{Holder: holder, Max: max, TTL: ttl})
			if err != nil || len(res.Tasks) > 0 {
				return res.Tasks, err
			}
		}
		select {
		case <-ready:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// CompleteTask reports an attempt's result; ErrStaleLease when the token
// no longer holds the task.
func (s *Service) CompleteTask(ctx context.Context, c *CompleteTask) error {
	_, err := s.submit(ctx, c)
	return err
}

// RenewLease extends a running attempt's lease; ErrStaleLease when the
// token no longer holds the task.
func (s *Service) RenewLease(ctx context.Context, taskID string, token uint64, ttl time.Duration) error {
	_, err := s.submit(ctx, &RenewLease{TaskID: taskID, Token: token, TTL: ttl})
	return err
}

// CancelExecution cancels an execution and returns it as it is after the
// cancellation applied (an execution that already ended is returned as
// it is).
func (s *Service) CancelExecution(ctx context.Context, tenant, id string) (*storage.Execution, error) {
	if _, err := s.submit(ctx, &CancelExecution{Tenant: tenant, ExecutionID: id}); err != nil {
		return nil, err
	}
	return s.store.GetExecution(ctx, tenant, id)
}

// RunTimers fires durable timers while this node leads, until ctx ends.
// It sleeps until the earliest timer is due (or a new one may be sooner),
// so a thousand parked executions cost one goroutine and no polling.
func (s *Service) RunTimers(ctx context.Context, leading func() bool) {
	leaderLoop(ctx, leading, s.hub.TimersChanged(), s.fireDue)
}

// leaderIdle is how often the leader's loops look again at leadership and
// the store when nothing woke them.
const leaderIdle = time.Second

// leaderLoop runs step whenever wake is signalled, and at the latest after
// the wait step returned (leaderIdle when this node does not lead), until
// ctx ends.
func leaderLoop(ctx context.Context, leading func() bool, wake <-chan struct{}, step func(ctx context.Context, max time.Duration) time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		wait := leaderIdle
		if leading() {
			wait = step(ctx, leaderIdle)
		}
		t.Reset(wait)
	}
}

// fireDue fires the timers due now and returns how long to sleep before
// the next one is due (at most max).
func (s *Service) fireDue(ctx context.Context, max time.Duration) time.Duration {
	next, err := s.store.NextTimer(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return max
	}
	if err != nil {
		s.logger.Warn("reading timers", "err", err)
		return max
	}
	if d := time.Until(next.DueAt); d > 0 {
		return min(d, max)
	}
	if _, err := s.submit(ctx, &FireTimers{Max: 1000, Jitter: rand.Uint32()}); err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("firing timers", "err", err)
		}
		return 50 * time.Millisecond
	}
	return 0 // look again: more may be due
}

// continueBatch is how many deferred executions one Continue may take up;
// the entry's budget usually stops it sooner.
const continueBatch = 64

// RunContinuations proposes Continue commands while executions are
// deferred and this node leads, so that work a bounded entry left goes on
// in the entries after it, sharing them with everything else proposed
// meanwhile. It returns when ctx ends.
func (s *Service) RunContinuations(ctx context.Context, leading func() bool) {
	leaderLoop(ctx, leading, s.hub.Deferred(), s.continueDeferred)
}

// continueDeferred proposes Continue commands until nothing is deferred,
// and returns max: the next deferral wakes the loop.
func (s *Service) continueDeferred(ctx context.Context, max time.Duration) time.Duration {
	for ctx.Err() == nil {
		n, err := s.store.CountDeferred(ctx)
		if err != nil || n == 0 {
			break
		}
		res, err := s.submit(ctx, &Continue{Max: continueBatch})
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("continuing deferred executions", "err", err)
			}
			return 50 * time.Millisecond
		}
		if res.Deferred == 0 {
			break
		}
	}
	return max
}

// SyncLimits records this node's configured limits in the replicated
// state when they differ from it. The leader calls it: its configuration
// wins.
func (s *Service) SyncLimits(ctx context.Context) {
	cur, err := s.store.Setting(ctx, settingMaxConcurrent, 0)
	if err != nil {
		return
	}
	defs, err := definitionLimits(ctx, s.store)
	if err != nil || cur == int64(s.maxConcurrent) && defs == s.defLimits {
		return
	}
	cmd := &SetLimits{MaxConcurrentExecutions: s.maxConcurrent, MaxWorkflowNodes: s.defLimits.MaxNodes, MaxDefinitionBytes: s.defLimits.MaxBytes}
	if _, err := s.submit(ctx, cmd); err == nil {
		s.logger.Info("engine limits set", "max_concurrent_executions", s.maxConcurrent,
			"max_workflow_nodes", s.defLimits.MaxNodes, "max_definition_bytes", s.defLimits.MaxBytes)
	}
}

// Journal returns an execution's journal.
func (s *Service) Journal(ctx context.Context, tenant, id string) ([]storage.JournalEntry, error) {
	if _, err := s.store.GetExecution(ctx, tenant, id); err != nil {
		return nil, err
	}
	return s.JournalAfter(ctx, tenant, id, 0)
}

// Watch returns a channel signalled when the execution changes, and a
// function that ends the watch.
func (s *Service) Watch(id string) (<-chan struct{}, func()) { return s.hub.Watch(id) }

// JournalAfter returns the journal entries with a sequence number above
// after, large outputs read back from the blob store.
func (s *Service) JournalAfter(ctx context.Context, tenant, id string, after int64) ([]storage.JournalEntry, error) {
	entries, err := s.store.Journal(ctx, tenant, id, after, 0)
	if err != nil {
		return nil, err
	}
	for i := range entries {
		// Only outputs can be large; the marker sits in "output".
		if !bytes.Contains(entries[i].Data, []byte(blobMarkerPrefix)) {
			continue
		}
		var data map[string]json.RawMessage
		if json.Unmarshal(entries[i].Data, &data) != nil {
			continue
		}
		out, ok := data["output"]
		if !ok {
			continue
		}
		if data["output"], err = ExpandOutput(ctx, s.blobs, out); err != nil {
			return nil, err
		}
		if entries[i].Data, err = json.Marshal(data); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// Await is WaitExecution for an execution just started: one that ended
// already is returned as it is. It may not be applied on this node yet
// (see cluster.Node.WaitAcknowledged), so it must not be read back.
func (s *Service) Await(ctx context.Context, e *storage.Execution, d time.Duration) (*storage.Execution, error) {
	if ExecutionStatus(e.Status).Terminal() {
		return e, nil
	}
	return s.WaitExecution(ctx, e.TenantID, e.ID, d)
}

// WaitExecution returns the execution once it is terminal, or as it is
// when d has passed or ctx ends.
func (s *Service) WaitExecution(ctx context.Context, tenant, id string, d time.Duration) (*storage.Execution, error) {

	ch, stop := s.hub.WatchEnd(id)
	defer stop()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		// Read after subscribing, so a change between the two is not
		// missed.
		e, err := s.store.GetExecution(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		if ExecutionStatus(e.Status).Terminal() {
			return e, s.expand(ctx, e)
		}
		select {
		case <-ch:
		case <-timer.C:
			return e, s.expand(ctx, e)
		case <-ctx.Done():
			return e, s.expand(context.WithoutCancel(ctx), e)
		}
	}
}

// RunMaintenance runs housekeeping until ctx ends. At once it takes back
// the tasks that a previous incarnation of this node held (they cannot be
// running any more: the process that ran them is gone). Then, while
// leading, it reclaims expired leases every interval: the reaper.
func (s *Service) RunMaintenance(ctx context.Context, leading func() bool, holderPrefix, keepHolder string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	own := &ReclaimTasks{Max: 1000, HolderPrefix: holderPrefix, KeepHolder: keepHolder}
	for {
		if own != nil {
			res, err := s.submit(ctx, own)
			if err == nil {
				own = nil
				if res.Reclaimed > 0 {
					s.logger.Info("reclaimed tasks of a previous run", "tasks", res.Reclaimed)
				}
			}
		}
		if leading() {
			s.SyncLimits(ctx)
			// Propose only when the local state shows expired leases: an
			// idle cluster writes nothing.
			if stale, err := s.store.FindStaleLeases(ctx, time.Now(), 1); err == nil && len(stale) > 0 {
				if res, err := s.submit(ctx, &ReclaimTasks{Max: 1000}); err == nil && res.Reclaimed > 0 {
					s.logger.Info("reclaimed expired leases", "tasks", res.Reclaimed)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
