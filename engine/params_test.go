package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// paramsPlan compiles a workflow whose node "n" has the given params, next
// to a finished node "prev" whose output scopes can set.
func paramsPlan(t testing.TB, params string, limits Limits) *Plan {
	t.Helper()
	d := &Definition{
		ID: "wf",
		Nodes: []Node{
			{ID: "prev", Action: "x"},
			{ID: "n", Action: "x", Params: json.RawMessage(params)},
			{ID: "later", Action: "x"},
		},
		Connections: []Connection{{From: "prev", To: "n"}, {From: "n", To: "later"}},
	}
	p, err := Compile(d, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustDecode(t testing.TB, raw string) any {
	t.Helper()
	v, err := DecodeValue(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("DecodeValue(%s): %v", raw, err)
	}
	return v
}

func testScope(t testing.TB, input string) *Scope {
	return &Scope{
		Input:       mustDecode(t, input),
		Nodes:       map[string]NodeView{"prev": {Status: NodeSucceeded, Output: mustDecode(t, `{"n": 21, "items": ["x", "y"]}`)}},
		ExecutionID: "ex1",
		WorkflowID:  "wf",
	}
}

func TestResolveParams(t *testing.T) {
	const input = `{"name": "Ada", "n": 21, "f": 1.5, "flag": true, "none": null, "obj": {"b": 1, "a": [1, 2]}, "m": {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5}, "html": "<b>&</b>"}`
	tests := []struct {
		name, params, want string
	}{
		// A string that is exactly one expression keeps the value's type.
		{"int", `{"v": "{{ input.n * 2 }}"}`, `{"v":42}`},
		{"double", `{"v": "{{ input.f * 2.0 }}"}`, `{"v":3}`},
		{"bool", `{"v": "{{ input.n > 10 }}"}`, `{"v":true}`},
		{"null", `{"v": "{{ input.none }}"}`, `{"v":null}`},
		{"object", `{"v": "{{ input.obj }}"}`, `{"v":{"a":[1,2],"b":1}}`},
		{"list", `{"v": "{{ [1, 'two', 3.5, null] }}"}`, `{"v":[1,"two",3.5,null]}`},
		{"string", `{"v": "{{ input.name }}"}`, `{"v":"Ada"}`},
		{"no spaces in braces", `{"v": "{{input.n}}"}`, `{"v":21}`},
		{"map literal inside braces", `{"v": "{{ {'a': {'b': input.n}} }}"}`, `{"v":{"a":{"b":21}}}`},
		{"braces in a string literal", `{"v": "{{ '}}' + \"{{\" }}"}`, `{"v":"}}{{"}`},
		{"not HTML-escaped", `{"v": "{{ input.html }}"}`, `{"v":"<b>&</b>"}`},

		// Expressions inside text render as text.
		{"template", `{"v": "Hello {{ input.name }}!"}`, `{"v":"Hello Ada!"}`},
		{"template of several values", `{"v": "{{ input.name }} is {{ input.n }}, {{ input.f }}, {{ input.flag }}"}`, `{"v":"Ada is 21, 1.5, true"}`},
		{"template with null", `{"v": "[{{ input.none }}]"}`, `{"v":"[]"}`},
		{"template with an object", `{"v": "obj={{ input.obj }}"}`, `{"v":"obj={\"a\":[1,2],\"b\":1}"}`},
		{"template with spaces around", `{"v": " {{ input.n }}"}`, `{"v":" 21"}`},
		{"template of two expressions", `{"v": "{{ input.n }}{{ input.n }}"}`, `{"v":"2121"}`},

		// Anything else is literal.
		{"literal string", `{"v": "just text {not} }}"}`, `{"v":"just text {not} }}"}`},
		{"literal numbers keep their form", `{"v": [1.0, 1e3, 12345678901234567890]}`, `{"v":[1.0,1e3,12345678901234567890]}`},
		{"keys are literal", `{"{{ input.name }}": "{{ input.name }}"}`, `{"{{ input.name }}":"Ada"}`},
		{"nested", `{"a": [{"b": "{{ input.n }}"}, "x", 3], "c": {"d": false}}`, `{"a":[{"b":21},"x",3],"c":{"d":false}}`},
		{"top-level array", `["{{ input.n }}", 1]`, `[21,1]`},
		{"top-level string", `"{{ input.name }}"`, `"Ada"`},
		{"null params", `null`, `{}`},
		{"empty params", ``, `{}`},

		// Variables.
		{"has", `{"a": "{{ has(input.name) }}", "b": "{{ has(input.nope) }}"}`, `{"a":true,"b":false}`},
		{"node output", `{"v": "{{ nodes.prev.output.n > 10 }}"}`, `{"v":true}`},
		{"node status", `{"v": "{{ [nodes.prev.status, nodes.n.status, nodes.later.status] }}"}`, `{"v":["succeeded","pending","pending"]}`},
		{"pending node output", `{"v": "{{ nodes.later.output }}"}`, `{"v":null}`},
		{"ids", `{"v": "{{ execution.id + '/' + workflow.id }}"}`, `{"v":"ex1/wf"}`},
		{"int and double compare", `{"v": "{{ input.n > 20.5 && input.f < 2 && input.n == 21.0 }}"}`, `{"v":true}`},
		{"string functions", `{"v": "{{ input.name.size() + (input.name.startsWith('A') ? 1 : 0) }}"}`, `{"v":4}`},
		{"list macro", `{"v": "{{ nodes.prev.output.items.map(x, x + '!') }}"}`, `{"v":["x!","y!"]}`},
		{"map equality and membership", `{"v": "{{ [input.obj == {'a': [1, 2], 'b': 1}, 'a' in input.obj, size(input.m), input.m.exists(k, k == 'c')] }}"}`, `{"v":[true,true,5,true]}`},
		{"nodes map", `{"v": "{{ nodes.map(k, k) }}"}`, `{"v":["later","n","prev"]}`},
		{"timestamps", `{"v": "{{ timestamp('2024-01-31T10:00:00Z') + duration('1h') }}"}`, `{"v":"2024-01-31T11:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := paramsPlan(t, tt.params, Limits{})
			got, err := p.ResolveParams("n", testScope(t, input))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("ResolveParams = %s, want %s", got, tt.want)
			}
		})
	}
}

// Comprehensions over maps see keys in sorted order, whatever the map:
// a replicated state machine needs the same result on every replica.
func TestMapIterationIsOrdered(t *testing.T) {
	p := paramsPlan(t, `{
		"input": "{{ input.m.map(k, k) }}",
		"nested": "{{ input.l[0].map(k, k) }}",
		"in list": "{{ input.l.map(x, x.map(k, k)) }}",
		"literal": "{{ {'z': 1, 'y': 2, 'x': 3, 'c': 4, 'b': 5, 'a': 6}.map(k, k) }}",
		"mixed": "{{ {2: 1, true: 2, 1: 3, 'a': 4, false: 5, 3u: 6}.map(k, string(k)) }}",
		"exists_one": "{{ input.m.filter(k, input.m[k] > 2) }}"
	}`, Limits{})
	s := testScope(t, `{"m": {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5, "f": 6, "g": 7}, "l": [{"q": 1, "p": 2, "o": 3, "n": 4, "m": 5}]}`)
	const want = `{"exists_one":["a","b","c","f","g"],"in list":[["m","n","o","p","q"]],"input":["a","b","c","d","e","f","g"],"literal":["a","b","c","x","y","z"],"mixed":["false","true","1","2","3","a"],"nested":["m","n","o","p","q"]}`
	for range 20 {
		got, err := p.ResolveParams("n", s)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("ResolveParams = %s, want %s", got, want)
		}
	}
}

func TestResolveParamsErrors(t *testing.T) {
	big := `[` + strings.Repeat(`"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",`, 999) + `"a"]`
	tests := []struct {
		name, params, input string
		limits              Limits
		want                string
	}{
		{"missing key", `{"v": "{{ input.nope }}"}`, `{}`, Limits{}, `expression "input.nope": no such key: nope`},
		{"division by zero", `{"v": "x{{ 1 / input.zero }}"}`, `{"zero": 0}`, Limits{}, "division by zero"},
		{"no overload", `{"v": "{{ input.n * 1.5 }}"}`, `{"n": 2}`, Limits{}, "no such overload"},
		{"infinity", `{"v": "{{ 1.0 / 0.0 }}"}`, `{}`, Limits{}, "+Inf has no JSON form"},
		{"non-string map key", `{"v": "{{ {1: 2} }}"}`, `{}`, Limits{}, "map key 1 is not a string"},
		{"type value", `{"v": "{{ type(1) }}"}`, `{}`, Limits{}, "no JSON form"},
		{"nested comprehension over a big list", `{"v": "{{ input.l.map(x, input.l.map(y, input.l.map(z, x + y + z))) }}"}`, `{"l": ` + big + `}`, Limits{}, "cost limit exceeded"},
		{"small cost limit", `{"v": "{{ input.l.all(x, x.size() > 0) }}"}`, `{"l": ` + big + `}`, Limits{CostLimit: 50}, "cost limit exceeded (limit 50)"},
		{"big value", `{"v": "{{ input.l.map(x, input.l) }}"}`, `{"l": ` + big + `}`, Limits{}, "value exceeds 1048576 bytes"},
		{"big string", `{"v": "{{ input.s + input.s }}"}`, `{"s": "` + strings.Repeat("x", 600_000) + `"}`, Limits{}, "value exceeds 1048576 bytes"},
		{"big template", `{"v": "{{ input.s }} and {{ input.s }}"}`, `{"s": "` + strings.Repeat("x", 600_000) + `"}`, Limits{}, "value exceeds 1048576 bytes"},
		{"big params", `{"a": "{{ input.s }}", "b": "{{ input.s }}"}`, `{"s": "` + strings.Repeat("x", 600_000) + `"}`, Limits{}, "value exceeds 1048576 bytes"},
		{"small value limit", `{"v": "{{ input.s }}"}`, `{"s": "0123456789"}`, Limits{MaxValueBytes: 10}, "value exceeds 10 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := paramsPlan(t, tt.params, tt.limits)
			got, err := p.ResolveParams("n", testScope(t, tt.input))
			if !errors.Is(err, ErrExpression) {
				t.Fatalf("ResolveParams = %.100s, %v; want an error wrapping ErrExpression", got, err)
			}
			if msg := err.Error(); !strings.Contains(msg, `node "n"`) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not name the node and contain %q", msg, tt.want)
			}
		})
	}
}

func TestResolveParamsUnknownNode(t *testing.T) {
	p := paramsPlan(t, `{}`, Limits{})
	if _, err := p.ResolveParams("nope", &Scope{}); err == nil {
		t.Error("ResolveParams of an unknown node succeeded")
	}
}

// Static params come from the plan; a caller changing the result must not
// change the plan.
func TestResolveParamsReturnsACopy(t *testing.T) {
	p := paramsPlan(t, `{"v": 1}`, Limits{})
	first, _ := p.ResolveParams("n", &Scope{})
	first[1] = 'X'
	if again, _ := p.ResolveParams("n", &Scope{}); string(again) != `{"v":1}` {
		t.Errorf("ResolveParams = %s after changing an earlier result", again)
	}
}

func TestSplitTemplate(t *testing.T) {
	tests := []struct {
		in, want string // want: parts as text|{{expr}}, or "error: ..."
	}{
		{"", ""},
		{"plain", "plain"},
		{"{{ a }}", "{{a}}"},
		{"x {{a}} y {{ b }}", "x |{{a}}| y |{{b}}"},
		{"{{ {'k': {'v': 1}} }}", "{{{'k': {'v': 1}}}}"},
		{`{{ "}}" }}`, `{{"}}"}}`},
		{`{{ '\'}}' }}`, `{{'\'}}'}}`},
		{"{{ a }}}", "{{a}}|}"},
		{"}} {{ a }}", "}} |{{a}}"},
		{"{{ a", `error: "{{" without a closing "}}"`},
		{"{{ '}} }}", `error: "{{" without a closing "}}"`},
		{"{{}}", "error: empty expression"},
	}
	for _, tt := range tests {
		parts, err := splitTemplate(tt.in)
		var got []string
		for _, p := range parts {
			if p.isExpr {
				got = append(got, "{{"+p.s+"}}")
			} else {
				got = append(got, p.s)
			}
		}
		s := strings.Join(got, "|")
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(s, tt.want) || (err == nil && s != tt.want) {
			t.Errorf("splitTemplate(%q) = %s, want %s", tt.in, s, tt.want)
		}
	}
}

func BenchmarkResolveParams(b *testing.B) {
	p := paramsPlan(b, `{"value": {"msg": "Hello {{ input.name }}", "n": "{{ input.n * 2 }}", "static": [1, 2, 3]}}`, Limits{})
	s := testScope(b, `{"name": "Ada", "n": 21}`)
	for b.Loop() {
		if _, err := p.ResolveParams("n", s); err != nil {
			b.Fatal(err)
		}
	}
}

func ExamplePlan_ResolveParams() {
	d, _ := ParseDefinition([]byte(`{"id": "hello", "nodes": [
		{"id": "greet", "action": "builtin.set", "params": {"msg": "Hello {{ input.name }}", "n": "{{ input.n * 2 }}"}}
	]}`))
	p, _ := Compile(d, Options{})
	input, _ := DecodeValue(json.RawMessage(`{"name": "Ada", "n": 21}`))
	params, _ := p.ResolveParams("greet", &Scope{Input: input})
	fmt.Println(string(params))
	// Output: {"msg":"Hello Ada","n":42}
}
