package engine

import (
	"encoding/json"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// Command is a change to durable state. Commands are proposed through the
// replicated log and applied by Machine on every node; they carry every
// nondeterministic input (ids, results of actions) so that applying them is
// deterministic. The time of application comes from the log entry that
// carries the command, stamped by the leader.
type Command interface {
	commandName() string
}

// PutWorkflow stores a new version of a workflow. Definition is the
// canonical JSON of a definition that already passed Compile.
type PutWorkflow struct {
	Tenant     string
	ID         string
	Definition json.RawMessage
}

// DeleteWorkflow hides a workflow; running executions keep their version.
type DeleteWorkflow struct {
	Tenant string
	ID     string
}

// StartExecution creates an execution of the latest version of a workflow
// and schedules its root nodes. ExecutionID is made by the proposer.
type StartExecution struct {
	Tenant         string
	ExecutionID    string
	WorkflowID     string
	Input          json.RawMessage
	IdempotencyKey string
}

// ClaimTasks leases up to Max ready tasks to Holder for TTL.
type ClaimTasks struct {
	Holder string
	Max    int
	TTL    time.Duration
}

// CompleteTask records the result of one attempt. Exactly one of Output
// and Error is meaningful: a non-empty Error means the attempt failed.
// A failed attempt is retried per the node's policy when Retryable; the
// backoff's jitter comes from the proposer (Jitter, uniform over uint32),
// since applying must not draw random numbers.
type CompleteTask struct {
	TaskID    string
	Token     uint64
	Output    json.RawMessage
	Error     string
	Retryable bool
	Jitter    uint32
	// Claim, if set and the result is accepted, leases ready tasks to the
	// reporting worker once the result has been applied (Result.Tasks):
	// the next node of a chain goes to the worker that finished the
	// previous one in the same log entry, without a claim of its own.
	Claim *ClaimTasks
}

// CancelExecution cancels a running or pending execution: its queued and
// running attempts are dropped (late results refused), its nodes that had
// not finished are cancelled, and so are its child executions.
type CancelExecution struct {
	Tenant      string
	ExecutionID string
	Reason      string
}

// FireCron starts an execution for one tick of a workflow's cron trigger.
// Each (workflow, trigger) remembers its last tick in the replicated
// state, and a tick at or before it is refused: a tick fires once, whatever
// leader proposes it and however often.
type FireCron struct {
	Tenant      string
	WorkflowID  string
	Trigger     int // index in the definition's triggers
	Tick        time.Time
	ExecutionID string
}

// ResealCredential replaces a credential's sealed data with the same data
// sealed under the current key (a key rotation), if it still holds Expect:
// a credential changed since it was read is left alone (the rotation reads
// it again).
type ResealCredential struct {
	Tenant, Name string
	Expect       []byte
	Sealed       []byte
}

// PutCredential stores a credential. Data is sealed by the proposer before
// it enters the log, so the log, the state and snapshots hold ciphertext
// only.
type PutCredential struct {
	Tenant string
	Name   string
	Type   string
	Sealed []byte
}

// DeleteCredential removes a credential.
type DeleteCredential struct {
	Tenant string
	Name   string
}

// RegisterAction records one version of a community action. The module is
// in the blob store already, under ModuleRef, so the log carries only its
// reference. Versions are immutable: registering one again with the same
// module and capabilities changes nothing, with others it is refused with
// storage.ErrConflict.
type RegisterAction struct {
	Tenant       string
	ID           string
	Version      string
	Capabilities []string // sorted, without duplicates
	ModuleRef    string
	Size         int64
}

// CreateTenant creates a tenant with its first token, in one command so
// that no tenant is ever left without a way in. The token is made by the
// proposer; only its hash enters the log.
type CreateTenant struct {
	ID        string
	Name      string
	Quota     storage.Quota
	TokenID   string
	TokenHash string
}

// SetTenantQuota replaces a tenant's quota.
type SetTenantQuota struct {
	ID    string
	Quota storage.Quota
}

// IssueToken adds a token to a tenant; like CreateTenant it carries only
// the token's hash.
type IssueToken struct {
	Tenant    string
	TokenID   string
	TokenHash string
}

// RevokeToken revokes a token of a tenant: requests that carry it are
// refused from then on.
type RevokeToken struct {
	Tenant  string
	TokenID string
}

// SetLimits records engine-wide limits in the replicated state, so that
// every node enforces the same ones. MaxConcurrentExecutions bounds the
// running top-level executions (0: no bound); raising it starts waiting
// ones at once.
type SetLimits struct {
	MaxConcurrentExecutions int
	// MaxWorkflowNodes and MaxDefinitionBytes bound saved workflows
	// (DefinitionLimits); zero keeps the default.
	MaxWorkflowNodes   int
	MaxDefinitionBytes int
}

// Continue advances up to Max deferred executions, tenants taking turns,
// within the entry's budget (see Budget). The leader proposes it while
// executions are deferred.
type Continue struct {
	Max int
}

// FireTimers fires up to Max timers due at the entry's time. Jitter seeds
// the backoff of attempts that time out.
type FireTimers struct {
	Max    int
	Jitter uint32
}

// RenewLease extends the lease of a running attempt (a heartbeat).
type RenewLease struct {
	TaskID string
	Token  uint64
	TTL    time.Duration
}

// ReclaimTasks hands back tasks whose lease expired, and — when
// HolderPrefix is set — every task leased by a holder with that prefix
// other than KeepHolder (a restarted node reclaiming its previous
// incarnation's work at once instead of waiting for the TTL). Each
// reclaimed attempt is recorded as failed and a new attempt is scheduled.
type ReclaimTasks struct {
	Max          int
	HolderPrefix string
	KeepHolder   string
}

func (PutWorkflow) commandName() string      { return "put_workflow" }
func (DeleteWorkflow) commandName() string   { return "delete_workflow" }
func (StartExecution) commandName() string   { return "start_execution" }
func (ClaimTasks) commandName() string       { return "claim_tasks" }
func (CompleteTask) commandName() string     { return "complete_task" }
func (RenewLease) commandName() string       { return "renew_lease" }
func (ReclaimTasks) commandName() string     { return "reclaim_tasks" }
func (CancelExecution) commandName() string  { return "cancel_execution" }
func (FireTimers) commandName() string       { return "fire_timers" }
func (SetLimits) commandName() string        { return "set_limits" }
func (FireCron) commandName() string         { return "fire_cron" }
func (ResealCredential) commandName() string { return "reseal_credential" }
func (PutCredential) commandName() string    { return "put_credential" }
func (DeleteCredential) commandName() string { return "delete_credential" }
func (RegisterAction) commandName() string   { return "register_action" }
func (CreateTenant) commandName() string     { return "create_tenant" }
func (SetTenantQuota) commandName() string   { return "set_tenant_quota" }
func (IssueToken) commandName() string       { return "issue_token" }
func (RevokeToken) commandName() string      { return "revoke_token" }
func (Continue) commandName() string         { return "continue" }

// TenantOf returns the tenant a command acts for, and "" for the system's
// own commands (claims, reports, timers, continuations, limits), which
// act for many.
func TenantOf(cmd Command) string {
	switch c := cmd.(type) {
	case *PutWorkflow:
		return c.Tenant
	case *DeleteWorkflow:
		return c.Tenant
	case *StartExecution:
		return c.Tenant
	case *CancelExecution:
		return c.Tenant
	case *FireCron:
		return c.Tenant
	case *PutCredential:
		return c.Tenant
	case *DeleteCredential:
		return c.Tenant
	case *ResealCredential:
		return c.Tenant
	case *RegisterAction:
		return c.Tenant
	case *IssueToken:
		return c.Tenant
	case *RevokeToken:
		return c.Tenant
	case *CreateTenant:
		return c.ID
	case *SetTenantQuota:
		return c.ID
	}
	return ""
}

// Result is what applying one command produced. Err carries an
// application-level refusal (not found, conflict, stale lease); it travels
// back to the proposer and is never a reason to stop applying the log.
type Result struct {
	Err error
	// Index is the log index of the entry that carried the command: a
	// node that has applied it can read what the command wrote.
	Index uint64

	Version     int    // PutWorkflow
	ExecutionID string // StartExecution
	// Execution is, for StartExecution, the execution with its nodes as
	// the command left it when it ended within the command (pure
	// builtins only): the proposer need not read it back. Nil otherwise.
	Execution *storage.Execution
	Created   bool            // StartExecution: false when the idempotency key was used before; RegisterAction: false when the version existed identically
	Tasks     []*storage.Task // ClaimTasks
	Accepted  bool            // CompleteTask, RenewLease: the token still held the lease
	Reclaimed int             // ReclaimTasks
	Fired     int             // FireTimers
	// Continued is how many deferred executions a Continue advanced, and
	// Deferred how many are left deferred after it.
	Continued, Deferred int
}

// Event tells observers what an applied command changed; events are
// published only after the transaction that made them committed.
type Event struct {
	Kind        EventKind
	Tenant      string
	ExecutionID string
	// Status is the execution's new status, on EventExecutionFinished:
	// observers that count outcomes need not read the store.
	Status string
}

// EventKind names what happened.
type EventKind uint8

const (
	// EventTasksReady: new tasks wait for workers.
	EventTasksReady EventKind = iota + 1
	// EventExecutionChanged: an execution's status or nodes changed.
	EventExecutionChanged
	// EventExecutionFinished: an execution reached a terminal status.
	EventExecutionFinished
	// EventTimersChanged: a timer was created; the earliest due may be
	// sooner than the timer loop thought.
	EventTimersChanged
	// EventExecutionStarted: an execution began running, when created or
	// when a concurrency slot freed for it.
	EventExecutionStarted
	// EventWorkflowsChanged: a workflow was saved or deleted (triggers
	// may have changed).
	EventWorkflowsChanged
	// EventTenantsChanged: a tenant was created (the trigger index must
	// cover it).
	EventTenantsChanged
	// EventDeferred: an execution has work left for a Continue command.
	EventDeferred
)
