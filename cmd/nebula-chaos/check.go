package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checks, as the report names them.
const (
	checkLost        = "no acknowledged execution lost"
	checkOnce        = "exactly once per idempotency key"
	checkAttempts    = "no node attempt recorded twice"
	checkTransitions = "statuses follow the state machine"
	checkLinear      = "consistent reads linearizable"
	checkReplicas    = "replicas agree"
	checkOutputs     = "outputs match inputs"
)

var checkNames = []string{checkLost, checkOnce, checkAttempts, checkTransitions, checkLinear, checkReplicas, checkOutputs}

// Final is what the cluster holds once the load has stopped, the faults
// are healed and the executions had time to finish.
type Final struct {
	Nodes  []string                     `json:"nodes"`
	Listed map[string]map[string]Listed `json:"listed"`           // node → execution id → listing (nil: the list could not be read)
	Execs  map[string]*FinalExec        `json:"execs"`            // every execution acknowledged or listed
	Errors map[string]string            `json:"errors,omitempty"` // node → why it could not be listed
}

// Listed is an execution as a consistent list on one node shows it.
type Listed struct {
	Key    string `json:"key"`
	Status string `json:"status"`
}

// FinalExec is one execution as read, with a read barrier, from each node.
type FinalExec struct {
	ID       string              `json:"id"`
	Key      string              `json:"key"`
	Input    *int                `json:"input"`
	Output   json.RawMessage     `json:"output,omitempty"`
	Status   map[string]string   `json:"status"`           // node → status ("" when unreadable)
	Errors   map[string]string   `json:"errors,omitempty"` // node → why it was unreadable
	Nodes    map[string]NodeView `json:"nodes"`            // workflow node → state
	Journals map[string][]Entry  `json:"journals"`         // node → journal
}

// NodeView is a workflow node's state in an execution.
type NodeView struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
}

// Entry is a journal entry (CONTRACT §5), the fields the checks use and
// those that tell two replicas' entries apart.
type Entry struct {
	Seq            int64           `json:"seq"`
	Type           string          `json:"type"`
	At             string          `json:"at"`
	Node           string          `json:"node,omitempty"`
	Attempt        int             `json:"attempt,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Output         json.RawMessage `json:"output,omitempty"`
	Error          json.RawMessage `json:"error,omitempty"`
}

// failed reports whether a node_attempt_finished entry carries an error.
func (e Entry) failed() bool {
	t := bytes.TrimSpace(e.Error)
	return len(t) > 0 && !bytes.Equal(t, []byte("null")) && !bytes.Equal(t, []byte(`""`))
}

// Violation is one broken guarantee.
type Violation struct {
	Check  string `json:"check"`
	Exec   string `json:"exec,omitempty"`
	Detail string `json:"detail"`
}

// Result is the verdict on a history.
type Result struct {
	Violations []Violation
	Porcupine  porcupine.CheckResult
	LinOps     int // operations given to porcupine
	LinExecs   int // their partitions, one per execution
	Attempts   int // node attempts in the journals
	Rerun      int // attempts that ended without a result and were run again
	Statuses   map[string]int
	// illegal holds the operations of the executions porcupine refused,
	// for the visualization.
	illegal []porcupine.Operation
}

// Failed lists the checks with violations.
func (r *Result) Failed() map[string]int {
	m := map[string]int{}
	for _, v := range r.Violations {
		m[v.Check]++
	}
	return m
}

// check runs every checker on a history and the final state.
func check(h []Op, f *Final, linTimeout time.Duration) *Result {
	r := &Result{Statuses: map[string]int{}}
	for _, fe := range f.Execs {
		r.Statuses[finalStatus(f, fe)]++
	}
	r.Violations = append(r.Violations, checkLostExecs(h, f)...)
	r.Violations = append(r.Violations, checkExactlyOnce(h, f)...)
	r.Violations = append(r.Violations, checkNodeAttempts(f, r)...)
	r.Violations = append(r.Violations, checkStatusOrder(h, f)...)
	r.Violations = append(r.Violations, checkLinearizable(h, r, linTimeout)...)
	r.Violations = append(r.Violations, checkReplicasAgree(f)...)
	r.Violations = append(r.Violations, checkOutputsMatch(h, f)...)
	return r
}

// Status order: absent (not created) < pending < running < a terminal
// status; a terminal status never changes.
const absent = "absent"

func rank(s string) int {
	switch s {
	case absent, notFound:
		return 0
	case "pending":
		return 1
	case "running":
		return 2
	}
	return 3
}

func terminal(s string) bool {
	switch s {
	case "succeeded", "failed", "cancelled", "timed_out":
		return true
	}
	return false
}

// reachable reports whether an execution in status from may be seen in
// status to later, moving along the state machine on its own.
func reachable(from, to string) bool {
	if from == to || from == notFound && to == absent || from == absent && to == notFound {
		return true
	}
	if terminal(from) {
		return false
	}
	return rank(to) > rank(from)
}

// finalStatus is the status the nodes agree on, or "unreadable".
func finalStatus(f *Final, fe *FinalExec) string {
	for _, n := range f.Nodes {
		if s := fe.Status[n]; s != "" {
			return s
		}
	}
	return "unreadable"
}

// firstJournal is the journal of the first node that gave one.
func firstJournal(f *Final, fe *FinalExec) []Entry {
	for _, n := range f.Nodes {
		if j, ok := fe.Journals[n]; ok {
			return j
		}
	}
	return nil
}

func at(ns int64) string { return "+" + time.Duration(ns).Round(time.Millisecond).String() }

// acked maps each acknowledged execution to the first start that
// acknowledged it.
func acked(h []Op) (map[string]Op, []string) {
	m := map[string]Op{}
	var order []string
	for _, op := range h {
		if op.Kind == OpStart && op.Outcome == OutOK {
			if _, ok := m[op.Exec]; !ok {
				m[op.Exec] = op
				order = append(order, op.Exec)
			}
		}
	}
	return m, order
}

// checkLostExecs: every start answered 2xx names an execution that every
// node lists and reads, with a barrier, in a terminal status.
func checkLostExecs(h []Op, f *Final) []Violation {
	var vs []Violation
	for _, n := range f.Nodes {
		if _, ok := f.Listed[n]; !ok {
			vs = append(vs, Violation{checkLost, "", fmt.Sprintf("%s could not list its executions: %s", n, f.Errors[n])})
		}
	}
	m, order := acked(h)
	for _, id := range order {
		op := m[id]
		fe := f.Execs[id]
		if fe == nil {
			vs = append(vs, Violation{checkLost, id, fmt.Sprintf("start of key %s acknowledged by %s at %s, never read back", op.Key, op.Node, at(op.Return))})
			continue
		}
		var unfinished []string
		for _, n := range f.Nodes {
			switch s := fe.Status[n]; {
			case s == "":
				vs = append(vs, Violation{checkLost, id, fmt.Sprintf("acknowledged by %s at %s (key %s) but %s cannot read it: %s", op.Node, at(op.Return), op.Key, n, fe.Errors[n])})
			case s == notFound:
				vs = append(vs, Violation{checkLost, id, fmt.Sprintf("acknowledged by %s at %s (key %s) but %s answers not found", op.Node, at(op.Return), op.Key, n)})
			case !terminal(s):
				unfinished = append(unfinished, s+" on "+n)
			}
			if l, ok := f.Listed[n]; ok {
				if _, listed := l[id]; !listed {
					vs = append(vs, Violation{checkLost, id, fmt.Sprintf("acknowledged at %s but missing from %s's list", at(op.Return), n)})
				}
			}
		}
		if len(unfinished) > 0 {
			vs = append(vs, Violation{checkLost, id, fmt.Sprintf("acknowledged at %s, not terminal after the settle wait: %s", at(op.Return), strings.Join(unfinished, ", "))})
		}
	}
	return vs
}

// checkExactlyOnce: each idempotency key has at most one execution, and
// the one every acknowledged start of the key named.
func checkExactlyOnce(h []Op, f *Final) []Violation {
	var vs []Violation
	answered := map[string][]string{} // key → ids the acknowledged starts named
	var keys []string
	for _, op := range h {
		if op.Kind != OpStart {
			continue
		}
		if _, ok := answered[op.Key]; !ok {
			keys = append(keys, op.Key)
			answered[op.Key] = nil
		}
		if op.Outcome == OutOK && !slices.Contains(answered[op.Key], op.Exec) {
			answered[op.Key] = append(answered[op.Key], op.Exec)
		}
	}
	held := map[string][]string{} // key → executions the cluster holds
	addHeld := func(key, id string) {
		if key != "" && !slices.Contains(held[key], id) {
			held[key] = append(held[key], id)
		}
	}
	for _, n := range f.Nodes {
		for id, l := range f.Listed[n] {
			addHeld(l.Key, id)
		}
	}
	for id, fe := range f.Execs {
		addHeld(fe.Key, id)
	}
	for _, key := range keys {
		ids, have := answered[key], held[key]
		sort.Strings(have)
		switch {
		case len(ids) > 1:
			vs = append(vs, Violation{checkOnce, ids[0], fmt.Sprintf("key %s: starts acknowledged with different executions %s", key, strings.Join(ids, ", "))})
		case len(have) > 1:
			vs = append(vs, Violation{checkOnce, have[0], fmt.Sprintf("key %s has %d executions: %s", key, len(have), strings.Join(have, ", "))})
		case len(ids) == 1 && len(have) == 1 && have[0] != ids[0]:
			vs = append(vs, Violation{checkOnce, ids[0], fmt.Sprintf("key %s: acknowledged as %s but the cluster holds %s", key, ids[0], have[0])})
		}
	}
	return vs
}

type attemptID struct {
	node    string
	attempt int
}

// checkNodeAttempts: in each journal every (node, attempt) starts once and
// finishes at most once, after it started; a node has at most one
// successful attempt, exactly one if it succeeded; and the attempts an
// execution shows are the ones its journal started.
func checkNodeAttempts(f *Final, r *Result) []Violation {
	var vs []Violation
	for _, id := range sortedIDs(f) {
		fe := f.Execs[id]
		j := firstJournal(f, fe)
		started := map[attemptID]int64{}  // → seq of its start
		finished := map[attemptID]int64{} // → seq of its first finish
		succeeded := map[string]int{}
		attempts := map[string]int{}
		for _, e := range j {
			a := attemptID{e.Node, e.Attempt}
			switch e.Type {
			case "node_attempt_started":
				if seq, dup := started[a]; dup {
					vs = append(vs, Violation{checkAttempts, id, fmt.Sprintf("attempt %d of node %s started twice (seq %d and %d)", a.attempt, a.node, seq, e.Seq)})
					continue
				}
				started[a] = e.Seq
				attempts[a.node]++
				r.Attempts++
			case "node_attempt_finished":
				if seq, dup := finished[a]; dup {
					vs = append(vs, Violation{checkAttempts, id, fmt.Sprintf("attempt %d of node %s finished twice (seq %d and %d)", a.attempt, a.node, seq, e.Seq)})
					continue
				}
				finished[a] = e.Seq
				if _, ok := started[a]; !ok {
					vs = append(vs, Violation{checkAttempts, id, fmt.Sprintf("attempt %d of node %s finished (seq %d) without having started", a.attempt, a.node, e.Seq)})
				}
				if e.failed() {
					if a.attempt < fe.Nodes[a.node].Attempts {
						r.Rerun++
					}
				} else {
					succeeded[a.node]++
				}
			}
		}
		nodes := make([]string, 0, len(fe.Nodes))
		for n := range fe.Nodes {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			nv := fe.Nodes[n]
			if succeeded[n] > 1 {
				vs = append(vs, Violation{checkAttempts, id, fmt.Sprintf("node %s has %d successful attempts", n, succeeded[n])})
			}
			if nv.Status == "succeeded" && succeeded[n] == 0 {
				vs = append(vs, Violation{checkAttempts, id, fmt.Sprintf("node %s succeeded without a successful attempt in the journal", n)})
			}
			// The execution and its journal are two reads: they match only
			// once nothing moves any more.
			if j != nil && terminal(finalStatus(f, fe)) && nv.Attempts != attempts[n] {
				vs = append(vs, Violation{checkAttempts, id, fmt.Sprintf("node %s shows %d attempts, its journal starts %d", n, nv.Attempts, attempts[n])})
			}
		}
	}
	return vs
}

// observation is one status an operation saw.
type observation struct {
	op     Op
	linear bool // consistent read, or the answer to a write (read-your-writes)
}

// linearOp reports whether op's answer reflects the state at a moment
// within it: a consistent read, or a start or cancel, answered after the
// write applied on the node that answered.
func linearOp(op Op) bool {
	return op.Outcome == OutOK && (op.Consistent || op.Kind == OpStart || op.Kind == OpCancel)
}

// checkStatusOrder: no client sees an execution's status go backwards, a
// terminal status never changes, and each journal's execution-level
// entries come in a legal order, ending as the execution did.
//
// A local read may lag, so it is compared only with what the same client
// saw earlier on the same node (a node's state only moves forward, across
// restarts too); a linearizable answer is compared with everything the
// client saw before it.
func checkStatusOrder(h []Op, f *Final) []Violation {
	var vs []Violation
	type ck struct {
		client int
		exec   string
	}
	seen := map[ck][]observation{}
	terminalSeen := map[string]Op{}
	for _, op := range sortedByCall(h) {
		if op.Outcome != OutOK || op.Exec == "" || op.Status == "" {
			continue
		}
		if terminal(op.Status) {
			if first, ok := terminalSeen[op.Exec]; !ok {
				terminalSeen[op.Exec] = op
			} else if first.Status != op.Status {
				vs = append(vs, Violation{checkTransitions, op.Exec, fmt.Sprintf("terminal status changed: %s by client %d on %s at %s, then %s by client %d on %s at %s", first.Status, first.Client, first.Node, at(first.Return), op.Status, op.Client, op.Node, at(op.Return))})
			}
		}
		k := ck{op.Client, op.Exec}
		o := observation{op, linearOp(op)}
		for _, prev := range seen[k] {
			if prev.op.Return >= op.Call {
				continue // concurrent: no order between them
			}
			if !o.linear && prev.op.Node != op.Node {
				continue // a lagging node may show an older state
			}
			if !reachable(prev.op.Status, op.Status) {
				vs = append(vs, Violation{checkTransitions, op.Exec, fmt.Sprintf("client %d saw %s (%s on %s at %s), then %s (%s on %s at %s)", op.Client, prev.op.Status, describeOp(prev.op), prev.op.Node, at(prev.op.Return), op.Status, describeOp(op), op.Node, at(op.Call))})
				break
			}
		}
		seen[k] = append(seen[k], o)
	}
	for _, id := range sortedIDs(f) {
		fe := f.Execs[id]
		final := finalStatus(f, fe)
		if first, ok := terminalSeen[id]; ok && terminal(final) && first.Status != final {
			vs = append(vs, Violation{checkTransitions, id, fmt.Sprintf("terminal status changed: %s by client %d at %s, %s at the end", first.Status, first.Client, at(first.Return), final)})
		}
		if j := firstJournal(f, fe); j != nil {
			vs = append(vs, journalOrder(id, j, final)...)
		}
	}
	return vs
}

func describeOp(op Op) string {
	switch {
	case op.Kind == OpRead && op.Consistent:
		return "consistent read"
	case op.Kind == OpRead:
		return "local read"
	}
	return string(op.Kind)
}

// journalOrder checks a journal's sequence numbers and its execution-level
// entries: [queued] [started] [cancellation_requested] terminal, with a
// requested cancellation ending cancelled, an execution that never started
// not succeeding, and nothing execution-level after the end.
func journalOrder(id string, j []Entry, final string) []Violation {
	var vs []Violation
	bad := func(format string, args ...any) {
		vs = append(vs, Violation{checkTransitions, id, "journal: " + fmt.Sprintf(format, args...)})
	}
	const (
		sNew = iota
		sQueued
		sStarted
		sCancelling
		sEnded
	)
	state, ended := sNew, ""
	var prevSeq int64
	for _, e := range j {
		if e.Seq <= prevSeq {
			bad("seq %d after seq %d", e.Seq, prevSeq)
		}
		prevSeq = e.Seq
		next := -1
		switch e.Type {
		case "execution_queued":
			if state == sNew {
				next = sQueued
			}
		case "execution_started":
			if state == sNew || state == sQueued {
				next = sStarted
			}
		case "cancellation_requested":
			if state < sCancelling {
				next = sCancelling
			}
		case "execution_succeeded":
			if state == sStarted {
				next = sEnded
			}
		case "execution_cancelled":
			if state < sEnded {
				next = sEnded
			}
		case "execution_failed", "execution_timed_out":
			if state < sCancelling {
				next = sEnded
			}
		default:
			continue // a node-level entry
		}
		if next < 0 {
			bad("%s (seq %d) after %s", e.Type, e.Seq, journalStateName(state, ended))
			continue
		}
		state = next
		if state == sEnded {
			ended = strings.TrimPrefix(e.Type, "execution_")
		}
	}
	// The journal is read after the execution: it may have ended since,
	// but it cannot end otherwise than the execution did.
	switch {
	case terminal(final) && state != sEnded:
		bad("execution is %s but its journal has no terminal entry", final)
	case terminal(final) && ended != final:
		bad("execution is %s but its journal ends %s", final, ended)
	}
	return vs
}

func journalStateName(state int, ended string) string {
	return [...]string{"the beginning", "execution_queued", "execution_started", "cancellation_requested", "execution_" + ended}[state]
}

// linInput is an operation as porcupine sees it.
type linInput struct {
	Kind   OpKind
	Exec   string
	Node   string
	Client int
}

// statusModel is an execution seen as a register that moves on its own
// along the state machine: an operation answering status s is legal if s
// is reachable from the current state, which becomes s. A start creates
// the execution; a cancel's answer is terminal.
var statusModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byExec := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			id := op.Input.(linInput).Exec
			if _, ok := byExec[id]; !ok {
				order = append(order, id)
			}
			byExec[id] = append(byExec[id], op)
		}
		parts := make([][]porcupine.Operation, 0, len(order))
		for _, id := range order {
			parts = append(parts, byExec[id])
		}
		return parts
	},
	Init: func() any { return absent },
	Step: func(state, input, output any) (bool, any) {
		from, in, out := state.(string), input.(linInput), output.(string)
		switch in.Kind {
		case OpStart:
			if out == notFound {
				return false, state
			}
		case OpCancel:
			if !terminal(out) && out != notFound {
				return false, state
			}
		}
		if !reachable(from, out) {
			return false, state
		}
		if out == notFound {
			out = absent
		}
		return true, out
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		return fmt.Sprintf("%s on %s → %s", in.Kind, in.Node, output)
	},
	DescribeState: func(state any) string { return state.(string) },
}

// linearHistory turns the linearizable operations into porcupine's form,
// with unique client ids per recorded client.
func linearHistory(h []Op) []porcupine.Operation {
	var ops []porcupine.Operation
	for _, op := range h {
		if !linearOp(op) || op.Exec == "" || op.Status == "" {
			continue
		}
		ops = append(ops, porcupine.Operation{
			ClientId: op.Client,
			Input:    linInput{Kind: op.Kind, Exec: op.Exec, Node: op.Node, Client: op.Client},
			Call:     op.Call,
			Output:   op.Status,
			Return:   op.Return,
		})
	}
	return ops
}

// checkLinearizable runs porcupine over the consistent reads and the
// answers to starts and cancels, partitioned by execution. On failure it
// finds the executions whose operations cannot be linearized.
func checkLinearizable(h []Op, r *Result, timeout time.Duration) []Violation {
	ops := linearHistory(h)
	r.LinOps = len(ops)
	r.LinExecs = len(statusModel.Partition(ops))
	r.Porcupine = porcupine.CheckOperationsTimeout(statusModel, ops, timeout)
	switch r.Porcupine {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return []Violation{{Check: checkLinear, Detail: fmt.Sprintf("porcupine gave no verdict within %s", timeout)}}
	}
	var vs []Violation
	for _, part := range statusModel.Partition(ops) {
		if porcupine.CheckOperations(statusModel, part) {
			continue
		}
		id := part[0].Input.(linInput).Exec
		var seq []string
		sorted := slices.Clone(part)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
		for _, op := range sorted {
			in := op.Input.(linInput)
			seq = append(seq, fmt.Sprintf("client %d %s on %s [%s, %s] → %s", in.Client, in.Kind, in.Node, at(op.Call), at(op.Return), op.Output))
		}
		vs = append(vs, Violation{checkLinear, id, "no linearization of: " + strings.Join(seq, "; ")})
		r.illegal = append(r.illegal, part...)
	}
	return vs
}

// visualize writes porcupine's view of the executions it refused, with the
// faults as annotations.
func visualize(r *Result, faults []faultRecord, w io.Writer) error {
	_, info := porcupine.CheckOperationsVerbose(statusModel, r.illegal, 0)
	var notes []porcupine.Annotation
	for _, f := range faults {
		notes = append(notes, porcupine.Annotation{
			Tag:         "faults",
			Start:       int64(f.Start),
			End:         int64(f.Healed),
			Description: f.Kind + " " + f.Node,
			Details:     f.Note,
		})
	}
	info.AddAnnotations(notes)
	return porcupine.Visualize(statusModel, info, w)
}

// checkReplicasAgree: after healing, every node holds the same journal
// and status for each execution that has ended, and lists the same
// executions. (The nodes are read one after the other: an execution still
// moving may differ between two reads without the replicas diverging.)
func checkReplicasAgree(f *Final) []Violation {
	var vs []Violation
	for _, id := range sortedIDs(f) {
		fe := f.Execs[id]
		ended := true
		for _, n := range f.Nodes {
			ended = ended && terminal(fe.Status[n])
		}
		if !ended {
			continue
		}
		var refNode string
		var ref []byte
		for _, n := range f.Nodes {
			j, ok := fe.Journals[n]
			if !ok {
				if s := fe.Status[n]; s != "" && s != notFound {
					vs = append(vs, Violation{checkReplicas, id, fmt.Sprintf("%s reads the execution but not its journal: %s", n, fe.Errors[n])})
				}
				continue
			}
			b, _ := json.Marshal(j)
			if ref == nil {
				refNode, ref = n, b
			} else if !bytes.Equal(b, ref) {
				vs = append(vs, Violation{checkReplicas, id, fmt.Sprintf("journal on %s (%d entries) differs from %s's (%d entries)", n, len(j), refNode, len(fe.Journals[refNode]))})
			}
		}
		statuses := map[string]bool{}
		for _, n := range f.Nodes {
			if s := fe.Status[n]; s != "" {
				statuses[s] = true
			}
		}
		if len(statuses) > 1 {
			vs = append(vs, Violation{checkReplicas, id, fmt.Sprintf("nodes read different statuses with a barrier: %v", fe.Status)})
		}
	}
	var ref string
	for _, n := range f.Nodes {
		l, ok := f.Listed[n]
		if !ok {
			continue
		}
		if ref == "" {
			ref = n
			continue
		}
		for id := range l {
			if _, ok := f.Listed[ref][id]; !ok {
				vs = append(vs, Violation{checkReplicas, id, fmt.Sprintf("listed by %s, not by %s", n, ref)})
			}
		}
		for id := range f.Listed[ref] {
			if _, ok := l[id]; !ok {
				vs = append(vs, Violation{checkReplicas, id, fmt.Sprintf("listed by %s, not by %s", ref, n)})
			}
		}
	}
	return vs
}

// checkOutputsMatch: an execution carries the input its key was started
// with, and one that succeeded returns that input plus one.
func checkOutputsMatch(h []Op, f *Final) []Violation {
	var vs []Violation
	inputs := map[string]int{}
	for _, op := range h {
		if op.Kind == OpStart {
			inputs[op.Key] = op.Input
		}
	}
	for _, id := range sortedIDs(f) {
		fe := f.Execs[id]
		want, ok := inputs[fe.Key]
		if !ok {
			continue // not started by this run
		}
		if fe.Input == nil || *fe.Input != want {
			got := "none"
			if fe.Input != nil {
				got = fmt.Sprint(*fe.Input)
			}
			vs = append(vs, Violation{checkOutputs, id, fmt.Sprintf("key %s was started with n=%d, the execution has n=%s", fe.Key, want, got)})
			continue
		}
		if finalStatus(f, fe) == "succeeded" {
			if got := strings.TrimSpace(string(fe.Output)); got != fmt.Sprint(want+1) {
				vs = append(vs, Violation{checkOutputs, id, fmt.Sprintf("input n=%d, output %s, want %d", want, got, want+1)})
			}
		}
	}
	return vs
}

func sortedIDs(f *Final) []string {
	ids := make([]string, 0, len(f.Execs))
	for id := range f.Execs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sortedByCall(h []Op) []Op {
	s := slices.Clone(h)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Call < s[j].Call })
	return s
}
