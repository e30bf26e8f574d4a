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
