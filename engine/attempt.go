package engine

import (
	"context"
	"errors"
	"fmt"
)

// ErrRetryable marks an action error worth another attempt (a network
// failure, a 5xx or 429 answer); any other error fails the attempt for good,
// whatever the node's retry policy says.
var ErrRetryable = errors.New("retryable")

// Retryable wraps err so that errors.Is(err, ErrRetryable) holds.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err: err}
}

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() []error {
	return []error{e.err, ErrRetryable}
}

// Attempt identifies the attempt an action runs for. Actions with effects
// outside Nebula pass Key along (e.g. as an Idempotency-Key header), so the
// other side can tell a re-run attempt from a new request.
type Attempt struct {
	Tenant      string
	ExecutionID string
	Node        string
	Number      int
	Key         string // execution/node/attempt
	// LeaseToken is the token the attempt's task is leased with; a remote
	// worker shows it to fetch what the attempt needs (its credentials).
	LeaseToken uint64
}

type attemptKey struct{}

// WithAttempt returns a context carrying a.
func WithAttempt(ctx context.Context, a Attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// AttemptFrom returns the attempt an action runs for, if ctx carries one.
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	a, ok := ctx.Value(attemptKey{}).(Attempt)
	return a, ok
}

// paramError reports params an action cannot use; it is not retryable.
func paramError(action string, err error) error {
	return fmt.Errorf("%s: params: %w", action, err)
}
