package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
)

// Isolation is how an action runs.
type Isolation string

// Isolation levels, from none to most.
const (
	// IsolationNone runs in-process; capabilities are still checked.
	IsolationNone Isolation = "none"
	// IsolationCapabilityGated runs in-process with capability checks.
	IsolationCapabilityGated Isolation = "capability_gated"
	// IsolationIsolated runs in the WebAssembly sandbox.
	IsolationIsolated Isolation = "isolated"
)

// Class is a set of actions that share an isolation and what they may be
// granted.
type Class struct {
	// Name names the class in errors and logs: "trusted", "community",
	// "default".
	Name string
	// Patterns match action names (without "@version") with path.Match.
	Patterns  []string
	Isolation Isolation
	// Allow is what the class's actions may be granted; an action gets the
	// capabilities it declares that Allow covers.
	Allow []Capability
}

// Policy decides how an action runs and what it is granted.
type Policy struct {
	Trusted   Class
	Community Class
	// Default is for actions that match neither.
	Default Class
}

// ClassOf returns the class of action. Community patterns are tried
// first and community actions are always isolated, whatever the policy
// says: no configuration runs an action someone else wrote in-process.
func (p Policy) ClassOf(action string) Class {
	name, _ := SplitVersion(action)
	if matchAny(p.Community.Patterns, name) {
		c := p.Community
		c.Isolation = IsolationIsolated
		return c
	}
	if matchAny(p.Trusted.Patterns, name) {
		return p.Trusted
	}
	return p.Default
}

// Grant returns what an action declaring declared is granted: the
// intersection of what it declares and what the class allows. A pattern
// declared ("net:*") and a narrower one allowed ("net:api.github.com")
// grant the narrower one.
func (c Class) Grant(declared []Capability) []Capability {
	var granted []Capability
	for _, d := range declared {
		if Grants(c.Allow, d) {
			granted = append(granted, d)
			continue
		}
		for _, a := range c.Allow {
			if covers(d, a) && !slices.Contains(granted, a) {
				granted = append(granted, a)
			}
		}
	}
	return granted
}

// Refused returns the declared capabilities the class does not allow.
func (c Class) Refused(declared []Capability) []Capability {
	var refused []Capability
	for _, d := range declared {
		if !Grants(c.Allow, d) {
			refused = append(refused, d)
		}
	}
	return refused
}

func matchAny(patterns []string, name string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool {
		ok, _ := path.Match(p, name)
		return ok
	})
}

// Validate checks the policy's patterns and capabilities.
func (p Policy) Validate() error {
	for _, c := range []Class{p.Trusted, p.Community, p.Default} {
		for _, pat := range c.Patterns {
			if _, err := path.Match(pat, ""); err != nil {
				return fmt.Errorf("sandbox: %s pattern %q: %w", c.Name, pat, err)
			}
		}
		for _, a := range c.Allow {
			if a == "*" {
				continue
			}
			if err := a.Validate(); err != nil {
				return fmt.Errorf("sandbox: %s: %w", c.Name, err)
			}
		}
	}
	return nil
}

// Dispatcher sends each request to the runner of its class's isolation.
type Dispatcher struct {
	Policy Policy
	// InProcess runs actions that are not isolated.
	InProcess Runner
	// Isolated runs WebAssembly modules; nil when community actions are
	// disabled.
	Isolated Runner
}

// Run implements Runner.
func (d Dispatcher) Run(ctx context.Context, req Request) (json.RawMessage, error) {
	class := d.Policy.ClassOf(req.Action)
	if class.Isolation == IsolationIsolated {
		if d.Isolated == nil {
			return nil, fmt.Errorf("action %s: %s actions are disabled here", req.Action, class.Name)
		}
		return d.Isolated.Run(ctx, req)
	}
	return d.InProcess.Run(ctx, req)
}
