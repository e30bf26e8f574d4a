package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// program is a compiled CEL expression.
type program struct {
	src  string
	prog cel.Program
}

// String returns the source of p, quoted for messages.
func (p *program) String() string { return quoteSource(p.src) }

// maxQuotedSource bounds the length of an expression quoted in a message.
const maxQuotedSource = 100

// quoteSource quotes an expression for a message, shortened if long.
func quoteSource(src string) string {
	if utf8.RuneCountInString(src) <= maxQuotedSource {
		return strconv.Quote(src)
	}
	return strconv.Quote(string([]rune(src)[:maxQuotedSource])) + "..."
}

// compiler compiles the expressions of one definition.
type compiler struct {
	env    *cel.Env
	limits Limits
	nodes  map[string]int // node ids, to check references
}

// newCompiler returns a compiler for expressions that see the variables of
// a Scope. The standard library has no clock and no randomness, so an
// expression is a pure function of its scope.
func newCompiler(limits Limits, nodes map[string]int) (*compiler, error) {
	env, err := cel.NewEnv(
		cel.Variable("input", cel.DynType),
		cel.Variable("nodes", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("execution", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("workflow", cel.MapType(cel.StringType, cel.StringType)),
		cel.CrossTypeNumericComparisons(true),
		// Timestamp functions without a time zone argument must not depend
		// on the zone of the machine.
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(limits.MaxExprLength),
		cel.ParserRecursionLimit(limits.MaxNesting),
	)
	if err != nil {
		return nil, err
	}
	return &compiler{env: env, limits: limits, nodes: nodes}, nil
}

// compile compiles src. A non-nil want is the type the expression must
// have when the type checker can tell; dyn is always accepted. Errors name
// the expression.
func (c *compiler) compile(src string, want *cel.Type) (*program, error) {
	prog, err := c.compileSource(src, want)
	if err != nil {
		return nil, fmt.Errorf("expression %s: %w", quoteSource(src), err)
	}
	return prog, nil
}

func (c *compiler) compileSource(src string, want *cel.Type) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	if n := utf8.RuneCountInString(src); n > c.limits.MaxExprLength {
		return nil, fmt.Errorf("%d characters long, more than the limit of %d", n, c.limits.MaxExprLength)
	}
	checked, iss := c.env.Compile(src)
	if iss.Err() != nil {
		return nil, compileError(iss)
	}
	if want != nil {
		if t := checked.OutputType(); t.Kind() != types.DynKind && !t.IsExactType(want) {
			return nil, fmt.Errorf("has type %s, want %s", t, want)
		}
	}
	if err := c.checkNodeRefs(checked.NativeRep().Expr(), false); err != nil {
		return nil, err
	}
	prog, err := c.env.Program(checked,
		cel.CostLimit(c.limits.CostLimit),
		cel.CustomDecoratorV2(orderMapLiterals),
	)
	if err != nil {
		return nil, err
	}
	return &program{src: src, prog: prog}, nil
}

// compileError formats the errors of a failed compilation on one line.
func compileError(iss *cel.Issues) error {
	var msgs []string
	for _, e := range iss.Errors() {
		if e.Location.Line() < 1 {
			msgs = append(msgs, e.Message)
			continue
		}
		msgs = append(msgs, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// checkNodeRefs reports a reference to a node the workflow does not have,
// as nodes.x or nodes["x"]. Such an expression type-checks, nodes being a
// map, but could only fail when it runs. shadowed is set inside a
// comprehension whose own variable is called nodes.
func (c *compiler) checkNodeRefs(e ast.Expr, shadowed bool) error {
	check := func(id string) error {
		if _, ok := c.nodes[id]; !ok && !shadowed {
			return fmt.Errorf("unknown node %q", id)
		}
		return nil
	}
	isNodes := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == "nodes" }
	var sub []ast.Expr
	switch e.Kind() {
	case ast.SelectKind:
		s := e.AsSelect()
		if isNodes(s.Operand()) {
			if err := check(s.FieldName()); err != nil {
				return err
			}
		}
		sub = append(sub, s.Operand())
	case ast.CallKind:
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() == operators.Index && len(args) == 2 && isNodes(args[0]) && args[1].Kind() == ast.LiteralKind {
			if key, ok := args[1].AsLiteral().(types.String); ok {
				if err := check(string(key)); err != nil {
					return err
				}
			}
		}
		if call.IsMemberFunction() {
			sub = append(sub, call.Target())
		}
		sub = append(sub, args...)
	case ast.ListKind:
		sub = e.AsList().Elements()
	case ast.MapKind:
		for _, entry := range e.AsMap().Entries() {
			sub = append(sub, entry.AsMapEntry().Key(), entry.AsMapEntry().Value())
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			sub = append(sub, f.AsStructField().Value())
		}
	case ast.ComprehensionKind:
		comp := e.AsComprehension()
		if err := c.checkNodeRefs(comp.IterRange(), shadowed); err != nil {
			return err
		}
		if err := c.checkNodeRefs(comp.AccuInit(), shadowed); err != nil {
			return err
		}
		inner := shadowed || comp.IterVar() == "nodes" || comp.IterVar2() == "nodes" || comp.AccuVar() == "nodes"
		for _, x := range []ast.Expr{comp.LoopCondition(), comp.LoopStep(), comp.Result()} {
			if err := c.checkNodeRefs(x, inner); err != nil {
				return err
			}
		}
	}
	for _, x := range sub {
		if err := c.checkNodeRefs(x, shadowed); err != nil {
			return err
		}
	}
	return nil
}

// orderMapLiterals makes map literals build orderedMaps, whose iteration
// order does not depend on Go's map order.
func orderMapLiterals(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	if c, ok := i.(interpreter.InterpretableConstructor); ok && c.Type() == types.MapType {
		return orderedMapLiteral{c}, nil
	}
	return i, nil
}

type orderedMapLiteral struct {
	interpreter.InterpretableConstructor
}

func (m orderedMapLiteral) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	return ordered(m.InterpretableConstructor.Exec(frame))
}

func (m orderedMapLiteral) Eval(vars interpreter.Activation) ref.Val {
	return ordered(m.InterpretableConstructor.Eval(vars))
}

func ordered(v ref.Val) ref.Val {
	if m, ok := v.(traits.Mapper); ok {
		if _, done := m.(orderedMap); !done {
			return orderedMap{m}
		}
	}
	return v
}

// activation binds the variables of expressions. Values are converted to
// CEL once per activation, lazily for objects and arrays.
type activation struct {
	input, nodes, execution, workflow ref.Val
	// meter, if set, is charged with the cost of each evaluation.
	meter *Meter
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "input":
		return a.input, true
	case "nodes":
		return a.nodes, true
	case "execution":
		return a.execution, true
	case "workflow":
		return a.workflow, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// eval evaluates p and returns its value in JSON form, bounded by the
// limits of the plan.
func (p *program) eval(vars *activation, limits Limits) (any, []byte, error) {
	out, det, err := p.prog.Eval(vars)
	if vars.meter != nil {
		// The cost CEL counted, which is the same on every replica; an
		// evaluation stopped at the limit cost the limit.
		cost := limits.CostLimit
		if det != nil && det.ActualCost() != nil {
			cost = min(*det.ActualCost(), cost)
		}
		vars.meter.Cost += cost
	}
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			return nil, nil, fmt.Errorf("cost limit exceeded (limit %d)", limits.CostLimit)
		}
		return nil, nil, err
	}
	budget := limits.MaxValueBytes
	v, err := jsonValue(out, &budget)
	if errors.Is(err, errTooLarge) || budget < 0 {
		return nil, nil, valueTooLarge(limits)
	}
	if err != nil {
		return nil, nil, err
	}
	raw, err := marshalJSON(v)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > limits.MaxValueBytes {
		return nil, nil, valueTooLarge(limits)
	}
	return v, raw, nil
}

func valueTooLarge(limits Limits) error {
	return fmt.Errorf("value exceeds %d bytes", limits.MaxValueBytes)
}

// scopeActivation is the activation of a Scope, with the per-node entries
// of the nodes variable kept so that the decider can update statuses.
type scopeActivation struct {
	vars  *activation
	nodes []map[string]any // by node index: {"status", "output"}
}

// newActivation binds the variables of expressions to s. nodes holds every
// node of the plan, so that nodes.x.status works for pending nodes too.
func (p *Plan) newActivation(s *Scope) *scopeActivation {
	if s == nil {
		s = &Scope{}
	}
	a := &scopeActivation{nodes: make([]map[string]any, len(p.def.Nodes))}
	all := make(map[string]any, len(p.def.Nodes))
	for i, n := range p.def.Nodes {
		v := s.Nodes[n.ID]
		status := v.Status
		if status == "" {
			status = NodePending
		}
		a.nodes[i] = map[string]any{"status": string(status), "output": v.Output}
		all[n.ID] = a.nodes[i]
	}
	workflowID := s.WorkflowID
	if workflowID == "" {
		workflowID = p.def.ID
	}
	conv := celAdapter{}
	a.vars = &activation{
		input:     conv.NativeToValue(s.Input),
		nodes:     conv.NativeToValue(all),
		execution: conv.NativeToValue(map[string]any{"id": s.ExecutionID}),
		workflow:  conv.NativeToValue(map[string]any{"id": workflowID}),
		meter:     s.Meter,
	}
	return a
}

func (a *scopeActivation) setStatus(n int, s NodeStatus) {
	a.nodes[n]["status"] = string(s)
}

func (a *scopeActivation) setStatuses(status []NodeStatus) {
	for n, s := range status {
		a.setStatus(n, s)
	}
}
