package engine

import "errors"

// Sentinel errors. Functions wrap them with %w and a message that names
// the problem, so callers can map them to API error codes with errors.Is.
var (
	// ErrInvalidWorkflow reports a definition that is well formed but
	// breaks a rule: a bad id, an unknown action, a cycle, an expression
	// that does not compile...
	ErrInvalidWorkflow = errors.New("invalid workflow")
	// ErrMalformed reports a definition that cannot be decoded: a JSON or
	// YAML syntax error, a value of the wrong type, an unknown field.
	ErrMalformed = errors.New("malformed definition")
	// ErrExpression reports an expression that failed at run time, including
	// one that exceeded an evaluation limit.
	ErrExpression = errors.New("expression error")
	// ErrInvalidAction reports a community action that cannot be
	// registered: a bad id, version or capability, a module that is not
	// WebAssembly, does not match its digest, or was refused by the
	// module check.
	ErrInvalidAction = errors.New("invalid action")
	// ErrActionsDisabled reports a registration on a node where community
	// actions are turned off. Its text is the whole message: it names the
	// setting to change.
	ErrActionsDisabled = errors.New("community actions are disabled (sandbox.community_actions.enabled = false)")
	// ErrInvalidTenant reports a tenant request that breaks a rule: a
	// malformed id or name, a negative quota.
	ErrInvalidTenant = errors.New("invalid tenant")
	// ErrUnauthorized reports a token that proves nothing: unknown,
	// malformed or revoked.
	ErrUnauthorized = errors.New("unauthorized")
)
