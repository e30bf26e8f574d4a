package sandbox

import (
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

// Grants reports whether granted includes want, with "net:*" standing for
// every "net:" capability.
func Grants(granted []Capability, want Capability) bool {
	for _, g := range granted {
		if g == want || (g == "net:*" && strings.HasPrefix(string(want), "net:")) {
			return true
		}
	}
	return false
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
