package engine

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseDefinition checks that no document makes parsing, compiling or
// deciding panic, and that a definition that compiles survives the JSON
// round trip through storage.
func FuzzParseDefinition(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDefinition(data)
		if err != nil {
			return
		}
		p, err := Compile(d, Options{})
		if err != nil {
			return
		}
		raw, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := ParseDefinition(raw)
		if err != nil {
			t.Fatalf("ParseDefinition(%s): %v", raw, err)
		}
		if !reflect.DeepEqual(d, again) {
			t.Fatalf("the definition changed through JSON:\n%#v\n%#v", d, again)
		}
		if _, err := Compile(again, Options{}); err != nil {
			t.Fatalf("Compile after the round trip: %v", err)
		}
		s := &Scope{Input: map[string]any{"n": int64(1)}}
		p.Decide(s)
		for _, id := range p.Roots() {
			if params, err := p.ResolveParams(id, s); err == nil && !json.Valid(params) {
				t.Fatalf("ResolveParams(%s) = %s, not JSON", id, params)
			}
		}
	})
}

// FuzzResolveParams checks that no template and input make resolving
// panic, and that what resolves is JSON.
func FuzzResolveParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, template string, input []byte) {
		params, err := json.Marshal(map[string]any{"v": template, "w": []any{template, 1}})
		if err != nil {
			return
		}
		d := &Definition{ID: "fuzz", Nodes: []Node{{ID: "n", Action: "x", Params: params}}}
		p, err := Compile(d, Options{Limits: Limits{CostLimit: 10_000, MaxValueBytes: 64 << 10}})
		if err != nil {
			return
		}
		in, err := DecodeValue(input)
		if err != nil {
			return
		}
		s := &Scope{Input: in, ExecutionID: "e"}
		out, err := p.ResolveParams("n", s)
		if err == nil && !json.Valid(out) {
			t.Fatalf("ResolveParams = %q, not JSON", out)
		}
		s.Nodes = map[string]NodeView{"n": {Status: NodeSucceeded, Output: in}}
		p.Decide(s)
	})
}
