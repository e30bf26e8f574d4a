package wasm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nebula-engine/nebula/sandbox"
)

// Manifest describes a registered module.
type Manifest struct {
	// ID and Version name it: "community.wordcount", "1.0.0".
	ID, Version string
	// Capabilities are what its author declared it needs; the policy
	// grants those it allows.
	Capabilities []sandbox.Capability
	// ModuleRef identifies the module's bytes (content-addressed), so
	// that a compiled module is reused for as long as the bytes are the
	// same.
	ModuleRef string
}

// Source finds registered modules.
type Source interface {
	// Resolve returns the manifest an action reference names in a tenant:
	// "community.x" (the latest version) or "community.x@1.0.0".
	Resolve(ctx context.Context, tenant, ref string) (Manifest, error)
	// Load returns a module's bytes.
	Load(ctx context.Context, moduleRef string) ([]byte, error)
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Runtime *Runtime
	Source  Source
	Policy  sandbox.Policy
	// Limits bound every run.
	Limits sandbox.Limits
}

// Runner runs registered modules as actions. It implements
// sandbox.Runner.
type Runner struct {
	cfg RunnerConfig

	mu      sync.Mutex
	modules map[string]*Module // by module ref and grants
}

// NewRunner returns a Runner.
func NewRunner(cfg RunnerConfig) *Runner {
	return &Runner{cfg: cfg, modules: make(map[string]*Module)}
}

// Run resolves req's action, compiles its module with the capabilities the
// policy grants (once per module and grants), and runs it under the
// limits. Errors name the action and, when one stopped the run, the limit.
func (r *Runner) Run(ctx context.Context, req sandbox.Request) (json.RawMessage, error) {
	m, err := r.cfg.Source.Resolve(ctx, req.Tenant, req.Action)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Action, err)
	}
	granted := r.cfg.Policy.ClassOf(m.ID).Grant(m.Capabilities)
	mod, err := r.module(ctx, m, granted)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: %w", m.ID, m.Version, err)
	}
	out, err := mod.Run(ctx, req.Params, r.cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: %w", m.ID, m.Version, err)
	}
	return sandbox.CheckOutput(req.Action, out, r.cfg.Limits.MaxOutputBytes)
}

// module returns the compiled module for m with granted, loading and
// compiling it on first use. The runtime shares compiled code between
// grants; only the import check and the grants differ.
func (r *Runner) module(ctx context.Context, m Manifest, granted []sandbox.Capability) (*Module, error) {
	names := make([]string, len(granted))
	for i, g := range granted {
		names[i] = string(g)
	}
	slices.Sort(names)
	key := m.ModuleRef + "\x00" + strings.Join(names, ",")
	r.mu.Lock()
	mod, ok := r.modules[key]
	r.mu.Unlock()
	if ok {
		return mod, nil
	}
	bytes, err := r.cfg.Source.Load(ctx, m.ModuleRef)
	if err != nil {
		return nil, fmt.Errorf("loading module: %w", err)
	}
	if mod, err = r.cfg.Runtime.Compile(ctx, bytes, granted); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.modules[key] = mod
	r.mu.Unlock()
	return mod, nil
}

// Check reports whether a module could run as an action declaring
// capabilities: it must be a valid WASI command module, the policy must
// allow every capability it declares, and it may import only what those
// grant. Registration calls it, so that a module that can never run is
// refused when it is offered rather than when a workflow first runs it.
func (r *Runner) Check(ctx context.Context, id string, module []byte, capabilities []sandbox.Capability) error {
	for _, c := range capabilities {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	class := r.cfg.Policy.ClassOf(id)
	if refused := class.Refused(capabilities); len(refused) > 0 {
		names := make([]string, len(refused))
		for i, c := range refused {
			names[i] = string(c)
		}
		return fmt.Errorf("%w: the sandbox policy does not allow %s for %s actions",
			sandbox.ErrCapability, strings.Join(names, ", "), class.Name)
	}
	_, err := r.cfg.Runtime.Compile(ctx, module, capabilities)
	return err
}
