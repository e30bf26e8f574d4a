package engine

import "fmt"

// Bounded work per log entry.
//
// Applying an entry may run work inline: the decider's conditions, each
// ready node's params (CEL), and pure builtins, whole chains of them. Left
// unbounded, one execution of a wide workflow would hold the state machine
// of every replica for seconds, and every other tenant with it. So each
// entry has a budget, counted in CEL cost units and node attempts, never in
// time, so that every replica stops at the same point: an execution that
// reaches it is deferred (recorded in the state), and a later Continue
// command, proposed by the leader, picks up where it stopped. Within an
// entry each execution also has a share of its own, so that the others in
// the entry get theirs; Continue takes deferred executions with tenants in
// turn.

// Budget is the inline work one log entry may do.
type Budget struct {
	// EntryCost and EntryNodes bound one entry: CEL cost units spent on
	// conditions and params, and node attempts started.
	EntryCost  uint64
	EntryNodes int
	// ExecCost and ExecNodes bound one execution within an entry.
	ExecCost  uint64
	ExecNodes int
}

// defaultBudget is the budget of every entry. A CEL cost unit takes about
// 40 ns on the 2-core machine of BENCHMARKS.md, so an entry spends at most
// about 16 ms on expressions. The node bound is loose: an entry of a full
// group-commit batch of short chains (1,024 starts of 3 nodes) must not be
// cut, since its nodes are cheap and deferring them costs more entries;
// what a costly node spends is counted in cost units. One execution gets
// a share of 150,000 units (three costly nodes) or 64 nodes per turn.
var defaultBudget = Budget{EntryCost: 400_000, EntryNodes: 4096, ExecCost: 150_000, ExecNodes: 64}

// Work is what one log entry has spent of its budget. Whoever applies an
// entry makes one and passes it with each of the entry's commands
// (Stamp.Work); Machine.Apply makes one per command when none is passed.
type Work struct {
	budget Budget
	cost   uint64
	nodes  int
	execs  map[execRef]*spent
	// deferred counts the executions the entry deferred.
	deferred int
}

type spent struct {
	workflow string
	cost     uint64 // in the current turn
	nodes    int    // in the current turn
	total    uint64 // cost in the whole entry
}

// NewWork returns the spending of one entry, under the budget every
// entry has.
func NewWork() *Work {
	return &Work{budget: defaultBudget, execs: make(map[execRef]*spent)}
}

// Cost and Nodes return what the entry spent.
func (w *Work) Cost() uint64 { return w.cost }
func (w *Work) Nodes() int   { return w.nodes }

// Deferred returns how many executions the entry deferred.
func (w *Work) Deferred() int { return w.deferred }

// Heaviest returns the execution that spent the most CEL cost in the
// entry, its workflow and that cost (for the log line of a slow entry).
func (w *Work) Heaviest() (tenant, workflow, executionID string, cost uint64) {
	for ref, s := range w.execs {
		if s.total > cost || executionID == "" {
			tenant, workflow, executionID, cost = ref.tenant, s.workflow, ref.id, s.total
		}
	}
	return tenant, workflow, executionID, cost
}

func (w *Work) charge(ref execRef, workflow string, cost uint64, nodes int) {
	w.cost += cost
	w.nodes += nodes
	s := w.execs[ref]
	if s == nil {
		s = &spent{workflow: workflow}
		w.execs[ref] = s
	}
	s.cost += cost
	s.nodes += nodes
	s.total += cost
}

// over reports whether the execution must stop advancing in this entry.
func (w *Work) over(ref execRef) bool {
	if w.entryOver() {
		return true
	}
	s := w.execs[ref]
	return s != nil && (s.cost >= w.budget.ExecCost || s.nodes >= w.budget.ExecNodes)
}

func (w *Work) entryOver() bool {
	return w.cost >= w.budget.EntryCost || w.nodes >= w.budget.EntryNodes
}

// turn starts a new share for the execution: Continue gives each
// deferred execution a share per turn.
func (w *Work) turn(ref execRef) {
	if s := w.execs[ref]; s != nil {
		s.cost, s.nodes = 0, 0
	}
}

// started reports how many nodes the execution started in this entry (in
// its current turn).
func (w *Work) started(ref execRef) int {
	if s := w.execs[ref]; s != nil {
		return s.nodes
	}
	return 0
}

// DefinitionLimits bound what a saved workflow may be, so that no single
// definition can ask the state machine for unbounded work per decision:
// deciding walks every node, and a definition is read whole.
type DefinitionLimits struct {
	// MaxNodes is engine.max_workflow_nodes, MaxBytes
	// engine.max_definition_bytes (of the canonical JSON).
	MaxNodes int
	MaxBytes int
}

// defaultDefinitionLimits are the limits when none is configured.
var defaultDefinitionLimits = DefinitionLimits{MaxNodes: 1000, MaxBytes: 1 << 20}

// Settings keys of the definition limits in the replicated state.
const (
	settingMaxWorkflowNodes   = "max_workflow_nodes"
	settingMaxDefinitionBytes = "max_definition_bytes"
)

// withDefaults fills unset limits.
func (l DefinitionLimits) withDefaults() DefinitionLimits {
	if l.MaxNodes <= 0 {
		l.MaxNodes = defaultDefinitionLimits.MaxNodes
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = defaultDefinitionLimits.MaxBytes
	}
	return l
}

// check refuses a definition over the limits, naming the limit.
func (l DefinitionLimits) check(def *Definition, size int) error {
	l = l.withDefaults()
	if n := len(def.Nodes); n > l.MaxNodes {
		return fmt.Errorf("%w: workflow %q has %d nodes, more than max_workflow_nodes = %d", ErrInvalidWorkflow, def.ID, n, l.MaxNodes)
	}
	if size > l.MaxBytes {
		return fmt.Errorf("%w: workflow %q is %d bytes, more than max_definition_bytes = %d", ErrInvalidWorkflow, def.ID, size, l.MaxBytes)
	}
	return nil
}
