package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors a run fails with, wrapped with details. Each names the limit that
// stopped the run, since that is what the attempt's error must say.
var (
	ErrFuelExhausted = errors.New("fuel exhausted")
	ErrMemoryLimit   = errors.New("memory limit")
	ErrTimeLimit     = errors.New("time limit")
	ErrOutputLimit   = errors.New("output limit")
	ErrTrap          = errors.New("trap")
	ErrCapability    = errors.New("capability not granted")
)

// Capability is something an action may do beyond computing on its input:
// "net:api.github.com" or "net:*" (network access to a host, or any),
// "credential:github" (use a stored credential), "blob:read", "blob:write",
// "clock" (the real time) and "random" (real randomness). Without "clock"
// and "random" a run sees a fixed clock and a fixed-seed random source, so
// that it is deterministic.
type Capability string

// Capabilities that change how a module runs rather than what it may import.
const (
	Clock  Capability = "clock"
	Random Capability = "random"
)

// Validate reports whether c is well formed.
func (c Capability) Validate() error {
	kind, arg, hasArg := strings.Cut(string(c), ":")
	switch kind {
	case "clock", "random":
		if !hasArg {
			return nil
		}
	case "net", "credential":
		if hasArg && arg != "" && !strings.ContainsAny(arg, " /:") {
			return nil
		}
	case "blob":
		if arg == "read" || arg == "write" {
			return nil
		}
	}
	return fmt.Errorf("sandbox: malformed capability %q", c)
}

// Capabilities converts names, as configs and manifests hold them.
func Capabilities(names []string) []Capability {
	caps := make([]Capability, len(names))
	for i, n := range names {
		caps[i] = Capability(n)
	}
	return caps
}

// Grants reports whether granted includes want. A grant may be a pattern:
// "*" grants everything, "net:*" every host (and "credential:*" every
// credential), "net:*.example.com" every subdomain of example.com.
func Grants(granted []Capability, want Capability) bool {
	for _, g := range granted {
		if covers(g, want) {
			return true
		}
	}
	return false
}

func covers(g, want Capability) bool {
	if g == want || g == "*" {
		return true
	}
	gk, ga, ok := strings.Cut(string(g), ":")
	wk, wa, wok := strings.Cut(string(want), ":")
	if !ok || !wok || gk != wk {
		return false
	}
	switch {
	case ga == "*":
		return true
	case strings.HasPrefix(ga, "*."):
		return strings.HasSuffix(wa, ga[1:]) && len(wa) > len(ga)-1
	}
	return false
}

type grantsKey struct{}

// WithGrants returns a context under which an action holds the granted
// capabilities; Check consults them.
func WithGrants(ctx context.Context, granted []Capability) context.Context {
	return context.WithValue(ctx, grantsKey{}, granted)
}

// Check reports whether the action running under ctx holds want. The
// error wraps ErrCapability and names want. With no grants in ctx nothing
// is held: code that runs outside a runner may do nothing guarded.
func Check(ctx context.Context, want Capability) error {
	granted, _ := ctx.Value(grantsKey{}).([]Capability)
	if Grants(granted, want) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrCapability, want)
}

// Limits bound one run. A zero field means no limit of that kind; fuel is
// counted all the same.
type Limits struct {
	// MemoryBytes caps the module's linear memory.
	MemoryBytes uint64
	// Fuel caps the instructions executed, counted deterministically.
	Fuel uint64
	// WallTime caps the run's duration.
	WallTime time.Duration
	// MaxOutputBytes caps what the module writes to stdout.
	MaxOutputBytes int
}

// Request is one attempt of an action for a runner to run.
type Request struct {
	// Tenant owns the execution; registered actions are looked up in it.
	Tenant string
	// Action is the name as a workflow writes it: "builtin.http",
	// "community.wordcount" or "community.wordcount@1.0.0".
	Action string
	// Params are the node's resolved params, as JSON.
	Params json.RawMessage
}

// Runner runs actions: it checks what the action may do, enforces its
// limits, runs it and checks that its output is JSON within bounds.
type Runner interface {
	Run(ctx context.Context, req Request) (json.RawMessage, error)
}

// ErrUnknownAction reports an action no runner has.
var ErrUnknownAction = errors.New("unknown action")

// SplitVersion splits "community.x@1.0.0" into its name and version; the
// version is empty when the reference has none.
func SplitVersion(action string) (name, version string) {
	name, version, _ = strings.Cut(action, "@")
	return name, version
}

// CheckOutput checks what an action returned: JSON, at most max bytes
// (when max > 0). Empty output reads as null.
func CheckOutput(action string, out json.RawMessage, max int) (json.RawMessage, error) {
	if max > 0 && len(out) > max {
		return nil, fmt.Errorf("%w: output of %d bytes exceeds the limit of %d bytes", ErrOutputLimit, len(out), max)
	}
	if len(out) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("action %s returned invalid JSON", action)
	}
	return out, nil
}
