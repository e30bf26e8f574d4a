package storage

import (
	"context"
	"errors"
)

// SecretsStore seals secret values (credential data) before they enter the
// replicated state, and opens them where they are used. Sealed values name
// the key that sealed them, so keys can be rotated without downtime; the
// tenant and the credential's name are bound to the ciphertext, so a
// sealed value copied to another credential does not open.
type SecretsStore interface {
	Seal(ctx context.Context, tenant, name string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, tenant, name string, sealed []byte) ([]byte, error)
	// Current reports whether sealed was sealed with the key that seals
	// now; a key rotation re-seals the values for which it is false.
	Current(sealed []byte) bool
}

// ErrSealed reports a sealed value that cannot be opened: a wrong or
// unknown key, another credential's value, or tampering.
var ErrSealed = errors.New("sealed value cannot be opened")
