package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/sandbox/internal/fuel"
	"github.com/nebula-engine/nebula/sandbox/internal/wasmbin"
)

// fuelExport is the name the fuel global is exported under in instrumented
// modules.
const fuelExport = "nebula_fuel"

// Config configures a Runtime.
type Config struct {
	// CacheDir keeps wazero's compiled code on disk, so a restarted node
	// does not compile its modules again. Empty keeps it in memory only.
	CacheDir string
	// Logger receives compile and run records at debug level; nil discards.
	Logger *slog.Logger
	// HTTP sends the requests of modules importing nebula.http_request:
	// request is the module's JSON, the params of builtin.http, and the
	// result is the response JSON object the module reads. ctx is the
	// run's (it ends with the run's wall time or cancellation) and holds
	// the values of the ctx Run was called with, plus the module's granted
	// capabilities (sandbox.WithGrants): HTTP must check "net:<host>" with
	// sandbox.Check. Errors go back to the module as {"error": ...}. Nil
	// answers every request with an error.
	HTTP func(ctx context.Context, request json.RawMessage) (json.RawMessage, error)
}

// Runtime compiles and runs modules. It is safe for concurrent use.
type Runtime struct {
	rt     wazero.Runtime
	cache  wazero.CompilationCache
	logger *slog.Logger
	wasi   map[string]bool // function names wasi_snapshot_preview1 provides
	http   httpHook
	host   map[string]api.FunctionDefinition // the nebula host functions

	mu      sync.Mutex
	modules map[[sha256.Size]byte]*entry
}

// entry is a module compiled or being compiled; done is closed when c or err
// is set, so concurrent Compile calls for the same bytes compile once.
type entry struct {
	done chan struct{}
	c    *compiled
	err  error
}

// compiled is a module ready to instantiate, shared by every Module made
// from the same bytes whatever their capabilities.
type compiled struct {
	mod      wazero.CompiledModule
	minPages uint32 // initial memory, checked against each run's limit
}

// NewRuntime returns a Runtime; Close releases it.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	rcfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		// Wall-time limits and cancellation stop running code only with this.
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, rcfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		cache.Close(ctx)
		return nil, fmt.Errorf("wasm: WASI: %w", err)
	}
	names := make(map[string]bool)
	for _, def := range rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		names[def.Name()] = true
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{
		rt:      rt,
		cache:   cache,
		logger:  logger,
		wasi:    names,
		http:    cfg.HTTP,
		modules: make(map[[sha256.Size]byte]*entry),
	}
	if err := r.instantiateHost(ctx); err != nil {
		rt.Close(ctx)
		cache.Close(ctx)
		return nil, fmt.Errorf("wasm: host functions: %w", err)
	}
	return r, nil
}

// Close releases the runtime and every module compiled with it.
func (r *Runtime) Close(ctx context.Context) error {
	return errors.Join(r.rt.Close(ctx), r.cache.Close(ctx))
}

// Module is a compiled module with the capabilities it was granted.
type Module struct {
	r       *Runtime
	c       *compiled
	granted []sandbox.Capability
}

// Compile validates and compiles a WASI preview1 command module, with fuel
// metering added. It fails with sandbox.ErrCapability, listing the
// offenders, when the module imports anything but WASI preview1 functions
// and the nebula host functions its capabilities allow (nebula.http_request
// and nebula.http_response need a "net:" capability). Compiled modules are
// kept by the sha256 of their bytes for the life of the Runtime, so
// registering the same module again is cheap.
func (r *Runtime) Compile(ctx context.Context, module []byte, granted []sandbox.Capability) (*Module, error) {
	for _, c := range granted {
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	// Imports are checked before compiling: a module that may not run is
	// not worth the seconds a large one takes to compile.
	sections, err := wasmbin.Parse(module)
	if err != nil {
		return nil, err
	}
	var imports []wasmbin.Import
	for _, s := range sections {
		if s.ID == wasmbin.SectionImport {
			if imports, err = wasmbin.Imports(s.Content); err != nil {
				return nil, fmt.Errorf("wasm: import section: %w", err)
			}
		}
	}
	if err := r.checkImports(imports, granted); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(module)
	r.mu.Lock()
	e, ok := r.modules[sum]
	if !ok {
		e = &entry{done: make(chan struct{})}
		r.modules[sum] = e
	}
	r.mu.Unlock()
	if !ok {
		e.c, e.err = r.compile(ctx, module, sections)
		if e.err != nil {
			// Let a later call try again: the failure may be ctx's.
			r.mu.Lock()
			delete(r.modules, sum)
			r.mu.Unlock()
		}
		close(e.done)
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	return &Module{r: r, c: e.c, granted: slices.Clone(granted)}, nil
}

func (r *Runtime) compile(ctx context.Context, module []byte, sections []wasmbin.Section) (*compiled, error) {
	start := time.Now()
	mem, _, err := wasmbin.Memory(sections)
	if err != nil {
		return nil, err
	}
	metered, err := fuel.Instrument(module, fuelExport)
	if err != nil {
		return nil, fmt.Errorf("wasm: fuel metering: %w", err)
	}
	mod, err := r.rt.CompileModule(ctx, metered)
	if err != nil {
		return nil, fmt.Errorf("wasm: compile: %w", err)
	}
	if fn, ok := mod.ExportedFunctions()["_start"]; !ok || len(fn.ParamTypes()) != 0 || len(fn.ResultTypes()) != 0 {
		mod.Close(ctx)
		return nil, errors.New("wasm: not a WASI command module: no _start function exported")
	}
	if err := r.checkHostSignatures(mod); err != nil {
		mod.Close(ctx)
		return nil, err
	}
	r.logger.Debug("wasm module compiled", "bytes", len(module), "metered_bytes", len(metered),
		"duration", time.Since(start))
	return &compiled{mod: mod, minPages: mem.Min}, nil
}

// checkImports refuses every import but WASI preview1 functions and the
// host functions granted allows, naming all of them so a module author can
// fix everything at once.
func (r *Runtime) checkImports(imports []wasmbin.Import, granted []sandbox.Capability) error {
	var bad, needNet []string
	for _, im := range imports {
		if im.Kind == wasmbin.KindFunc {
			switch {
			case im.Module == wasi_snapshot_preview1.ModuleName && r.wasi[im.Name]:
				continue
			case im.Module == hostModule && r.host[im.Name] != nil:
				if !grantsNet(granted) {
					needNet = append(needNet, hostModule+"."+im.Name)
				}
				continue
			}
		}
		kind := [...]string{"function", "table", "memory", "global", "tag"}[im.Kind]
		bad = append(bad, fmt.Sprintf("%s %s.%s", kind, im.Module, im.Name))
	}
	var problems []string
	switch len(needNet) {
	case 0:
	case 1:
		problems = append(problems, fmt.Sprintf("module imports function %s, which needs a net: capability", needNet[0]))
	default:
		problems = append(problems, fmt.Sprintf("module imports functions %s, which need a net: capability",
			strings.Join(needNet, ", ")))
	}
	if len(bad) > 0 {
		problems = append(problems, fmt.Sprintf("module imports %s, which is neither WASI preview1 nor a granted host function",
			strings.Join(bad, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", sandbox.ErrCapability, strings.Join(problems, "; "))
	}
	return nil
}
