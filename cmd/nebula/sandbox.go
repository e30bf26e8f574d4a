package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/internal/config"
	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/sandbox/inprocess"
	"github.com/nebula-engine/nebula/sandbox/wasm"
	"github.com/nebula-engine/nebula/storage"
)

// runners are the action runners of a process that runs attempts.
type runners struct {
	sandbox.Runner
	// wasm runs community actions; nil when they are disabled.
	wasm    *wasm.Runner
	runtime *wasm.Runtime
}

// runnersConfig is what the runners are made of.
type runnersConfig struct {
	cfg     *config.Config
	actions engine.Actions
	// source finds registered modules; unused when community actions are
	// disabled.
	source wasm.Source
	// cacheDir keeps compiled modules across restarts; empty keeps them
	// in memory.
	cacheDir string
	logger   *slog.Logger
}

// newRunners builds the in-process runner for the builtins and, when
// community actions are enabled, the WebAssembly runner, behind one
// dispatcher that follows the sandbox policy.
func newRunners(ctx context.Context, rc runnersConfig) (*runners, error) {
	policy := rc.cfg.SandboxPolicy()
	r := &runners{}
	d := sandbox.Dispatcher{
		Policy: policy,
		InProcess: inprocess.New(inprocess.Config{
			Actions: rc.actions, Policy: policy, MaxOutputBytes: engine.MaxBlobOutputBytes,
		}),
	}
	if rc.cfg.Sandbox.CommunityActions.Enabled {
		rt, err := wasm.NewRuntime(ctx, wasm.Config{
			CacheDir: rc.cacheDir,
			Logger:   rc.logger,
			// A module's http_request is builtin.http run under the
			// module's grants: the same address guard, credentials and
			// redaction as a workflow's own requests.
			HTTP: rc.actions["builtin.http"].Run,
		})
		if err != nil {
			return nil, err
		}
		ca := rc.cfg.Sandbox.CommunityActions
		r.runtime = rt
		r.wasm = wasm.NewRunner(wasm.RunnerConfig{
			Runtime: rt,
			Source:  rc.source,
			Policy:  policy,
			Limits: sandbox.Limits{
				MemoryBytes:    uint64(ca.WasmMemoryLimitMB) << 20,
				Fuel:           uint64(ca.WasmFuelLimit),
				WallTime:       time.Duration(rc.cfg.Sandbox.MaxCPUTime),
				MaxOutputBytes: engine.MaxOutputBytes,
			},
		})
		d.Isolated = r.wasm
	}
	r.Runner = d
	return r, nil
}

// Close releases the WebAssembly runtime.
func (r *runners) Close(ctx context.Context) error {
	if r.runtime == nil {
		return nil
	}
	return r.runtime.Close(ctx)
}

// registeredAction reports whether an action is one registered through
// /v1/actions. It is fixed by name, not by configuration, because the
// state machine uses it and must decide the same on every node.
func registeredAction(action string) bool {
	return strings.HasPrefix(action, "community.") || strings.HasPrefix(action, "hub.")
}

// checkModule is the registry's check of a module offered: it must run
// under the policy with the capabilities it declares.
func (r *runners) checkModule(ctx context.Context, id string, module []byte, capabilities []string) error {
	if r.wasm == nil {
		return errors.New("community actions are disabled")
	}
	caps := sandbox.Capabilities(capabilities)
	return r.wasm.Check(ctx, id, module, caps)
}

// registrySource finds modules in the replicated action registry.
type registrySource struct {
	svc   *engine.Service
	blobs storage.BlobStore
}

func (s *registrySource) Resolve(ctx context.Context, tenant, ref string) (wasm.Manifest, error) {
	a, err := s.svc.GetAction(ctx, tenant, ref)
	if err != nil {
		return wasm.Manifest{}, err
	}
	caps := sandbox.Capabilities(a.Capabilities)
	return wasm.Manifest{ID: a.ID, Version: a.Version, Capabilities: caps, ModuleRef: a.ModuleRef}, nil
}

func (s *registrySource) Load(ctx context.Context, ref string) ([]byte, error) {
	return s.blobs.Get(ctx, ref)
}
