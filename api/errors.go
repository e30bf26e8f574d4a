package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage"
)

// Error is an error with its API code. Handlers return it for problems
// they find themselves (bad query values, bodies); errors from below are
// mapped in statusOf.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status and API code. It is the one
// place where errors of the layers below meet HTTP.
func statusOf(err error) (int, string) {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae.Status, ae.Code
	case errors.Is(err, engine.ErrInvalidWorkflow), errors.Is(err, engine.ErrMalformed):
		return http.StatusBadRequest, "invalid_workflow"
	case errors.Is(err, engine.ErrInvalidCredential), errors.Is(err, engine.ErrInvalidAction), errors.Is(err, engine.ErrInvalidTenant):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, engine.ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, engine.ErrActionsDisabled):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, storage.ErrInvalidCursor):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, engine.ErrQuotaExceeded):
		return http.StatusTooManyRequests, "quota_exceeded"
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, storage.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, storage.ErrNoLeader):
		return http.StatusServiceUnavailable, "no_leader"
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable"
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "too_large"
	}
	return http.StatusInternalServerError, "internal"
}
