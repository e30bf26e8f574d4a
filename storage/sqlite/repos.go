package sqlite

import (
	"context"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// The Store's storage.Repos methods run the Tx method of the same name in a
// transaction of its own: reads in View, on the read pool, and writes in
// Update. The semantics are documented on Tx.

// view runs fn in View and returns its result.
func view[T any](ctx context.Context, s *Store, fn func(*Tx) (T, error)) (T, error) {
	var v T
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	return v, err
}

// update runs fn in Update and returns its result.
func update[T any](ctx context.Context, s *Store, fn func(*Tx) (T, error)) (T, error) {
	var v T
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	return v, err
}

// PutWorkflow implements storage.WorkflowRepo; see Tx.PutWorkflow.
func (s *Store) PutWorkflow(ctx context.Context, w *storage.Workflow) error {
	// w.Version must not change unless the new version is committed.
	stored := *w
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutWorkflow(ctx, &stored) }); err != nil {
		return err
	}
	w.Version = stored.Version
	return nil
}

// GetWorkflow implements storage.WorkflowRepo; see Tx.GetWorkflow.
func (s *Store) GetWorkflow(ctx context.Context, tenant, id string, version int) (*storage.Workflow, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Workflow, error) { return tx.GetWorkflow(ctx, tenant, id, version) })
}

// ListWorkflows implements storage.WorkflowRepo; see Tx.ListWorkflows.
func (s *Store) ListWorkflows(ctx context.Context, tenant string, page storage.Page) ([]*storage.Workflow, string, error) {
	var (
		out  []*storage.Workflow
		next string
	)
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		out, next, err = tx.ListWorkflows(ctx, tenant, page)
		return err
	})
	return out, next, err
}

// DeleteWorkflow implements storage.WorkflowRepo; see Tx.DeleteWorkflow.
func (s *Store) DeleteWorkflow(ctx context.Context, tenant, id string) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.DeleteWorkflow(ctx, tenant, id) })
}

// GetWorkflowVersion implements storage.WorkflowRepo; see
// Tx.GetWorkflowVersion.
func (s *Store) GetWorkflowVersion(ctx context.Context, tenant, id string, version int) (*storage.Workflow, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Workflow, error) { return tx.GetWorkflowVersion(ctx, tenant, id, version) })
}

// CreateExecution implements storage.ExecutionRepo; see Tx.CreateExecution.
func (s *Store) CreateExecution(ctx context.Context, e *storage.Execution, first storage.JournalEntry) (*storage.Execution, bool, error) {
	var (
		existing *storage.Execution
		created  bool
	)
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		existing, created, err = tx.CreateExecution(ctx, e, first)
		return err
	})
	return existing, created, err
}

// GetExecution implements storage.ExecutionRepo; see Tx.GetExecution.
func (s *Store) GetExecution(ctx context.Context, tenant, id string) (*storage.Execution, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Execution, error) { return tx.GetExecution(ctx, tenant, id) })
}

// ListExecutions implements storage.ExecutionRepo; see Tx.ListExecutions.
func (s *Store) ListExecutions(ctx context.Context, tenant string, f storage.ExecutionFilter, page storage.Page) ([]*storage.Execution, string, error) {
	var (
		out  []*storage.Execution
		next string
	)
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		out, next, err = tx.ListExecutions(ctx, tenant, f, page)
		return err
	})
	return out, next, err
}

// Transition implements storage.ExecutionRepo; see Tx.Transition.
func (s *Store) Transition(ctx context.Context, tenant, id, from, to string, entry storage.JournalEntry, upd *storage.ExecutionUpdate) (bool, error) {
	return update(ctx, s, func(tx *Tx) (bool, error) { return tx.Transition(ctx, tenant, id, from, to, entry, upd) })
}

// PutNode implements storage.ExecutionRepo; see Tx.PutNode.
func (s *Store) PutNode(ctx context.Context, tenant, executionID string, n *storage.NodeState) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.PutNode(ctx, tenant, executionID, n) })
}

// AppendJournal implements storage.ExecutionRepo; see Tx.AppendJournal.
func (s *Store) AppendJournal(ctx context.Context, tenant, executionID string, e storage.JournalEntry) (int64, error) {
	return update(ctx, s, func(tx *Tx) (int64, error) { return tx.AppendJournal(ctx, tenant, executionID, e) })
}

// Journal implements storage.ExecutionRepo; see Tx.Journal.
func (s *Store) Journal(ctx context.Context, tenant, executionID string, afterSeq int64, limit int) ([]storage.JournalEntry, error) {
	return view(ctx, s, func(tx *Tx) ([]storage.JournalEntry, error) {
		return tx.Journal(ctx, tenant, executionID, afterSeq, limit)
	})
}

// CreateTask implements storage.ExecutionRepo; see Tx.CreateTask.
func (s *Store) CreateTask(ctx context.Context, t *storage.Task) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.CreateTask(ctx, t) })
}

// GetTask implements storage.ExecutionRepo; see Tx.GetTask.
func (s *Store) GetTask(ctx context.Context, id string) (*storage.Task, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Task, error) { return tx.GetTask(ctx, id) })
}

// ReadyTasks implements storage.ExecutionRepo; see Tx.ReadyTasks.
func (s *Store) ReadyTasks(ctx context.Context, limit int) ([]*storage.Task, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Task, error) { return tx.ReadyTasks(ctx, limit) })
}

// AcquireLease implements storage.ExecutionRepo; see Tx.AcquireLease.
func (s *Store) AcquireLease(ctx context.Context, taskID string, l storage.Lease, now time.Time) (bool, error) {
	return update(ctx, s, func(tx *Tx) (bool, error) { return tx.AcquireLease(ctx, taskID, l, now) })
}

// RenewLease implements storage.ExecutionRepo; see Tx.RenewLease.
func (s *Store) RenewLease(ctx context.Context, taskID string, token uint64, expires time.Time) (bool, error) {
	return update(ctx, s, func(tx *Tx) (bool, error) { return tx.RenewLease(ctx, taskID, token, expires) })
}

// FindStaleLeases implements storage.ExecutionRepo; see Tx.FindStaleLeases.
func (s *Store) FindStaleLeases(ctx context.Context, now time.Time, limit int) ([]*storage.Task, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Task, error) { return tx.FindStaleLeases(ctx, now, limit) })
}

// LeasedTasks implements storage.ExecutionRepo; see Tx.LeasedTasks.
func (s *Store) LeasedTasks(ctx context.Context, holderPrefix string, limit int) ([]*storage.Task, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Task, error) { return tx.LeasedTasks(ctx, holderPrefix, limit) })
}

// DeleteTask implements storage.ExecutionRepo; see Tx.DeleteTask.
func (s *Store) DeleteTask(ctx context.Context, taskID string, token uint64) (bool, error) {
	return update(ctx, s, func(tx *Tx) (bool, error) { return tx.DeleteTask(ctx, taskID, token) })
}

// DeleteExecutionTasks implements storage.ExecutionRepo; see
// Tx.DeleteExecutionTasks.
func (s *Store) DeleteExecutionTasks(ctx context.Context, tenant, executionID string) (int, error) {
	return update(ctx, s, func(tx *Tx) (int, error) { return tx.DeleteExecutionTasks(ctx, tenant, executionID) })
}

// ChildExecutions implements storage.ExecutionRepo; see Tx.ChildExecutions.
func (s *Store) ChildExecutions(ctx context.Context, tenant, parentID string) ([]*storage.Execution, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Execution, error) { return tx.ChildExecutions(ctx, tenant, parentID) })
}

// PendingExecutions implements storage.ExecutionRepo; see
// Tx.PendingExecutions.
func (s *Store) PendingExecutions(ctx context.Context, limit int) ([]*storage.Execution, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Execution, error) { return tx.PendingExecutions(ctx, limit) })
}

// ExecutionByKey implements storage.ExecutionRepo.
func (s *Store) ExecutionByKey(ctx context.Context, tenant, workflowID, key string) (*storage.Execution, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Execution, error) { return tx.ExecutionByKey(ctx, tenant, workflowID, key) })
}

// StoredBytes implements storage.ExecutionRepo.
func (s *Store) StoredBytes(ctx context.Context, tenant string) (int64, error) {
	return view(ctx, s, func(tx *Tx) (int64, error) { return tx.StoredBytes(ctx, tenant) })
}

// CountActiveExecutions implements storage.ExecutionRepo.
func (s *Store) CountActiveExecutions(ctx context.Context, tenant string, limit int) (int, error) {
	return view(ctx, s, func(tx *Tx) (int, error) { return tx.CountActiveExecutions(ctx, tenant, limit) })
}

// NthRecentExecution implements storage.ExecutionRepo.
func (s *Store) NthRecentExecution(ctx context.Context, tenant string, n int) (time.Time, bool, error) {
	var (
		at time.Time
		ok bool
	)
	err := s.View(ctx, func(tx *Tx) (err error) {
		at, ok, err = tx.NthRecentExecution(ctx, tenant, n)
		return err
	})
	return at, ok, err
}

// CountWorkflows implements storage.WorkflowRepo.
func (s *Store) CountWorkflows(ctx context.Context, tenant string, limit int) (int, error) {
	return view(ctx, s, func(tx *Tx) (int, error) { return tx.CountWorkflows(ctx, tenant, limit) })
}

// CountExecutions implements storage.ExecutionRepo; see Tx.CountExecutions.
func (s *Store) CountExecutions(ctx context.Context, status string) (int, error) {
	return view(ctx, s, func(tx *Tx) (int, error) { return tx.CountExecutions(ctx, status) })
}

// CreateTimer implements storage.ExecutionRepo; see Tx.CreateTimer.
func (s *Store) CreateTimer(ctx context.Context, t *storage.Timer) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.CreateTimer(ctx, t) })
}

// DueTimers implements storage.ExecutionRepo; see Tx.DueTimers.
func (s *Store) DueTimers(ctx context.Context, now time.Time, limit int) ([]*storage.Timer, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Timer, error) { return tx.DueTimers(ctx, now, limit) })
}

// NextTimer implements storage.ExecutionRepo; see Tx.NextTimer.
func (s *Store) NextTimer(ctx context.Context) (*storage.Timer, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Timer, error) { return tx.NextTimer(ctx) })
}

// DeleteTimer implements storage.ExecutionRepo; see Tx.DeleteTimer.
func (s *Store) DeleteTimer(ctx context.Context, id string) (bool, error) {
	return update(ctx, s, func(tx *Tx) (bool, error) { return tx.DeleteTimer(ctx, id) })
}

// DeleteExecutionTimers implements storage.ExecutionRepo; see
// Tx.DeleteExecutionTimers.
func (s *Store) DeleteExecutionTimers(ctx context.Context, tenant, executionID string) (int, error) {
	return update(ctx, s, func(tx *Tx) (int, error) { return tx.DeleteExecutionTimers(ctx, tenant, executionID) })
}

// DeferExecution implements storage.ExecutionRepo; see Tx.DeferExecution.
func (s *Store) DeferExecution(ctx context.Context, tenant, executionID string, seq uint64) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.DeferExecution(ctx, tenant, executionID, seq) })
}

// DeferredExecutions implements storage.ExecutionRepo; see
// Tx.DeferredExecutions.
func (s *Store) DeferredExecutions(ctx context.Context, limit int) ([]storage.Deferred, error) {
	return view(ctx, s, func(tx *Tx) ([]storage.Deferred, error) { return tx.DeferredExecutions(ctx, limit) })
}

// ResumeExecution implements storage.ExecutionRepo; see Tx.ResumeExecution.
func (s *Store) ResumeExecution(ctx context.Context, tenant, executionID string) (bool, error) {
	return update(ctx, s, func(tx *Tx) (bool, error) { return tx.ResumeExecution(ctx, tenant, executionID) })
}

// CountDeferred implements storage.ExecutionRepo; see Tx.CountDeferred.
func (s *Store) CountDeferred(ctx context.Context) (int, error) {
	return view(ctx, s, func(tx *Tx) (int, error) { return tx.CountDeferred(ctx) })
}

// PutCredential implements storage.CredentialRepo; see Tx.PutCredential.
func (s *Store) PutCredential(ctx context.Context, c *storage.Credential) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.PutCredential(ctx, c) })
}

// GetCredential implements storage.CredentialRepo; see Tx.GetCredential.
func (s *Store) GetCredential(ctx context.Context, tenant, name string) (*storage.Credential, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Credential, error) { return tx.GetCredential(ctx, tenant, name) })
}

// ListAllCredentials implements storage.CredentialRepo; see
// Tx.ListAllCredentials.
func (s *Store) ListAllCredentials(ctx context.Context) ([]*storage.Credential, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Credential, error) { return tx.ListAllCredentials(ctx) })
}

// ListCredentials implements storage.CredentialRepo; see Tx.ListCredentials.
func (s *Store) ListCredentials(ctx context.Context, tenant string) ([]*storage.Credential, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Credential, error) { return tx.ListCredentials(ctx, tenant) })
}

// DeleteCredential implements storage.CredentialRepo; see
// Tx.DeleteCredential.
func (s *Store) DeleteCredential(ctx context.Context, tenant, name string) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.DeleteCredential(ctx, tenant, name) })
}

// PutAction implements storage.ActionRepo; see Tx.PutAction.
func (s *Store) PutAction(ctx context.Context, a *storage.Action) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.PutAction(ctx, a) })
}

// GetAction implements storage.ActionRepo; see Tx.GetAction.
func (s *Store) GetAction(ctx context.Context, tenant, id, version string) (*storage.Action, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Action, error) { return tx.GetAction(ctx, tenant, id, version) })
}

// ListActions implements storage.ActionRepo; see Tx.ListActions.
func (s *Store) ListActions(ctx context.Context, tenant string, page storage.Page) ([]*storage.Action, string, error) {
	var (
		out  []*storage.Action
		next string
	)
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		out, next, err = tx.ListActions(ctx, tenant, page)
		return err
	})
	return out, next, err
}

// Setting implements storage.SettingsRepo; see Tx.Setting.
func (s *Store) Setting(ctx context.Context, key string, def int64) (int64, error) {
	return view(ctx, s, func(tx *Tx) (int64, error) { return tx.Setting(ctx, key, def) })
}

// PutSetting implements storage.SettingsRepo; see Tx.PutSetting.
func (s *Store) PutSetting(ctx context.Context, key string, value int64) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.PutSetting(ctx, key, value) })
}

// CreateTenant implements storage.TenantRepo; see Tx.CreateTenant.
func (s *Store) CreateTenant(ctx context.Context, t *storage.Tenant) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.CreateTenant(ctx, t) })
}

// GetTenant implements storage.TenantRepo; see Tx.GetTenant.
func (s *Store) GetTenant(ctx context.Context, id string) (*storage.Tenant, error) {
	return view(ctx, s, func(tx *Tx) (*storage.Tenant, error) { return tx.GetTenant(ctx, id) })
}

// ListTenants implements storage.TenantRepo; see Tx.ListTenants.
func (s *Store) ListTenants(ctx context.Context, page storage.Page) ([]*storage.Tenant, string, error) {
	var (
		out  []*storage.Tenant
		next string
	)
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		out, next, err = tx.ListTenants(ctx, page)
		return err
	})
	return out, next, err
}

// SetTenantQuota implements storage.TenantRepo; see Tx.SetTenantQuota.
func (s *Store) SetTenantQuota(ctx context.Context, id string, q storage.Quota) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.SetTenantQuota(ctx, id, q) })
}

// PutToken implements storage.TenantRepo; see Tx.PutToken.
func (s *Store) PutToken(ctx context.Context, t *storage.Token) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.PutToken(ctx, t) })
}

// TokenByHash implements storage.TenantRepo; see Tx.TokenByHash.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*storage.Token, *storage.Tenant, error) {
	var (
		k *storage.Token
		t *storage.Tenant
	)
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		k, t, err = tx.TokenByHash(ctx, hash)
		return err
	})
	return k, t, err
}

// ListTokens implements storage.TenantRepo; see Tx.ListTokens.
func (s *Store) ListTokens(ctx context.Context, tenant string) ([]*storage.Token, error) {
	return view(ctx, s, func(tx *Tx) ([]*storage.Token, error) { return tx.ListTokens(ctx, tenant) })
}

// RevokeToken implements storage.TenantRepo; see Tx.RevokeToken.
func (s *Store) RevokeToken(ctx context.Context, tenant, tokenID string, at time.Time) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.RevokeToken(ctx, tenant, tokenID, at) })
}
