// Package storage defines the ports through which Nebula reads and writes
// durable state: workflows, executions with their journal and tasks,
// credentials, the registry of community actions, and tenants with their
// tokens. Drivers (storage/sqlite, later storage/postgres and the
// Raft-replicated store) implement these interfaces, and every driver must
// pass the conformance suite in storage/storagetest.
//
// Records here are plain data: statuses are strings whose meaning (and
// allowed transitions) belongs to the engine, and JSON payloads are kept as
// json.RawMessage so that storage never needs the workflow model.
package storage

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors. Drivers translate their own errors into these at the
// boundary so callers can check them with errors.Is.
var (
	// ErrNotFound reports that the addressed object does not exist (for
	// the caller's tenant).
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that a write collides with existing state, such
	// as an execution id that is already taken.
	ErrConflict = errors.New("conflict")
	// ErrNoLeader reports that a write could not be made because the
	// replicated store has no leader (an election is under way, or the
	// node is cut off from a quorum).
	ErrNoLeader = errors.New("no leader")
	// ErrUnavailable reports that the store cannot serve the request now;
	// retrying later may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrInvalidCursor reports a list cursor that this store did not make.
	ErrInvalidCursor = errors.New("invalid cursor")
)

// Workflow is one stored version of a workflow definition.
type Workflow struct {
	TenantID   string
	ID         string
	Version    int
	Name       string
	Definition json.RawMessage // canonical JSON of the definition
	CreatedAt  time.Time
}

// Page selects one page of a list. Cursor is opaque and comes from the
// previous page's next cursor; an empty cursor starts from the beginning.
type Page struct {
	Cursor string
	Limit  int
}

// WorkflowRepo stores workflow definitions. Saving an id that exists makes a
// new version; executions keep the version they started with.
type WorkflowRepo interface {
	// PutWorkflow stores w as the next version of (w.TenantID, w.ID) and
	// sets w.Version to it (1 for a new id).
	PutWorkflow(ctx context.Context, w *Workflow) error
	// GetWorkflow returns one version; version 0 means the latest.
	// A deleted workflow is ErrNotFound.
	GetWorkflow(ctx context.Context, tenant, id string, version int) (*Workflow, error)
	// ListWorkflows returns the latest version of each workflow, ordered by
	// id, and the cursor of the next page ("" when this is the last).
	ListWorkflows(ctx context.Context, tenant string, page Page) ([]*Workflow, string, error)
	// DeleteWorkflow hides the workflow from Get and List. Stored versions
	// stay readable by executions that reference them through
	// GetWorkflowVersion.
	DeleteWorkflow(ctx context.Context, tenant, id string) error
	// GetWorkflowVersion returns an exact version even when the workflow
	// was deleted afterwards.
	GetWorkflowVersion(ctx context.Context, tenant, id string, version int) (*Workflow, error)
	// CountWorkflows returns how many workflows the tenant has (deleted
	// ones aside), counting no further than limit.
	CountWorkflows(ctx context.Context, tenant string, limit int) (int, error)
}

// NodeState is the state of one node of an execution.
type NodeState struct {
	ID         string
	Status     string
	Attempts   int
	Output     json.RawMessage // nil when none
	Error      string
	StartedAt  time.Time // zero until the first attempt
	FinishedAt time.Time // zero until terminal
}

// Execution is one run of a workflow version.
type Execution struct {
	TenantID        string
	ID              string
	WorkflowID      string
	WorkflowVersion int
	Status          string
	Input           json.RawMessage
	Output          json.RawMessage // nil when none
	Error           string
	IdempotencyKey  string // "" when none
	// ParentID and ParentNode name the execution and node whose
	// builtin.subworkflow started this one; "" for a top-level one.
	ParentID   string
	ParentNode string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time // zero until terminal
	// Nodes is filled by GetExecution; it is keyed by node id.
	Nodes map[string]*NodeState
}

// JournalEntry is one entry of an execution's append-only journal. Seq is
// assigned by the store: 1, 2, 3... per execution, in append order.
type JournalEntry struct {
	Seq            int64
	Type           string
	At             time.Time
	Node           string // "" for execution-level entries
	Attempt        int    // 0 for execution-level entries
	IdempotencyKey string
	// Data holds the type-specific fields (input, inputs, output, error)
	// as a JSON object.
	Data json.RawMessage
}

// ExecutionFilter narrows ListExecutions; empty fields match everything.
type ExecutionFilter struct {
	WorkflowID string
	Status     string
}

// Task is one scheduled attempt of one node, waiting for a worker or held by
// one under a lease.
type Task struct {
	TenantID    string
	ID          string // the attempt's idempotency key: execution/node/attempt
	ExecutionID string
	Node        string
	Attempt     int
	Action      string
	Params      json.RawMessage // resolved parameters
	// Timeout bounds one attempt; the worker enforces it. 0 means the
	// worker's default.
	Timeout   time.Duration
	CreatedAt time.Time
	// Lease; zero values when the task is not leased.
	LeaseHolder  string
	LeaseToken   uint64
	LeaseExpires time.Time
}

// Lease is a claim of a task by a holder until Expires. Token is a fencing
// token: it increases with every grant (the Raft index of the claim in the
// replicated store), and every completion or heartbeat must present it.
type Lease struct {
	Holder  string
	Token   uint64
	Expires time.Time
}

// ExecutionRepo stores executions, their node states and journals, and the
// tasks of their running attempts.
type ExecutionRepo interface {
	// CreateExecution inserts e (with its Nodes, if any) and appends first
	// to its journal in one transaction. When e.IdempotencyKey is set and an
	// execution of the same tenant and workflow already used that key, it
	// inserts nothing and returns the existing execution with created=false.
	// An id that is already taken is ErrConflict.
	CreateExecution(ctx context.Context, e *Execution, first JournalEntry) (existing *Execution, created bool, err error)
	// GetExecution returns the execution with its node states.
	GetExecution(ctx context.Context, tenant, id string) (*Execution, error)
	// ListExecutions returns executions in creation order (node states not
	// filled) and the cursor of the next page.
	ListExecutions(ctx context.Context, tenant string, f ExecutionFilter, page Page) ([]*Execution, string, error)
	// Transition moves the execution from one status to another only if it
	// is still in from, and appends entry to its journal in the same
	// transaction. update, when non-nil, is applied to the stored record
	// (output, error, finished_at) in that transaction too. It reports
	// false, with nothing written, when the execution is not in from: a
	// lost CAS is a result, not an error. A missing execution is
	// ErrNotFound.
	Transition(ctx context.Context, tenant, id, from, to string, entry JournalEntry, update *ExecutionUpdate) (bool, error)
	// PutNode inserts or replaces the state of one node.
	PutNode(ctx context.Context, tenant, executionID string, n *NodeState) error
	// AppendJournal appends e and returns its sequence number.
	AppendJournal(ctx context.Context, tenant, executionID string, e JournalEntry) (int64, error)
	// Journal returns entries with Seq > afterSeq in order, at most limit
	// (all when limit <= 0).
	Journal(ctx context.Context, tenant, executionID string, afterSeq int64, limit int) ([]JournalEntry, error)

	// CreateTask inserts an unleased task. A task id that exists is
	// ErrConflict.
	CreateTask(ctx context.Context, t *Task) error
	// GetTask returns a task by id (any tenant: ids are global).
	GetTask(ctx context.Context, id string) (*Task, error)
	// ReadyTasks returns up to limit unleased tasks, oldest first.
	ReadyTasks(ctx context.Context, limit int) ([]*Task, error)
	// AcquireLease grants l on the task if it is unleased, or its lease
	// expired at or before now. It reports whether the lease was granted.
	AcquireLease(ctx context.Context, taskID string, l Lease, now time.Time) (bool, error)
	// RenewLease moves the expiry of a lease the holder still owns, checked
	// by token; it reports false when the token no longer matches.
	RenewLease(ctx context.Context, taskID string, token uint64, expires time.Time) (bool, error)
	// FindStaleLeases returns up to limit leased tasks whose lease expired
	// at or before now, oldest expiry first.
	FindStaleLeases(ctx context.Context, now time.Time, limit int) ([]*Task, error)
	// LeasedTasks returns up to limit leased tasks whose holder starts with
	// holderPrefix, ordered by task id.
	LeasedTasks(ctx context.Context, holderPrefix string, limit int) ([]*Task, error)
	// DeleteTask removes a task. When token is non-zero the task must hold
	// a lease with that token; it reports false, with nothing removed, when
	// the task is missing or the token does not match.
	DeleteTask(ctx context.Context, taskID string, token uint64) (bool, error)
	// DeleteExecutionTasks removes every task of an execution (when it ends
	// or is cancelled) and returns how many there were.
	DeleteExecutionTasks(ctx context.Context, tenant, executionID string) (int, error)

	// ChildExecutions returns the executions whose ParentID is parentID,
	// in creation order (node states not filled).
	ChildExecutions(ctx context.Context, tenant, parentID string) ([]*Execution, error)
	// PendingExecutions returns up to limit executions in status
	// "pending", of every tenant, oldest first (all when limit <= 0).
	PendingExecutions(ctx context.Context, limit int) ([]*Execution, error)
	// CountExecutions returns how many executions of every tenant are in
	// status.
	CountExecutions(ctx context.Context, status string) (int, error)
	// ExecutionByKey returns the execution of a workflow started with an
	// idempotency key (node states not filled), or ErrNotFound.
	ExecutionByKey(ctx context.Context, tenant, workflowID, key string) (*Execution, error)
	// CountActiveExecutions returns how many of the tenant's executions
	// are pending or running, counting no further than limit.
	CountActiveExecutions(ctx context.Context, tenant string, limit int) (int, error)
	// StoredBytes returns what the tenant's node outputs and action
	// modules take: an output kept in the blob store counts its size.
	StoredBytes(ctx context.Context, tenant string) (int64, error)
	// NthRecentExecution returns when the tenant's n-th most recent
	// execution was created; ok is false when it has fewer than n.
	NthRecentExecution(ctx context.Context, tenant string, n int) (created time.Time, ok bool, err error)

	// DeferExecution records that an execution has work left for a later
	// command: the state machine bounds the work one log entry may do.
	// seq, which only grows, orders it among its tenant's deferred
	// executions; one deferred already keeps its place.
	DeferExecution(ctx context.Context, tenant, executionID string, seq uint64) error
	// DeferredExecutions returns up to limit deferred executions with
	// tenants taking turns: the oldest of each tenant, then the second
	// oldest of each, and so on (by seq within a turn; ties, which one
	// command deferring several makes, by tenant and execution id).
	DeferredExecutions(ctx context.Context, limit int) ([]Deferred, error)
	// ResumeExecution removes an execution's deferral and reports whether
	// there was one.
	ResumeExecution(ctx context.Context, tenant, executionID string) (bool, error)
	// CountDeferred returns how many executions are deferred.
	CountDeferred(ctx context.Context) (int, error)

	// CreateTimer inserts a timer; an id that exists is ErrConflict.
	CreateTimer(ctx context.Context, t *Timer) error
	// DueTimers returns up to limit timers with DueAt at or before now,
	// ordered by DueAt then ID (all when limit <= 0).
	DueTimers(ctx context.Context, now time.Time, limit int) ([]*Timer, error)
	// NextTimer returns the timer due first (ties by ID); ErrNotFound
	// when there is none.
	NextTimer(ctx context.Context) (*Timer, error)
	// DeleteTimer removes a timer and reports whether it existed.
	DeleteTimer(ctx context.Context, id string) (bool, error)
	// DeleteExecutionTimers removes every timer of an execution and
	// returns how many there were.
	DeleteExecutionTimers(ctx context.Context, tenant, executionID string) (int, error)
}

// Deferred is an execution with work left for a later command.
type Deferred struct {
	TenantID    string
	ExecutionID string
	Seq         uint64
}

// Timer is a durable timer: state that says something must happen at DueAt
// (a retry after its backoff, the end of a delay, a timeout). Timers hold
// no goroutine: the leader watches the earliest one and, once it is due,
// proposes to fire every due timer.
type Timer struct {
	TenantID string
	// ID is unique, and made from what the timer is for (kind, execution,
	// node, attempt), so that one purpose never gets two timers.
	ID          string
	ExecutionID string
	Node        string // "" for execution-level timers
	Attempt     int
	Kind        string
	DueAt       time.Time
}

// ExecutionUpdate carries the fields a transition may set besides status.
type ExecutionUpdate struct {
	Output     json.RawMessage
	Error      string
	FinishedAt time.Time
}

// Credential is a named secret. Data is ciphertext: storage never sees the
// plain value.
type Credential struct {
	TenantID  string
	Name      string
	Type      string
	Data      []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// CredentialRepo stores credentials.
type CredentialRepo interface {
	// PutCredential inserts or replaces the credential (tenant, name).
	PutCredential(ctx context.Context, c *Credential) error
	GetCredential(ctx context.Context, tenant, name string) (*Credential, error)
	// ListCredentials returns credentials ordered by name.
	ListCredentials(ctx context.Context, tenant string) ([]*Credential, error)
	// ListAllCredentials returns every tenant's credentials, by tenant
	// then name: a key rotation re-seals them all.
	ListAllCredentials(ctx context.Context) ([]*Credential, error)
	DeleteCredential(ctx context.Context, tenant, name string) error
}

// Action is one version of a community action: a WebAssembly module kept
// in the blob store, with the capabilities it was registered with.
type Action struct {
	TenantID string
	// ID names the action, e.g. "community.wordcount".
	ID string
	// Version is MAJOR.MINOR.PATCH with an optional -prerelease (see
	// ValidateActionVersion).
	Version string
	// Capabilities are what the module may use; the engine stores them
	// sorted and without duplicates.
	Capabilities []string
	// ModuleRef is the module's blob reference, BlobRef(module).
	ModuleRef string
	// Size is the module's length in bytes.
	Size      int64
	CreatedAt time.Time
}

// ActionRepo stores the versions of community actions. Versions are
// immutable and never deleted: an execution that ran one can always name
// what it ran.
type ActionRepo interface {
	// PutAction inserts a. Putting a version that exists with the same
	// ModuleRef and capabilities (in any order) is a no-op that succeeds;
	// with anything else it is an error wrapping ErrConflict.
	PutAction(ctx context.Context, a *Action) error
	// GetAction returns one version of an action; version "" means the
	// highest by semantic-version precedence (CompareActionVersions).
	// A missing action or version is ErrNotFound.
	GetAction(ctx context.Context, tenant, id, version string) (*Action, error)
	// ListActions returns every version of every action, ordered by id
	// then version (byte order, not precedence), and the cursor of the
	// next page ("" when this is the last).
	ListActions(ctx context.Context, tenant string, page Page) ([]*Action, string, error)
}

// SettingsRepo stores engine-wide settings that must be the same on every
// replica (limits the state machine enforces), as integers by key.
type SettingsRepo interface {
	// Setting returns the value of key, or def when it was never set.
	Setting(ctx context.Context, key string, def int64) (int64, error)
	// PutSetting sets key.
	PutSetting(ctx context.Context, key string, value int64) error
}

// DefaultTenant is the tenant every store holds from the start: the one
// every request acts for when auth is off. It has no quota until one is
// set, and cannot be created again.
const DefaultTenant = "default"

// Quota bounds what a tenant may use; 0 means unlimited. The engine's
// state machine enforces it.
type Quota struct {
	MaxWorkflows            int64 `json:"max_workflows"`
	MaxConcurrentExecutions int64 `json:"max_concurrent_executions"`
	MaxExecutionsPerHour    int64 `json:"max_executions_per_hour"`
	MaxStorageMB            int64 `json:"max_storage_mb"`
}

// Tenant is one tenant: a partition of every other kind of object.
type Tenant struct {
	ID        string
	Name      string
	Quota     Quota
	CreatedAt time.Time // zero for the default tenant
}

// Token is one API token of a tenant. Only the hash of the token is
// stored; the token itself is shown once, when it is made.
type Token struct {
	ID       string
	TenantID string
	// Hash is the hex SHA-256 of the whole token.
	Hash      string
	CreatedAt time.Time
	// RevokedAt is the zero time while the token is active.
	RevokedAt time.Time
}

// TenantRepo stores tenants and their tokens. The tenant DefaultTenant
// exists in every store from the start.
type TenantRepo interface {
	// CreateTenant inserts t; an id that exists is ErrConflict.
	CreateTenant(ctx context.Context, t *Tenant) error
	// GetTenant returns a tenant, or ErrNotFound.
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	// ListTenants returns the tenants, DefaultTenant first and the others
	// ordered by id, and the cursor of the next page ("" when this is
	// the last).
	ListTenants(ctx context.Context, page Page) ([]*Tenant, string, error)
	// SetTenantQuota replaces a tenant's quota; a missing tenant is
	// ErrNotFound.
	SetTenantQuota(ctx context.Context, id string, q Quota) error
	// PutToken inserts a token of an existing tenant (ErrNotFound
	// otherwise). A token id the tenant already has, or a hash any token
	// has, is ErrConflict.
	PutToken(ctx context.Context, t *Token) error
	// TokenByHash returns the token with that hash, revoked or not, and
	// its tenant; ErrNotFound when there is none.
	TokenByHash(ctx context.Context, hash string) (*Token, *Tenant, error)
	// ListTokens returns a tenant's tokens, revoked ones too, in creation
	// order (ties by id).
	ListTokens(ctx context.Context, tenant string) ([]*Token, error)
	// RevokeToken marks a token revoked at at; revoking it again keeps
	// the first time. A missing token is ErrNotFound.
	RevokeToken(ctx context.Context, tenant, tokenID string, at time.Time) error
}

// Repos groups the repositories a driver provides.
type Repos interface {
	WorkflowRepo
	ExecutionRepo
	CredentialRepo
	ActionRepo
	SettingsRepo
	TenantRepo
}
