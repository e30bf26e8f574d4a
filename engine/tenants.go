package engine

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/tenant"
)

// Tenants partition every other object. Each has API tokens of its own,
// made by the proposer (crypto/rand) and kept in the state only as hashes;
// quotas are stored here and enforced where executions and workflows are
// created.

// maxTenantName bounds a tenant's display name.
const maxTenantName = 200

// checkTenantID validates a tenant id for a command.
func checkTenantID(id string) error {
	if err := tenant.ValidateID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTenant, err)
	}
	return nil
}

// checkQuota refuses negative limits; 0 is unlimited.
func checkQuota(q storage.Quota) error {
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"max_workflows", q.MaxWorkflows},
		{"max_concurrent_executions", q.MaxConcurrentExecutions},
		{"max_executions_per_hour", q.MaxExecutionsPerHour},
		{"max_storage_mb", q.MaxStorageMB},
	} {
		if f.value < 0 {
			return fmt.Errorf("%w: quota %s must not be negative (0 is unlimited), got %d", ErrInvalidTenant, f.name, f.value)
		}
	}
	return nil
}

// checkTokenFields refuses a token command the proposer could not have
// made: the state must never hold a token no one can present.
func checkTokenFields(id, hash string) error {
	if len(id) == 0 || len(id) > 64 || len(hash) != 64 {
		return fmt.Errorf("%w: malformed token id %q or hash", ErrInvalidTenant, id)
	}
	return nil
}

func (a *applier) createTenant(c *CreateTenant) (Result, error) {
	if err := checkTenantID(c.ID); err != nil {
		return Result{Err: err}, nil
	}
	if err := checkQuota(c.Quota); err != nil {
		return Result{Err: err}, nil
	}
	if err := checkTokenFields(c.TokenID, c.TokenHash); err != nil {
		return Result{Err: err}, nil
	}
	// Every refusal is found before the first write: a command is applied
	// whole or not at all, and the tenant must not be left without its
	// token.
	if _, err := a.tx.GetTenant(a.ctx, c.ID); err == nil {
		return Result{Err: fmt.Errorf("tenant %q exists: %w", c.ID, storage.ErrConflict)}, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return Result{}, err
	}
	if refusal, err := a.tokenHashTaken(c.TokenHash); err != nil || refusal != nil {
		return Result{Err: refusal}, err
	}
	if err := a.tx.CreateTenant(a.ctx, &storage.Tenant{ID: c.ID, Name: c.Name, Quota: c.Quota, CreatedAt: a.st.Now}); err != nil {
		return Result{}, err
	}
	if err := a.tx.PutToken(a.ctx, &storage.Token{ID: c.TokenID, TenantID: c.ID, Hash: c.TokenHash, CreatedAt: a.st.Now}); err != nil {
		return Result{}, err
	}
	a.emit(EventTenantsChanged, c.ID, "")
	return Result{}, a.trackUsage(c.ID, c.Quota)
}

// tokenHashTaken refuses a hash some token has already; with 256-bit
// secrets that is a replayed command, never a collision.
func (a *applier) tokenHashTaken(hash string) (refusal, err error) {
	_, _, err = a.tx.TokenByHash(a.ctx, hash)
	switch {
	case err == nil:
		return fmt.Errorf("token hash in use: %w", storage.ErrConflict), nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	}
	return nil, err
}

func (a *applier) setTenantQuota(c *SetTenantQuota) (Result, error) {
	if err := checkQuota(c.Quota); err != nil {
		return Result{Err: err}, nil
	}
	err := a.tx.SetTenantQuota(a.ctx, c.ID, c.Quota)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	if err != nil {
		return Result{}, err
	}
	return Result{}, a.trackUsage(c.ID, c.Quota)
}

func (a *applier) issueToken(c *IssueToken) (Result, error) {
	if err := checkTokenFields(c.TokenID, c.TokenHash); err != nil {
		return Result{Err: err}, nil
	}
	err := a.tx.PutToken(a.ctx, &storage.Token{ID: c.TokenID, TenantID: c.Tenant, Hash: c.TokenHash, CreatedAt: a.st.Now})
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
		return Result{Err: err}, nil
	}
	return Result{}, err
}

func (a *applier) revokeToken(c *RevokeToken) (Result, error) {
	err := a.tx.RevokeToken(a.ctx, c.Tenant, c.TokenID, a.st.Now)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Err: err}, nil
	}
	return Result{}, err
}

// CreateTenant creates a tenant with the given quota and its first token,
// and returns the tenant and the token. The token is shown only here:
// the state keeps its hash. An empty name is the id.
func (s *Service) CreateTenant(ctx context.Context, id, name string, quota storage.Quota) (*storage.Tenant, string, error) {
	if err := checkTenantID(id); err != nil {
		return nil, "", err
	}
	if name == "" {
		name = id
	}
	if len(name) > maxTenantName || !utf8.ValidString(name) {
		return nil, "", fmt.Errorf("%w: name must be UTF-8 text of at most %d bytes", ErrInvalidTenant, maxTenantName)
	}
	if err := checkQuota(quota); err != nil {
		return nil, "", err
	}
	token, tokenID, hash, err := tenant.NewToken()
	if err != nil {
		return nil, "", err
	}
	if _, err := s.submit(ctx, &CreateTenant{ID: id, Name: name, Quota: quota, TokenID: tokenID, TokenHash: hash}); err != nil {
		return nil, "", err
	}
	t, err := s.store.GetTenant(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return t, token, nil
}

// GetTenant returns a tenant.
func (s *Service) GetTenant(ctx context.Context, id string) (*storage.Tenant, error) {
	return s.store.GetTenant(ctx, id)
}

// ListTenants returns a page of tenants, "default" first.
func (s *Service) ListTenants(ctx context.Context, page storage.Page) ([]*storage.Tenant, string, error) {
	return s.store.ListTenants(ctx, page)
}

// SetTenantQuota replaces a tenant's quota and returns the tenant.
func (s *Service) SetTenantQuota(ctx context.Context, id string, quota storage.Quota) (*storage.Tenant, error) {
	if err := checkQuota(quota); err != nil {
		return nil, err
	}
	if _, err := s.submit(ctx, &SetTenantQuota{ID: id, Quota: quota}); err != nil {
		return nil, err
	}
	return s.store.GetTenant(ctx, id)
}

// IssueToken makes a new token for a tenant and returns it, shown only
// here, with its id. Rotating a token is issuing a new one, moving the
// callers to it, then revoking the old one.
func (s *Service) IssueToken(ctx context.Context, tenantID string) (token, tokenID string, err error) {
	token, tokenID, hash, err := tenant.NewToken()
	if err != nil {
		return "", "", err
	}
	if _, err := s.submit(ctx, &IssueToken{Tenant: tenantID, TokenID: tokenID, TokenHash: hash}); err != nil {
		return "", "", err
	}
	return token, tokenID, nil
}

// RevokeToken revokes a tenant's token; a token the tenant does not have
// is storage.ErrNotFound.
func (s *Service) RevokeToken(ctx context.Context, tenantID, tokenID string) error {
	_, err := s.submit(ctx, &RevokeToken{Tenant: tenantID, TokenID: tokenID})
	return err
}

// ListTokens returns a tenant's tokens, revoked ones too, in creation
// order; an unknown tenant is storage.ErrNotFound.
func (s *Service) ListTokens(ctx context.Context, tenantID string) ([]*storage.Token, error) {
	if _, err := s.store.GetTenant(ctx, tenantID); err != nil {
		return nil, err
	}
	return s.store.ListTokens(ctx, tenantID)
}

// Authenticate returns the tenant and token id a tenant token stands for.
// A token that is malformed, unknown or revoked fails wrapping
// ErrUnauthorized.
//
// It reads the local state. A token unknown there may have been made a
// moment ago through another node: one read barrier, and a second look,
// make it work at once on every node. A revocation takes effect on a node
// once that node applied it (milliseconds behind the leader).
func (s *Service) Authenticate(ctx context.Context, token string) (tenantID, tokenID string, err error) {
	id, ok := tenant.TokenID(token)
	if !ok {
		return "", "", fmt.Errorf("%w: not a tenant token", ErrUnauthorized)
	}
	hash := tenant.HashToken(token)
	k, t, err := s.store.TokenByHash(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) && s.barrier != nil {
		if berr := s.barrier.ReadBarrier(ctx); berr != nil {
			return "", "", berr
		}
		k, t, err = s.store.TokenByHash(ctx, hash)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return "", "", fmt.Errorf("%w: unknown token", ErrUnauthorized)
	}
	if err != nil {
		return "", "", err
	}
	if !k.RevokedAt.IsZero() {
		return "", "", fmt.Errorf("%w: token %s was revoked", ErrUnauthorized, k.ID)
	}
	if k.ID != id {
		// The hash matched, so this cannot happen short of a broken
		// state; refuse rather than guess.
		return "", "", fmt.Errorf("%w: token id mismatch", ErrUnauthorized)
	}
	return t.ID, k.ID, nil
}
