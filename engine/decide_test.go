package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// nodeViews builds node states from "status" or "status detail" strings,
// where detail is the JSON output of a succeeded node or the error of a
// failed one.
func nodeViews(t *testing.T, states map[string]string) map[string]NodeView {
	t.Helper()
	views := make(map[string]NodeView, len(states))
	for id, st := range states {
		status, detail, _ := strings.Cut(st, " ")
		v := NodeView{Status: NodeStatus(status)}
		switch v.Status {
		case NodeSucceeded:
			v.Output = mustDecode(t, detail)
		case NodeFailed:
			v.Error = detail
		}
		views[id] = v
	}
	return views
}

func TestDecide(t *testing.T) {
	greet := string(readFile(t, "testdata/workflows/greet.json"))
	const (
		chain = `{"id": "chain", "nodes": [{"id": "a", "action": "x"}, {"id": "b", "action": "x"}, {"id": "c", "action": "x"}],
			"connections": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}`
		// a -> b is guarded; b, c and d below it are skipped together.
		guardedChain = `{"id": "guarded", "nodes": [{"id": "d", "action": "x"}, {"id": "c", "action": "x"}, {"id": "a", "action": "x"}, {"id": "b", "action": "x"}],
			"connections": [{"from": "a", "to": "b", "when": "input.go"}, {"from": "b", "to": "c", "when": "nodes.b.output.x > 1"}, {"from": "c", "to": "d"}]}`
		// start branches to left or right, which join.
		join = `{"id": "join", "nodes": [{"id": "start", "action": "x"}, {"id": "left", "action": "x"}, {"id": "right", "action": "x"}, {"id": "join", "action": "x"}],
			"connections": [{"from": "start", "to": "left", "when": "input.left"}, {"from": "start", "to": "right", "when": "!input.left"},
				{"from": "left", "to": "join"}, {"from": "right", "to": "join"}]}`
		fanOut = `{"id": "fan", "nodes": [{"id": "root", "action": "x"}, {"id": "z", "action": "x"}, {"id": "y", "action": "x"}],
			"connections": [{"from": "root", "to": "z", "when": "input.z"}, {"from": "root", "to": "y"}]}`
		withOutput = `{"id": "out", "nodes": [{"id": "a", "action": "x"}, {"id": "b", "action": "x"}, {"id": "c", "action": "x"}],
			"connections": [{"from": "a", "to": "c", "when": "false"}],
			"output": "{'sum': nodes.a.output + nodes.b.output, 'c': nodes.c.status, 'wf': workflow.id, 'in': input}"}`
		badOutput = `{"id": "out", "nodes": [{"id": "a", "action": "x"}], "output": "nodes.a.output.missing"}`
		badWhen   = `{"id": "bad", "nodes": [{"id": "a", "action": "x"}, {"id": "b", "action": "x"}], "connections": [{"from": "a", "to": "b", "when": "nodes.a.output.flag"}]}`
		twoWays   = `{"id": "two", "nodes": [{"id": "a", "action": "x"}, {"id": "b", "action": "x"}, {"id": "c", "action": "x"}],
			"connections": [{"from": "a", "to": "c", "when": "false"}, {"from": "b", "to": "c"}]}`
	)
	tests := []struct {
		name, def, input string
		nodes            map[string]string
		want             Decision
	}{
		{"chain: root is ready", chain, `{}`, nil, Decision{Ready: []string{"a"}}},
		{"chain: running root", chain, `{}`, map[string]string{"a": "running"}, Decision{}},
		{"chain: next node", chain, `{}`, map[string]string{"a": "succeeded 1"}, Decision{Ready: []string{"b"}}},
		{"chain: running last node", chain, `{}`, map[string]string{"a": "succeeded 1", "b": "succeeded 2", "c": "running"}, Decision{}},
		{"chain: done", chain, `{}`, map[string]string{"a": "succeeded 1", "b": "succeeded 2", "c": "succeeded {\"v\": 3}"},
			Decision{Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`{"v":3}`)}},
		{"chain: failed node", chain, `{}`, map[string]string{"a": "succeeded 1", "b": "failed boom"},
			Decision{Terminal: true, Status: StatusFailed, Error: `node "b" failed: boom`}},
		{"chain: first failed node in definition order", chain, `{}`, map[string]string{"c": "failed late", "a": "failed early"},
			Decision{Terminal: true, Status: StatusFailed, Error: `node "a" failed: early`}},

		{"greet n=3: start", greet, `{"name": "Ada", "n": 3}`, nil, Decision{Ready: []string{"make"}}},
		{"greet n=3: small branch", greet, `{"name": "Ada", "n": 3}`, map[string]string{"make": `succeeded {"msg": "Hello Ada", "n": 6}`},
			Decision{Ready: []string{"small"}, Skipped: []string{"big"}}},
		{"greet n=3: done", greet, `{"name": "Ada", "n": 3}`, map[string]string{"make": `succeeded {"msg": "Hello Ada", "n": 6}`, "big": "skipped", "small": `succeeded "small"`},
			Decision{Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`"small"`)}},
		{"greet n=21: big branch", greet, `{"name": "Ada", "n": 21}`, map[string]string{"make": `succeeded {"msg": "Hello Ada", "n": 42}`},
			Decision{Ready: []string{"big"}, Skipped: []string{"small"}}},
		{"greet n=21: done", greet, `{"name": "Ada", "n": 21}`, map[string]string{"make": `succeeded {"msg": "Hello Ada", "n": 42}`, "big": "succeeded 42", "small": "skipped"},
			Decision{Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`42`)}},

		{"skip propagates down a chain", guardedChain, `{"go": false}`, map[string]string{"a": "succeeded 1"},
			Decision{Skipped: []string{"d", "c", "b"}, Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`null`)}},
		{"guard of a skipped node is not evaluated", guardedChain, `{"go": true}`, map[string]string{"a": "succeeded 1", "b": `succeeded {"x": 0}`},
			Decision{Skipped: []string{"d", "c"}, Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`null`)}},

		{"join: one branch skipped", join, `{"left": true}`, map[string]string{"start": "succeeded {}"},
			Decision{Ready: []string{"left"}, Skipped: []string{"right"}}},
		{"join: waits for the running branch", join, `{"left": true}`, map[string]string{"start": "succeeded {}", "left": "running", "right": "skipped"}, Decision{}},
		{"join: runs after the other branch", join, `{"left": false}`, map[string]string{"start": "succeeded {}", "left": "skipped", "right": "succeeded 2"},
			Decision{Ready: []string{"join"}}},
		{"join: done", join, `{"left": false}`, map[string]string{"start": "succeeded {}", "left": "skipped", "right": "succeeded 2", "join": "succeeded 3"},
			Decision{Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`3`)}},
		{"join: skipped when both branches are", join, `{"left": true}`, map[string]string{"start": "succeeded {}", "left": "skipped", "right": "skipped"},
			Decision{Skipped: []string{"join"}, Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`null`)}},
		{"one fired connection is enough", twoWays, `{}`, map[string]string{"a": "succeeded 1", "b": "succeeded 2"}, Decision{Ready: []string{"c"}}},
		{"several roots", twoWays, `{}`, nil, Decision{Ready: []string{"a", "b"}}},

		{"ready in definition order", fanOut, `{"z": true}`, map[string]string{"root": "succeeded 0"}, Decision{Ready: []string{"z", "y"}}},
		{"several sinks", fanOut, `{"z": true}`, map[string]string{"root": "succeeded 0", "z": "succeeded 26", "y": `succeeded "why"`},
			Decision{Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`{"y":"why","z":26}`)}},
		{"one sink of two succeeded", fanOut, `{"z": false}`, map[string]string{"root": "succeeded 0", "y": `succeeded "why"`},
			Decision{Skipped: []string{"z"}, Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`"why"`)}},
		{"cancelled nodes count as finished", fanOut, `{"z": true}`, map[string]string{"root": "succeeded 0", "z": "cancelled", "y": "succeeded 1"},
			Decision{Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`1`)}},

		{"output expression", withOutput, `{"k": 1}`, map[string]string{"a": "succeeded 1", "b": "succeeded 2"},
			Decision{Skipped: []string{"c"}, Terminal: true, Status: StatusSucceeded, Output: json.RawMessage(`{"c":"skipped","in":{"k":1},"sum":3,"wf":"out"}`)}},
		{"output expression fails", badOutput, `{}`, map[string]string{"a": "succeeded {}"},
			Decision{Terminal: true, Status: StatusFailed, Error: `output "nodes.a.output.missing": no such key: missing`}},
		{"when fails", badWhen, `{}`, map[string]string{"a": "succeeded {}"},
			Decision{Terminal: true, Status: StatusFailed, Error: `connection a -> b: when "nodes.a.output.flag": no such key: flag`}},
		{"when is not a bool", badWhen, `{}`, map[string]string{"a": `succeeded {"flag": "yes"}`},
			Decision{Terminal: true, Status: StatusFailed, Error: `connection a -> b: when "nodes.a.output.flag" yielded a string, not a bool`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDefinition([]byte(tt.def))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Compile(d, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := &Scope{Input: mustDecode(t, tt.input), Nodes: nodeViews(t, tt.nodes), ExecutionID: "e1", WorkflowID: d.ID}
			got := p.Decide(s)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide =\n  %+v (output %s)\nwant\n  %+v (output %s)", got, got.Output, tt.want, tt.want.Output)
			}
			if again := p.Decide(s); !reflect.DeepEqual(again, got) {
				t.Errorf("a second Decide = %+v, want %+v", again, got)
			}
			if want := nodeViews(t, tt.nodes); !reflect.DeepEqual(s.Nodes, want) {
				t.Errorf("Decide changed the scope: %+v", s.Nodes)
			}
		})
	}
}

// Driving an execution to its end with Decide and ResolveParams, as the
// engine does, running builtin.set by hand.
func TestDecideRunsGreet(t *testing.T) {
	tests := []struct {
		input, make, output string
		skipped             string
	}{
		{`{"name": "Ada", "n": 3}`, `{"msg": "Hello Ada", "n": 6}`, `"small"`, "big"},
		{`{"name": "Ada", "n": 21}`, `{"msg": "Hello Ada", "n": 42}`, `42`, "small"},
	}
	for _, tt := range tests {
		d, err := ParseDefinition(readFile(t, "testdata/workflows/greet.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := &Scope{Input: mustDecode(t, tt.input), Nodes: map[string]NodeView{}, ExecutionID: "e", WorkflowID: "greet"}
		var dec Decision
		for step := 0; !dec.Terminal; step++ {
			if step > len(d.Nodes) {
				t.Fatal("the execution does not end")
			}
			dec = p.Decide(s)
			for _, id := range dec.Skipped {
				s.Nodes[id] = NodeView{Status: NodeSkipped}
			}
			for _, id := range dec.Ready {
				params, err := p.ResolveParams(id, s)
				if err != nil {
					t.Fatal(err)
				}
				var set struct{ Value json.RawMessage }
				if err := json.Unmarshal(params, &set); err != nil {
					t.Fatal(err)
				}
				s.Nodes[id] = NodeView{Status: NodeSucceeded, Output: mustDecode(t, string(set.Value))}
			}
		}
		if dec.Status != StatusSucceeded || string(dec.Output) != tt.output {
			t.Errorf("input %s: execution ended %s with %s %s, want succeeded with %s", tt.input, dec.Status, dec.Output, dec.Error, tt.output)
		}
		if s.Nodes[tt.skipped].Status != NodeSkipped {
			t.Errorf("input %s: node %s is %s, want skipped", tt.input, tt.skipped, s.Nodes[tt.skipped].Status)
		}
		if got := s.Nodes["make"].Output; !reflect.DeepEqual(got, mustDecode(t, tt.make)) {
			t.Errorf("input %s: make output = %v, want %s", tt.input, got, tt.make)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	d, err := ParseDefinition(readFile(b, "testdata/workflows/greet.json"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(d, Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := &Scope{Input: mustDecode(b, `{"name": "Ada", "n": 21}`), Nodes: map[string]NodeView{"make": {Status: NodeSucceeded, Output: mustDecode(b, `{"n": 42}`)}}}
	for b.Loop() {
		p.Decide(s)
	}
}

// A Plan is shared by every execution of a workflow version.
func TestPlanConcurrentUse(t *testing.T) {
	d, err := ParseDefinition(readFile(t, "testdata/workflows/greet.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for i := range 4 {
		go func() {
			s := &Scope{Input: map[string]any{"name": "Ada", "n": int64(i)}, Nodes: map[string]NodeView{
				"make": {Status: NodeSucceeded, Output: map[string]any{"n": int64(2 * i)}},
			}}
			var got string
			for range 50 {
				params, err := p.ResolveParams("big", s)
				if err != nil {
					t.Error(err)
				}
				got = string(params) + " " + strings.Join(p.Decide(s).Ready, ",")
			}
			done <- got
		}()
	}
	got := map[string]bool{}
	for range 4 {
		got[<-done] = true
	}
	want := map[string]bool{`{"value":0} small`: true, `{"value":2} small`: true, `{"value":4} small`: true, `{"value":6} small`: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results = %v, want %v", got, want)
	}
}

// journalData must write what json.Marshal writes: replicas and older
// journals hold those bytes.
func TestJournalDataMatchesMarshal(t *testing.T) {
	for _, data := range []map[string]any{
		{"output": json.RawMessage(` { "a" : [1, 2.5e3, "<b>&</b>"], "u": "\u2028" } `)},
		{"inputs": json.RawMessage(nil)},
		{"inputs": nil},
		{"error": "bad <input> & \"quotes\" \u2029 é"},
		{"reason": ""},
		{},
		{"error": "x", "retry_at": "2026-01-01T00:00:00Z"},
		{"Output": json.RawMessage(`1`)},
		{"count": 3},
	} {
		want, werr := json.Marshal(data)
		got, gerr := journalData(data)
		if string(got) != string(want) || (werr == nil) != (gerr == nil) {
			t.Errorf("journalData(%v) = %s, %v; json.Marshal = %s, %v", data, got, gerr, want, werr)
		}
	}
	if _, err := journalData(map[string]any{"output": json.RawMessage(`{bad`)}); err == nil {
		t.Error("invalid JSON accepted")
	}
}
