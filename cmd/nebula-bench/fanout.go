package main

import (
	"encoding/json"
	"fmt"
)

// fanoutWidth is how many parallel nodes the fanout workload runs between
// its root and its join.
const fanoutWidth = 100

// fanoutWorkflow builds the fanout workload's definition: a root
// builtin.set, fanoutWidth builtin.set nodes that each depend on the root
// only (so they are all ready at once), and a join builtin.set that depends
// on all of them and reads a few of their outputs.
func fanoutWorkflow() string {
	type node struct {
		ID     string         `json:"id"`
		Action string         `json:"action"`
		Params map[string]any `json:"params"`
	}
	type conn struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	nodes := []node{{ID: "root", Action: "builtin.set", Params: map[string]any{
		"value": map[string]any{"n": "{{ input.n }}"},
	}}}
	var conns []conn
	for i := range fanoutWidth {
		id := fmt.Sprintf("p%03d", i)
		nodes = append(nodes, node{ID: id, Action: "builtin.set", Params: map[string]any{
			"value": map[string]any{"n": fmt.Sprintf("{{ nodes.root.output.n + %d }}", i)},
		}})
		conns = append(conns, conn{From: "root", To: id}, conn{From: id, To: "join"})
	}
	last := fmt.Sprintf("p%03d", fanoutWidth-1)
	nodes = append(nodes, node{ID: "join", Action: "builtin.set", Params: map[string]any{
		"value": map[string]any{
			"sum": fmt.Sprintf("{{ nodes.p000.output.n + nodes.p050.output.n + nodes.%s.output.n }}", last),
		},
	}})
	b, err := json.Marshal(map[string]any{
		"id":          "bench-fanout",
		"name":        fmt.Sprintf("fan-out of %d builtin.set with a join", fanoutWidth),
		"nodes":       nodes,
		"connections": conns,
	})
	if err != nil {
		panic(err) // only maps, strings and slices: cannot fail
	}
	return string(b)
}
