package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/sandbox/internal/bounded"
)

const (
	pageSize = 65536
	// stderrTail is how much of stderr an error quotes: enough for a Go
	// panic's message and the top of its stack.
	stderrTail = 2048
)

// Run runs the module once on params; see RunWithStats.
func (m *Module) Run(ctx context.Context, params json.RawMessage, lim sandbox.Limits) (json.RawMessage, error) {
	out, _, err := m.RunWithStats(ctx, params, lim)
	return out, err
}

// RunWithStats runs the module once in a fresh instance: params (or {} when
// empty) on stdin, the JSON the module writes to stdout as the result. It
// also returns the fuel the run used, which is the same on every run of the
// same module on the same params, and all of the limit when fuel ran out.
//
// A run that breaks a limit fails with an error wrapping the matching
// sandbox sentinel; a trap wraps sandbox.ErrTrap. Traps and non-zero exits
// quote the tail of stderr. A cancelled ctx fails the run with ctx's error.
func (m *Module) RunWithStats(ctx context.Context, params json.RawMessage, lim sandbox.Limits) (json.RawMessage, uint64, error) {
	if lim.MemoryBytes > 0 && uint64(m.c.minPages)*pageSize > lim.MemoryBytes {
		return nil, 0, fmt.Errorf("%w: the module needs %d bytes of memory to start, the limit is %d",
			sandbox.ErrMemoryLimit, uint64(m.c.minPages)*pageSize, lim.MemoryBytes)
	}
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	budget := int64(math.MaxInt64)
	if lim.Fuel > 0 && lim.Fuel < math.MaxInt64 {
		budget = int64(lim.Fuel)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if lim.WallTime > 0 {
		var cancelTimeout context.CancelFunc
		runCtx, cancelTimeout = context.WithTimeoutCause(runCtx, lim.WallTime, sandbox.ErrTimeLimit)
		defer cancelTimeout()
	}
	// Going over the output limit cancels the run: with
	// WithCloseOnContextDone that stops the module even if it ignores the
	// write error.
	stdout := &bounded.Buffer{Max: lim.MaxOutputBytes, OnFull: func() { cancel(sandbox.ErrOutputLimit) }}
	stderr := &bounded.Tail{Max: stderrTail}
	alloc := &allocator{limit: lim.MemoryBytes}

	cfg := wazero.NewModuleConfig().
		WithName("").         // anonymous, so instances of one module can run side by side
		WithStartFunctions(). // _start is called below, once fuel is set
		WithArgs("action").
		WithStdin(bytes.NewReader(params)).
		WithStdout(stdout).
		WithStderr(stderr)
	if sandbox.Grants(m.granted, sandbox.Clock) {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if sandbox.Grants(m.granted, sandbox.Random) {
		cfg = cfg.WithRandSource(rand.Reader)
	}

	start := time.Now()
	inst, err := m.r.rt.InstantiateModule(experimental.WithMemoryAllocator(runCtx, alloc), m.c.mod, cfg)
	if err != nil {
		if cause := context.Cause(runCtx); cause != nil {
			return nil, 0, m.stopped(ctx, cause, lim)
		}
		return nil, 0, fmt.Errorf("wasm: instantiate: %w", err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	fuelGlobal, ok := inst.ExportedGlobal(fuelExport).(api.MutableGlobal)
	if !ok {
		return nil, 0, errors.New("wasm: fuel global missing") // Compile always adds it
	}
	fuelGlobal.Set(uint64(budget))

	// Host functions find this run's state in the context they are called
	// with, which is the one given to Call.
	st := &runState{granted: m.granted}
	_, err = inst.ExportedFunction("_start").Call(withRunState(runCtx, st))
	remaining := int64(fuelGlobal.Get())
	used := uint64(budget - max(remaining, 0))
	m.r.logger.Debug("wasm run", "fuel", used, "duration", time.Since(start), "error", err)

	out, err := m.result(ctx, runCtx, err, remaining, stdout, stderr, alloc, lim)
	return out, used, err
}

// result turns how _start ended into the run's output or error.
func (m *Module) result(ctx, runCtx context.Context, callErr error, remaining int64,
	stdout *bounded.Buffer, stderr *bounded.Tail, alloc *allocator, lim sandbox.Limits) (json.RawMessage, error) {
	if stdout.Full() {
		return nil, fmt.Errorf("%w: the module wrote more than %d bytes to stdout", sandbox.ErrOutputLimit, lim.MaxOutputBytes)
	}
	var exit *sys.ExitError
	switch {
	case callErr == nil, errors.As(callErr, &exit) && exit.ExitCode() == 0:
		out := bytes.TrimSpace(stdout.Bytes())
		if !json.Valid(out) {
			return nil, fmt.Errorf("wasm: the module's output is not valid JSON (%d bytes)%s", len(out), quote(stderr))
		}
		return json.RawMessage(out), nil
	case exit != nil && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled):
		return nil, m.stopped(ctx, context.Cause(runCtx), lim)
	case remaining < 0:
		// Only the metering code makes the global negative, and it traps
		// right away when it does.
		// Fuel is counted exactly, so the stderr tail shows the same
		// point on every run and every node.
		return nil, fmt.Errorf("%w: the module used all of its %d fuel%s", sandbox.ErrFuelExhausted, lim.Fuel, quote(stderr))
	case alloc.refused.Load() || strings.Contains(stderr.String(), "out of memory"):
		// Go aborts with "fatal error: out of memory", Rust and C programs
		// usually trap: either way the refused grow is the cause.
		return nil, fmt.Errorf("%w: the module tried to grow its memory past %d bytes%s",
			sandbox.ErrMemoryLimit, lim.MemoryBytes, quote(stderr))
	case exit != nil:
		return nil, fmt.Errorf("wasm: the module exited with code %d%s", exit.ExitCode(), quote(stderr))
	default:
		msg, _, _ := strings.Cut(callErr.Error(), "\n") // drop wazero's stack trace
		msg = strings.TrimPrefix(msg, "wasm error: ")
		msg = strings.TrimSuffix(msg, " (recovered by wazero)") // a host function's trap
		return nil, fmt.Errorf("%w: %s%s", sandbox.ErrTrap, msg, quote(stderr))
	}
}

// stopped explains a run ended by its context: the wall-time limit, the
// output limit, or the caller's own cancellation.
func (m *Module) stopped(ctx context.Context, cause error, lim sandbox.Limits) error {
	switch {
	case errors.Is(cause, sandbox.ErrTimeLimit):
		return fmt.Errorf("%w: the module ran longer than %s", sandbox.ErrTimeLimit, lim.WallTime)
	case errors.Is(cause, sandbox.ErrOutputLimit):
		return fmt.Errorf("%w: the module wrote more than %d bytes to stdout", sandbox.ErrOutputLimit, lim.MaxOutputBytes)
	case ctx.Err() != nil:
		return fmt.Errorf("wasm: run stopped: %w", context.Cause(ctx))
	}
	return fmt.Errorf("wasm: run stopped: %w", cause)
}

func quote(stderr *bounded.Tail) string {
	if s := stderr.String(); s != "" {
		return "; stderr: " + s
	}
	return ""
}
