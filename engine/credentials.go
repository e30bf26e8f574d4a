package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/nebula-engine/nebula/storage"
)

// ErrInvalidCredential reports a credential whose name, type or data
// cannot be used.
var ErrInvalidCredential = errors.New("invalid credential")

var credentialName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// credentialFields are the string fields each credential type's data must
// have.
var credentialFields = map[string][]string{
	"bearer": {"token"},
	"basic":  {"username", "password"},
	"header": {"name", "value"},
}

// PutCredential checks a credential, seals its data and stores it (a new
// one, or replacing the one of that name). The data never enters the log,
// the state or an answer in plain text.
func (s *Service) PutCredential(ctx context.Context, tenant, name, typ string, data json.RawMessage) (*storage.Credential, error) {
	if !credentialName.MatchString(name) {
		return nil, fmt.Errorf("%w: name %q must be 1-64 characters of letters, digits, '_', '.', '-'", ErrInvalidCredential, name)
	}
	fields, ok := credentialFields[typ]
	if !ok {
		return nil, fmt.Errorf("%w: type %q must be bearer, basic or header", ErrInvalidCredential, typ)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: data must be an object with %v", ErrInvalidCredential, fields)
	}
	for _, f := range fields {
		if v, ok := m[f].(string); !ok || v == "" {
			return nil, fmt.Errorf("%w: %s data needs a non-empty string %q", ErrInvalidCredential, typ, f)
		}
	}
	if len(m) != len(fields) {
		return nil, fmt.Errorf("%w: %s data takes only %v", ErrInvalidCredential, typ, fields)
	}
	if s.secrets == nil {
		return nil, fmt.Errorf("%w: no master key configured", storage.ErrUnavailable)
	}
	sealed, err := s.secrets.Seal(ctx, tenant, name, data)
	if err != nil {
		return nil, err
	}
	if _, err := s.submit(ctx, &PutCredential{Tenant: tenant, Name: name, Type: typ, Sealed: sealed}); err != nil {
		return nil, err
	}
	c, err := s.store.GetCredential(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	c.Data = nil // answers never carry it, sealed or not
	return c, nil
}

// ListCredentials returns the tenant's credentials without their data.
func (s *Service) ListCredentials(ctx context.Context, tenant string) ([]*storage.Credential, error) {
	list, err := s.store.ListCredentials(ctx, tenant)
	for _, c := range list {
		c.Data = nil
	}
	return list, err
}

// DeleteCredential removes a credential.
func (s *Service) DeleteCredential(ctx context.Context, tenant, name string) error {
	_, err := s.submit(ctx, &DeleteCredential{Tenant: tenant, Name: name})
	return err
}

// Credentials opens stored credentials for actions: it reads the sealed
// value from the local state and opens it with the node's keys.
type Credentials struct {
	Store   storage.CredentialRepo
	Secrets storage.SecretsStore
}

// Credential implements CredentialSource.
func (c Credentials) Credential(ctx context.Context, tenant, name string) (string, map[string]string, error) {
	cred, err := c.Store.GetCredential(ctx, tenant, name)
	if err != nil {
		return "", nil, err
	}
	plain, err := c.Secrets.Open(ctx, tenant, name, cred.Data)
	if err != nil {
		return "", nil, err
	}
	var data map[string]string
	if err := json.Unmarshal(plain, &data); err != nil {
		return "", nil, fmt.Errorf("credential %q: %w", name, err)
	}
	return cred.Type, data, nil
}

// KeyRotation is what a key rotation did.
type KeyRotation struct {
	// Resealed counts credentials sealed again under the current key;
	// Current those already under it.
	Resealed, Current int
}

// RotateKey re-seals every tenant's credentials that the current master
// key did not seal, once the operator has made a new key current (keeping
// the old one after it): afterwards the old key can be dropped. It runs
// while the cluster serves: each credential is swapped in its own command,
// and one changed meanwhile is read again. Run it again after a failure;
// it picks up where it stopped.
func (s *Service) RotateKey(ctx context.Context) (KeyRotation, error) {
	if s.secrets == nil {
		return KeyRotation{}, errors.New("credentials: no keys on this node")
	}
	var rot KeyRotation
	for range 5 {
		rot.Current = 0 // counted again by each pass; Resealed adds up
		conflicts := 0
		creds, err := s.store.ListAllCredentials(ctx)
		if err != nil {
			return rot, err
		}
		for _, c := range creds {
			if s.secrets.Current(c.Data) {
				rot.Current++
				continue
			}
			plain, err := s.secrets.Open(ctx, c.TenantID, c.Name, c.Data)
			if err != nil {
				return rot, fmt.Errorf("credential %q of tenant %s: %w", c.Name, c.TenantID, err)
			}
			sealed, err := s.secrets.Seal(ctx, c.TenantID, c.Name, plain)
			clear(plain)
			if err != nil {
				return rot, err
			}
			res, err := s.sub.Submit(ctx, &ResealCredential{Tenant: c.TenantID, Name: c.Name, Expect: c.Data, Sealed: sealed})
			if err != nil {
				return rot, err
			}
			switch {
			case res.Err == nil:
				rot.Resealed++
			case errors.Is(res.Err, storage.ErrConflict), errors.Is(res.Err, storage.ErrNotFound):
				conflicts++ // changed or deleted meanwhile: read again
			default:
				return rot, res.Err
			}
		}
		if conflicts == 0 {
			return rot, nil
		}
	}
	return rot, fmt.Errorf("credentials kept changing during the key rotation: %w", storage.ErrConflict)
}

// TaskCredential opens a credential for the attempt a remote worker runs:
// only while the worker holds the task's lease (token), and only the
// task's own tenant's credential. A lease that no longer holds is
// ErrStaleLease.
func (s *Service) TaskCredential(ctx context.Context, taskID string, token uint64, name string) (string, map[string]string, error) {
	t, err := s.store.GetTask(ctx, taskID)
	if err == nil && t.LeaseToken != token || errors.Is(err, storage.ErrNotFound) {
		// The lease may be newer than this node's state: catch up once.
		if err := s.Consistent(ctx); err != nil {
			return "", nil, err
		}
		t, err = s.store.GetTask(ctx, taskID)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil, ErrStaleLease
	}
	if err != nil {
		return "", nil, err
	}
	if token == 0 || t.LeaseToken != token {
		return "", nil, ErrStaleLease
	}
	if s.secrets == nil {
		return "", nil, errors.New("credentials: no keys on this node")
	}
	return Credentials{Store: s.store, Secrets: s.secrets}.Credential(ctx, t.TenantID, name)
}
