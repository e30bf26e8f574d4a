package engine

import (
	"encoding/json"
	"fmt"
)

// Decision is what the decider says happens next in an execution.
type Decision struct {
	// Ready are pending nodes to schedule now, in definition order.
	Ready []string
	// Skipped are pending nodes that become skipped now, including those
	// below another skipped node, in definition order.
	Skipped []string
	// Terminal reports that the execution is finished, with Status
	// StatusSucceeded and Output, or StatusFailed and Error. A failed
	// decision has no Ready or Skipped nodes: the nodes that have not
	// finished are to be cancelled.
	Terminal bool
	Status   ExecutionStatus
	Output   json.RawMessage
	Error    string
}

// Decide computes what happens next from the node states in s. It is a
// pure function of the plan and s, so every replica decides the same.
//
// A pending node is decided once none of its predecessors is pending or
// running. It is ready when at least one incoming connection fired (its
// source succeeded and its when is absent or true) and skipped otherwise;
// roots are ready at once. Skipping propagates within one call, since
// nodes are decided in topological order. A failed node fails the
// execution, and so does a when that cannot be evaluated. Once every node
// is finished, the execution succeeds with the value of the workflow's
// output expression or, without one, the output of the sink nodes that
// succeeded.
func (p *Plan) Decide(s *Scope) Decision {
	if s == nil {
		s = &Scope{}
	}
	status := make([]NodeStatus, len(p.def.Nodes))
	for i, n := range p.def.Nodes {
		v, ok := s.Nodes[n.ID]
		switch {
		case ok && v.Status == NodeFailed:
			return failed(fmt.Sprintf("node %q failed: %s", n.ID, v.Error))
		case ok && v.Status != "":
			status[i] = v.Status
		default:
			status[i] = NodePending
		}
	}

	var act *scopeActivation // built at the first expression
	ready := make([]bool, len(p.def.Nodes))
	skipped := make([]bool, len(p.def.Nodes))
	for _, n := range p.order {
		if status[n] != NodePending || !p.decidable(n, status) {
			continue
		}
		fired := len(p.in[n]) == 0
		for _, c := range p.in[n] {
			if status[p.edges[c].from] != NodeSucceeded {
				continue
			}
			// Every guard is evaluated, even after one fired, so that a
			// broken guard fails the execution whatever the others say.
			if p.when[c] == nil {
				fired = true
				continue
			}
			if act == nil {
				act = p.newActivation(s)
				act.setStatuses(status)
			}
			ok, err := p.evalWhen(c, act)
			if err != nil {
				return failed(err.Error())
			}
			fired = fired || ok
		}
		if fired {
			ready[n] = true
			continue
		}
		status[n] = NodeSkipped
		skipped[n] = true
		if act != nil {
			act.setStatus(n, NodeSkipped)
		}
	}

	var d Decision
	finished := true
	for i, n := range p.def.Nodes {
		switch {
		case ready[i]:
			d.Ready = append(d.Ready, n.ID)
		case skipped[i]:
			d.Skipped = append(d.Skipped, n.ID)
		}
		finished = finished && status[i].Terminal()
	}
	if !finished {
		return d
	}
	if p.output != nil && act == nil {
		act = p.newActivation(s)
		act.setStatuses(status)
	}
	out, err := p.executionOutput(s, status, act)
	if err != nil {
		return failed(err.Error())
	}
	d.Terminal, d.Status, d.Output = true, StatusSucceeded, out
	return d
}

func failed(msg string) Decision {
	return Decision{Terminal: true, Status: StatusFailed, Error: msg}
}

// decidable reports whether no predecessor of node n is still to finish.
func (p *Plan) decidable(n int, status []NodeStatus) bool {
	for _, c := range p.in[n] {
		if !status[p.edges[c].from].Terminal() {
			return false
		}
	}
	return true
}

// evalWhen evaluates the guard of connection c.
func (p *Plan) evalWhen(c int, act *scopeActivation) (bool, error) {
	conn := p.def.Connections[c]
	v, _, err := p.when[c].eval(act.vars, p.limits)
	if err != nil {
		return false, fmt.Errorf("connection %s -> %s: when %v: %v", conn.From, conn.To, p.when[c], err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("connection %s -> %s: when %v yielded %s, not a bool", conn.From, conn.To, p.when[c], jsonTypeName(v))
	}
	return b, nil
}

// executionOutput computes the output of a finished execution; act is
// only used, and only needed, when the workflow has an output expression.
func (p *Plan) executionOutput(s *Scope, status []NodeStatus, act *scopeActivation) (json.RawMessage, error) {
	if p.output != nil {
		_, raw, err := p.output.eval(act.vars, p.limits)
		if err != nil {
			return nil, fmt.Errorf("output %v: %v", p.output, err)
		}
		return raw, nil
	}
	var sinks []string
	for i, n := range p.def.Nodes {
		if len(p.out[i]) == 0 && status[i] == NodeSucceeded {
			sinks = append(sinks, n.ID)
		}
	}
	var out any
	switch len(sinks) {
	case 0:
	case 1:
		out = s.Nodes[sinks[0]].Output
	default:
		m := make(map[string]any, len(sinks))
		for _, id := range sinks {
			m[id] = s.Nodes[id].Output
		}
		out = m
	}
	raw, err := marshalJSON(out)
	if err != nil {
		return nil, fmt.Errorf("output: %v", err)
	}
	return raw, nil
}
