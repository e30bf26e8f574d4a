package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/nebula-engine/nebula/storage"
)

// Limits bound the evaluation of expressions. Zero fields take their
// defaults.
type Limits struct {
	// CostLimit is the CEL runtime cost allowed for one evaluation;
	// default 100,000.
	CostLimit uint64
	// MaxExprLength is the number of characters of one expression;
	// default 4096.
	MaxExprLength int
	// MaxNesting is the nesting depth the expression parser accepts;
	// default 32.
	MaxNesting int
	// MaxValueBytes bounds the JSON size of one evaluated value, of a
	// rendered template and of a node's resolved params; default 1 MiB.
	MaxValueBytes int
}

func (l Limits) withDefaults() Limits {
	if l.CostLimit == 0 {
		l.CostLimit = 100_000
	}
	if l.MaxExprLength <= 0 {
		l.MaxExprLength = 4096
	}
	if l.MaxNesting <= 0 {
		l.MaxNesting = 32
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = 1 << 20
	}
	return l
}

// Options configure Compile.
type Options struct {
	// KnownAction reports whether an action exists; nil accepts every
	// action.
	KnownAction func(action string) bool
	// Registered reports whether an action is one registered through the
	// action registry (its existence is then checked against the registry
	// in the replicated state rather than by KnownAction). It is given
	// the action's name without any "@version"; nil means no action is.
	Registered func(action string) bool
	Limits     Limits
}

// maxRetryAttempts bounds retry.max_attempts.
const maxRetryAttempts = 100

// Plan is a validated definition with its expressions compiled, ready to
// drive executions. A Plan is immutable and safe for concurrent use.
type Plan struct {
	def    *Definition
	limits Limits
	index  map[string]int // node id -> index in def.Nodes
	edges  []edge         // by connection index
	in     [][]int        // by node index: indexes of incoming connections
	out    [][]int        // by node index: indexes of outgoing connections
	order  []int          // node indexes in a topological order
	roots  []string
	when   []*program // by connection index; nil when the connection always fires
	params []*param   // by node index
	output *program   // nil without Definition.Output
}

// An edge is a connection between node indexes.
type edge struct{ from, to int }

// Compile validates d and compiles its expressions. d must not be modified
// afterwards. Errors wrap ErrInvalidWorkflow and name the problem.
func Compile(d *Definition, opts Options) (*Plan, error) {
	p, err := compile(d, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWorkflow, err)
	}
	return p, nil
}

func compile(d *Definition, opts Options) (*Plan, error) {
	if d == nil {
		return nil, errors.New("no definition")
	}
	if !validID(d.ID) {
		return nil, fmt.Errorf("invalid workflow id %q: %s", d.ID, idRule)
	}
	if d.Timeout < 0 {
		return nil, fmt.Errorf("negative timeout %s", time.Duration(d.Timeout))
	}
	if len(d.Nodes) == 0 {
		return nil, errors.New("no nodes")
	}
	p := &Plan{
		def:    d,
		limits: opts.Limits.withDefaults(),
		index:  make(map[string]int, len(d.Nodes)),
		in:     make([][]int, len(d.Nodes)),
		out:    make([][]int, len(d.Nodes)),
	}
	for i, n := range d.Nodes {
		if !validID(n.ID) {
			return nil, fmt.Errorf("invalid node id %q: %s", n.ID, idRule)
		}
		if _, dup := p.index[n.ID]; dup {
			return nil, fmt.Errorf("duplicate node id %q", n.ID)
		}
		p.index[n.ID] = i
	}
	for i := range d.Nodes {
		if err := checkNode(&d.Nodes[i], opts); err != nil {
			return nil, err
		}
	}
	for i, c := range d.Connections {
		from, ok := p.index[c.From]
		if !ok {
			return nil, fmt.Errorf("connection %s -> %s: unknown node %q", c.From, c.To, c.From)
		}
		to, ok := p.index[c.To]
		if !ok {
			return nil, fmt.Errorf("connection %s -> %s: unknown node %q", c.From, c.To, c.To)
		}
		if from == to {
			return nil, fmt.Errorf("connection %s -> %s: self-loop", c.From, c.To)
		}
		p.edges = append(p.edges, edge{from, to})
		p.out[from] = append(p.out[from], i)
		p.in[to] = append(p.in[to], i)
	}
	if cycle := p.findCycle(); cycle != nil {
		ids := make([]string, len(cycle))
		for i, n := range cycle {
			ids[i] = d.Nodes[n].ID
		}
		return nil, fmt.Errorf("cycle: %s", strings.Join(ids, " -> "))
	}
	p.order = p.topoOrder()
	for i, n := range d.Nodes {
		if len(p.in[i]) == 0 {
			p.roots = append(p.roots, n.ID)
		}
	}
	if err := p.compileExpressions(); err != nil {
		return nil, err
	}
	if err := checkTriggers(d.Triggers); err != nil {
		return nil, err
	}
	return p, nil
}

// idRule describes the ids validID accepts.
const idRule = "want 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit"

// validID reports whether id matches ^[a-z0-9][a-z0-9_-]{0,62}$.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 63 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkNode checks the fields of one node, except its params.
func checkNode(n *Node, opts Options) error {
	if n.Action == "" {
		return fmt.Errorf("node %q has no action", n.ID)
	}
	if err := checkAction(n, opts); err != nil {
		return err
	}
	if n.Timeout < 0 {
		return fmt.Errorf("node %q: negative timeout %s", n.ID, time.Duration(n.Timeout))
	}
	switch n.OnError {
	case "", "fail", "continue":
	default:
		return fmt.Errorf("node %q: on_error %q is neither \"fail\" nor \"continue\"", n.ID, n.OnError)
	}
	if len(n.Params) > 0 && !json.Valid(n.Params) {
		return fmt.Errorf("node %q: params are not valid JSON", n.ID)
	}
	r := n.Retry
	if r == nil {
		return nil
	}
	switch {
	case r.MaxAttempts < 0 || r.MaxAttempts > maxRetryAttempts:
		return fmt.Errorf("node %q: retry.max_attempts %d is outside 0..%d", n.ID, r.MaxAttempts, maxRetryAttempts)
	case r.Backoff < 0:
		return fmt.Errorf("node %q: negative retry.backoff %s", n.ID, time.Duration(r.Backoff))
	case r.MaxBackoff < 0:
		return fmt.Errorf("node %q: negative retry.max_backoff %s", n.ID, time.Duration(r.MaxBackoff))
	case r.MaxBackoff != 0 && r.MaxBackoff < r.Backoff:
		return fmt.Errorf("node %q: retry.max_backoff %s is less than retry.backoff %s", n.ID, time.Duration(r.MaxBackoff), time.Duration(r.Backoff))
	}
	return nil
}

// checkAction checks the form of a node's action. A registry action,
// "name" or "name@version", is only checked for form here: whether it
// exists depends on the tenant's registry, which PutWorkflow and the
// state machine consult. Any other action must be known.
func checkAction(n *Node, opts Options) error {
	name, version, pinned := strings.Cut(n.Action, "@")
	if opts.Registered != nil && opts.Registered(name) {
		if pinned {
			if err := storage.ValidateActionVersion(version); err != nil {
				return fmt.Errorf("action %q in node %q: %w", n.Action, n.ID, err)
			}
		}
		return nil
	}
	if opts.KnownAction != nil && !opts.KnownAction(n.Action) {
		return fmt.Errorf("unknown action %q in node %q", n.Action, n.ID)
	}
	return nil
}

// findCycle returns the node indexes of one cycle, the first node repeated
// at the end, or nil when the graph is acyclic. The search runs in
// definition order so that the same definition always reports the same
// cycle.
func (p *Plan) findCycle() []int {
	const (
		unvisited = iota
		onPath
		done
	)
	state := make([]uint8, len(p.def.Nodes))
	var path, cycle []int
	var visit func(n int) bool
	visit = func(n int) bool {
		state[n] = onPath
		path = append(path, n)
		for _, c := range p.out[n] {
			next := p.edges[c].to
			switch state[next] {
			case onPath:
				start := slices.Index(path, next)
				cycle = append(slices.Clone(path[start:]), next)
				return true
			case unvisited:
				if visit(next) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return false
	}
	for n := range p.def.Nodes {
		if state[n] == unvisited && visit(n) {
			return cycle
		}
	}
	return nil
}

// topoOrder returns the node indexes of the acyclic graph in an order
// where every node comes after its predecessors.
func (p *Plan) topoOrder() []int {
	pending := make([]int, len(p.def.Nodes)) // unvisited predecessors
	var order []int
	for n := range p.def.Nodes {
		pending[n] = len(p.in[n])
		if pending[n] == 0 {
			order = append(order, n)
		}
	}
	for i := 0; i < len(order); i++ {
		for _, c := range p.out[order[i]] {
			next := p.edges[c].to
			if pending[next]--; pending[next] == 0 {
				order = append(order, next)
			}
		}
	}
	return order
}

// compileExpressions compiles the params of every node, the guard of every
// connection and the workflow output.
func (p *Plan) compileExpressions() error {
	c, err := newCompiler(p.limits, p.index)
	if err != nil {
		return fmt.Errorf("expression environment: %w", err)
	}
	p.params = make([]*param, len(p.def.Nodes))
	for i, n := range p.def.Nodes {
		if p.params[i], err = c.compileParams(n.Params); err != nil {
			return fmt.Errorf("node %q params: %w", n.ID, err)
		}
	}
	p.when = make([]*program, len(p.def.Connections))
	for i, conn := range p.def.Connections {
		if conn.When == "" {
			continue
		}
		if p.when[i], err = c.compile(conn.When, cel.BoolType); err != nil {
			return fmt.Errorf("connection %s -> %s: when: %w", conn.From, conn.To, err)
		}
	}
	if p.def.Output != "" {
		if p.output, err = c.compile(p.def.Output, nil); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	return nil
}

// checkTriggers checks the type and the fields of each trigger, and that
// no two webhooks share a path.
func checkTriggers(triggers []Trigger) error {
	paths := make(map[string]int)
	for i, t := range triggers {
		switch t.Type {
		case "webhook":
			if t.Schedule != "" {
				return fmt.Errorf("trigger %d (webhook): schedule is only for cron triggers", i)
			}
			if t.Wait != nil && time.Duration(*t.Wait) > MaxWebhookWait {
				return fmt.Errorf("trigger %d (webhook): wait %s exceeds %s", i, time.Duration(*t.Wait), MaxWebhookWait)
			}
			path := strings.Trim(t.Path, "/")
			if err := checkWebhookPath(path); err != nil {
				return fmt.Errorf("trigger %d (webhook): %w", i, err)
			}
			if j, dup := paths[path]; dup {
				return fmt.Errorf("duplicate webhook path %q in triggers %d and %d", t.Path, j, i)
			}
			paths[path] = i
		case "cron":
			if t.Path != "" {
				return fmt.Errorf("trigger %d (cron): path is only for webhook triggers", i)
			}
			if t.Wait != nil {
				return fmt.Errorf("trigger %d (cron): wait is only for webhook triggers", i)
			}
			if strings.TrimSpace(t.Schedule) == "" {
				return fmt.Errorf("trigger %d (cron): no schedule", i)
			}
			if err := checkSchedule(t.Schedule); err != nil {
				return fmt.Errorf("trigger %d (cron): invalid schedule %q: %w", i, t.Schedule, err)
			}
		default:
			return fmt.Errorf("trigger %d: unknown type %q (want \"webhook\" or \"cron\")", i, t.Type)
		}
	}
	return nil
}

// checkWebhookPath checks a webhook path, without its leading and trailing
// slashes: segments of letters, digits and "-._~".
func checkWebhookPath(path string) error {
	if path == "" {
		return errors.New("no path")
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q has an empty, \".\" or \"..\" segment", path)
		}
		for _, c := range seg {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-._~", c)) {
				return fmt.Errorf("path %q: character %q is not allowed (want letters, digits, '-', '.', '_', '~' and '/')", path, c)
			}
		}
	}
	return nil
}

// Definition returns the definition the plan was compiled from.
func (p *Plan) Definition() *Definition { return p.def }

// Node returns the node with the given id.
func (p *Plan) Node(id string) (*Node, bool) {
	i, ok := p.index[id]
	if !ok {
		return nil, false
	}
	return &p.def.Nodes[i], true
}

// Roots returns the ids of the nodes without incoming connections, in
// definition order. They start as soon as an execution does.
func (p *Plan) Roots() []string { return slices.Clone(p.roots) }
