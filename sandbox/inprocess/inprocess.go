// Package inprocess runs trusted actions in the worker's own process. It
// is not a wall: a trusted action can do anything Go can. What it adds is
// the capability check, so that an operator's policy ("builtin.http may
// reach api.github.com only") holds for the actions that go through
// sandbox.Check, and the same output checks the isolated runner makes.
package inprocess

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nebula-engine/nebula/sandbox"
)

// Func runs one attempt: the node's resolved params in, its output out.
type Func func(ctx context.Context, params json.RawMessage) (json.RawMessage, error)

// Action is an action compiled into the binary.
type Action struct {
	Run Func
	// Capabilities are what the action may use; it is granted those the
	// policy allows for its class and nothing else.
	Capabilities []sandbox.Capability
}

// Config configures a Runner.
type Config struct {
	Actions map[string]Action
	Policy  sandbox.Policy
	// MaxOutputBytes bounds an output; zero means no bound.
	MaxOutputBytes int
}

// Runner runs in-process actions. It implements sandbox.Runner.
type Runner struct {
	cfg Config
}

// New returns a Runner.
func New(cfg Config) *Runner {
	return &Runner{cfg: cfg}
}

// Has reports whether name is an action of this runner.
func (r *Runner) Has(name string) bool {
	_, ok := r.cfg.Actions[name]
	return ok
}

// Names returns the actions' names, sorted.
func (r *Runner) Names() []string {
	names := make([]string, 0, len(r.cfg.Actions))
	for n := range r.cfg.Actions {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Run runs req's action under the capabilities its class grants. A panic
// fails the attempt, not the process.
func (r *Runner) Run(ctx context.Context, req sandbox.Request) (out json.RawMessage, err error) {
	a, ok := r.cfg.Actions[req.Action]
	if !ok {
		return nil, fmt.Errorf("%w: %s", sandbox.ErrUnknownAction, req.Action)
	}
	class := r.cfg.Policy.ClassOf(req.Action)
	if class.Isolation == sandbox.IsolationIsolated {
		// An operator asked for isolation this runner cannot give.
		return nil, fmt.Errorf("action %s is %s by the sandbox policy, and only WebAssembly modules run isolated", req.Action, class.Isolation)
	}
	ctx = sandbox.WithGrants(ctx, class.Grant(a.Capabilities))
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("action %s panicked: %v", req.Action, p)
		}
	}()
	out, err = a.Run(ctx, req.Params)
	if err != nil {
		return nil, err
	}
	return sandbox.CheckOutput(req.Action, out, r.cfg.MaxOutputBytes)
}
