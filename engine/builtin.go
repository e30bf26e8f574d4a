package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/sandbox/inprocess"
)

// Action runs one attempt of a node: it gets the node's resolved params
// and returns its output as JSON. A returned error fails the attempt.
type Action interface {
	Run(ctx context.Context, params json.RawMessage) (json.RawMessage, error)
}

// Actions is a set of in-process actions by name, with the capabilities
// each may use.
type Actions map[string]inprocess.Action

// Has reports whether a workflow may use the action: the set holds it, or
// the engine runs it itself (builtin.delay is a durable timer and
// builtin.subworkflow a child execution: neither is a task).
func (a Actions) Has(name string) bool {
	_, ok := a[name]
	return ok || name == actionDelay || name == actionSubworkflow
}

// BuiltinsConfig configures the builtin actions.
type BuiltinsConfig struct {
	// Logger receives builtin.log's messages; nil discards them.
	Logger *slog.Logger
	// HTTP configures builtin.http, including whether it may reach
	// private addresses.
	HTTP HTTPConfig
}

// HTTPCapabilities are what builtin.http may use: any host, any
// credential. The sandbox policy narrows them.
var HTTPCapabilities = []sandbox.Capability{"net:*", "credential:*"}

// Builtins returns the builtin actions that workers run. (builtin.delay and
// builtin.subworkflow are run by the state machine itself.) Only
// builtin.http declares capabilities: the others compute on their input.
func Builtins(cfg BuiltinsConfig) Actions {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return Actions{
		"builtin.set":  {Run: runSet},
		"builtin.noop": {Run: runNoop},
		"builtin.log": {Run: func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
			return runLog(ctx, logger, params)
		}},
		"builtin.fail": {Run: runFail},
		"builtin.http": {Run: NewHTTPAction(cfg.HTTP).Run, Capabilities: HTTPCapabilities},
	}
}

// runSet returns its (already resolved) value.
func runSet(_ context.Context, params json.RawMessage) (json.RawMessage, error) {
	var p struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("builtin.set: params: %w", err)
	}
	if len(p.Value) == 0 {
		return json.RawMessage("null"), nil
	}
	return p.Value, nil
}

func runNoop(context.Context, json.RawMessage) (json.RawMessage, error) {
	return json.RawMessage("{}"), nil
}

func runLog(ctx context.Context, logger *slog.Logger, params json.RawMessage) (json.RawMessage, error) {
	var p struct {
		Message any `json:"message"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("builtin.log: params: %w", err)
	}
	msg, ok := p.Message.(string)
	if !ok {
		b, _ := json.Marshal(p.Message)
		msg = string(b)
	}
	logger.InfoContext(ctx, msg, "action", "builtin.log")
	return json.Marshal(map[string]string{"message": msg})
}

// runFail fails attempts 1..times (every attempt when times is absent)
// with a retryable error, then succeeds: a stand-in for flaky steps.
func runFail(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
	var p struct {
		Message string `json:"message"`
		Times   *int   `json:"times"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, paramError("builtin.fail", err)
	}
	n := 1
	if at, ok := AttemptFrom(ctx); ok {
		n = at.Number
	}
	if p.Times == nil || n <= *p.Times {
		msg := p.Message
		if msg == "" {
			msg = "builtin.fail: failing as asked"
		}
		return nil, Retryable(fmt.Errorf("%s (attempt %d)", msg, n))
	}
	return json.Marshal(map[string]int{"attempt": n})
}
