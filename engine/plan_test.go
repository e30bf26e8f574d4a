package engine

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validDefinition returns a small definition that compiles; tests break
// one rule at a time.
func validDefinition() *Definition {
	return &Definition{
		ID: "wf",
		Nodes: []Node{
			{ID: "a", Action: "builtin.set", Params: json.RawMessage(`{"value": "{{ input.x }}"}`)},
			{ID: "b", Action: "builtin.set"},
			{ID: "c", Action: "builtin.noop"},
		},
		Connections: []Connection{
			{From: "a", To: "b", When: "nodes.a.output > 1"},
			{From: "b", To: "c"},
		},
		Triggers: []Trigger{{Type: "webhook", Path: "wf"}, {Type: "cron", Schedule: "0 * * * *"}},
	}
}

func knownBuiltins(action string) bool { return strings.HasPrefix(action, "builtin.") }

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(d *Definition)
		want   string
	}{
		{"empty workflow id", func(d *Definition) { d.ID = "" }, `invalid workflow id ""`},
		{"upper-case workflow id", func(d *Definition) { d.ID = "Greet" }, `invalid workflow id "Greet"`},
		{"workflow id starting with -", func(d *Definition) { d.ID = "-x" }, `invalid workflow id "-x"`},
		{"workflow id too long", func(d *Definition) { d.ID = strings.Repeat("a", 64) }, "invalid workflow id"},
		{"no nodes", func(d *Definition) { d.Nodes, d.Connections = nil, nil }, "no nodes"},
		{"bad node id", func(d *Definition) { d.Nodes[1].ID = "b.c" }, `invalid node id "b.c"`},
		{"duplicate node id", func(d *Definition) { d.Nodes[2].ID = "a" }, `duplicate node id "a"`},
		{"no action", func(d *Definition) { d.Nodes[1].Action = "" }, `node "b" has no action`},
		{"unknown action", func(d *Definition) { d.Nodes[1].Action = "x.y" }, `unknown action "x.y" in node "b"`},
		{"connection from a missing node", func(d *Definition) { d.Connections[1].From = "z" }, `connection z -> c: unknown node "z"`},
		{"connection to a missing node", func(d *Definition) { d.Connections[1].To = "z" }, `connection b -> z: unknown node "z"`},
		{"self-loop", func(d *Definition) { d.Connections = append(d.Connections, Connection{From: "b", To: "b"}) }, "connection b -> b: self-loop"},
		{"cycle", func(d *Definition) { d.Connections = append(d.Connections, Connection{From: "c", To: "a"}) }, "cycle: a -> b -> c -> a"},
		{"cycle below a root", func(d *Definition) { d.Connections = append(d.Connections, Connection{From: "c", To: "b"}) }, "cycle: b -> c -> b"},
		{"params expression does not compile", func(d *Definition) { d.Nodes[0].Params = json.RawMessage(`{"v": ["{{ input. }}"]}`) }, `node "a" params: expression "input."`},
		{"params template does not compile", func(d *Definition) { d.Nodes[0].Params = json.RawMessage(`{"v": "hi {{ nope }}"}`) }, `undeclared reference to 'nope'`},
		{"params without closing braces", func(d *Definition) { d.Nodes[0].Params = json.RawMessage(`{"v": "hi {{ input.x"}`) }, `node "a" params: "{{" without a closing "}}"`},
		{"params with an empty expression", func(d *Definition) { d.Nodes[0].Params = json.RawMessage(`{"v": "{{ }}"}`) }, "empty expression"},
		{"params not JSON", func(d *Definition) { d.Nodes[0].Params = json.RawMessage(`{"v": }`) }, `node "a": params are not valid JSON`},
		{"unknown node in expression", func(d *Definition) { d.Nodes[0].Params = json.RawMessage(`{"v": "{{ nodes.zz.output }}"}`) }, `unknown node "zz"`},
		{"unknown node by index", func(d *Definition) { d.Connections[0].When = `nodes["zz"].status == "succeeded"` }, `unknown node "zz"`},
		{"when does not compile", func(d *Definition) { d.Connections[0].When = "nodes.a.output >" }, "connection a -> b: when: expression"},
		{"when is not a bool", func(d *Definition) { d.Connections[0].When = "1 + 2" }, "connection a -> b: when: expression \"1 + 2\": has type int, want bool"},
		{"when is a string", func(d *Definition) { d.Connections[0].When = `"yes"` }, "has type string, want bool"},
		{"output does not compile", func(d *Definition) { d.Output = "nodes.c.output +" }, `output: expression "nodes.c.output +"`},
		{"expression too long", func(d *Definition) { d.Output = strings.Repeat("1+", 2500) + "1" }, "more than the limit of 4096"},
		{"expression too deep", func(d *Definition) { d.Output = strings.Repeat("[", 40) + strings.Repeat("]", 40) }, "recursion"},
		{"negative workflow timeout", func(d *Definition) { d.Timeout = Duration(-time.Second) }, "negative timeout -1s"},
		{"negative node timeout", func(d *Definition) { d.Nodes[1].Timeout = Duration(-time.Second) }, `node "b": negative timeout -1s`},
		{"negative backoff", func(d *Definition) { d.Nodes[1].Retry = &RetryPolicy{Backoff: Duration(-time.Millisecond)} }, `node "b": negative retry.backoff -1ms`},
		{"negative max backoff", func(d *Definition) { d.Nodes[1].Retry = &RetryPolicy{MaxBackoff: Duration(-time.Millisecond)} }, `node "b": negative retry.max_backoff`},
		{"max backoff below backoff", func(d *Definition) {
			d.Nodes[1].Retry = &RetryPolicy{Backoff: Duration(time.Second), MaxBackoff: Duration(time.Millisecond)}
		}, "retry.max_backoff 1ms is less than retry.backoff 1s"},
		{"negative max attempts", func(d *Definition) { d.Nodes[1].Retry = &RetryPolicy{MaxAttempts: -1} }, `node "b": retry.max_attempts -1 is outside 0..100`},
		{"too many attempts", func(d *Definition) { d.Nodes[1].Retry = &RetryPolicy{MaxAttempts: 101} }, "retry.max_attempts 101 is outside 0..100"},
		{"bad on_error", func(d *Definition) { d.Nodes[1].OnError = "ignore" }, `node "b": on_error "ignore"`},
		{"unknown trigger type", func(d *Definition) { d.Triggers[0].Type = "email" }, `trigger 0: unknown type "email"`},
		{"webhook without path", func(d *Definition) { d.Triggers[0].Path = "" }, "trigger 0 (webhook): no path"},
		{"webhook path of slashes", func(d *Definition) { d.Triggers[0].Path = "//" }, "trigger 0 (webhook): no path"},
		{"webhook path with a space", func(d *Definition) { d.Triggers[0].Path = "a b" }, "is not allowed"},
		{"webhook path with ..", func(d *Definition) { d.Triggers[0].Path = "a/../b" }, `".." segment`},
		{"webhook with a schedule", func(d *Definition) { d.Triggers[0].Schedule = "@daily" }, "schedule is only for cron triggers"},
		{"duplicate webhook path", func(d *Definition) { d.Triggers = append(d.Triggers, Trigger{Type: "webhook", Path: "/wf/"}) }, `duplicate webhook path "/wf/" in triggers 0 and 2`},
		{"cron without schedule", func(d *Definition) { d.Triggers[1].Schedule = " " }, "trigger 1 (cron): no schedule"},
		{"cron with a path", func(d *Definition) { d.Triggers[1].Path = "x" }, "path is only for webhook triggers"},
		{"cron with a bad schedule", func(d *Definition) { d.Triggers[1].Schedule = "61 * * * *" }, `trigger 1 (cron): invalid schedule "61 * * * *": minute field "61"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDefinition()
			tt.change(d)
			p, err := Compile(d, Options{KnownAction: knownBuiltins})
			if !errors.Is(err, ErrInvalidWorkflow) {
				t.Fatalf("Compile = %v, %v; want an error wrapping ErrInvalidWorkflow", p, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestCompileNilDefinition(t *testing.T) {
	if _, err := Compile(nil, Options{}); !errors.Is(err, ErrInvalidWorkflow) {
		t.Errorf("Compile(nil) = %v, want ErrInvalidWorkflow", err)
	}
}

func TestCompileAcceptsValid(t *testing.T) {
	tests := []struct {
		name   string
		change func(d *Definition)
	}{
		{"as is", func(*Definition) {}},
		{"nil KnownAction accepts any action", func(d *Definition) { d.Nodes[0].Action = "community.thing" }},
		{"two connections between the same nodes", func(d *Definition) { d.Connections = append(d.Connections, Connection{From: "a", To: "b"}) }},
		{"retry policy", func(d *Definition) {
			d.Nodes[0].Retry = &RetryPolicy{MaxAttempts: 100, Backoff: Duration(time.Second), MaxBackoff: Duration(time.Minute)}
		}},
		{"on_error values", func(d *Definition) { d.Nodes[0].OnError, d.Nodes[1].OnError = "fail", "continue" }},
		{"dyn when", func(d *Definition) { d.Connections[0].When = "input.flag" }},
		{"node id with - used by index", func(d *Definition) {
			d.Nodes[2].ID = "send-mail"
			d.Connections[1].To = "send-mail"
			d.Output = `nodes["send-mail"].output`
		}},
		{"comprehension variable called nodes", func(d *Definition) { d.Output = "[{'zz': 1}].map(nodes, nodes.zz)" }},
		{"webhook path with segments", func(d *Definition) { d.Triggers[0].Path = "/orders/v1.2/new_~x" }},
		{"every kind of schedule", func(d *Definition) {
			d.Triggers = []Trigger{{Type: "cron", Schedule: "@every 90s"}, {Type: "cron", Schedule: "@hourly"}, {Type: "cron", Schedule: "0,30 9-17/2 * JAN-mar mon-FRI"}}
		}},
		{"no triggers", func(d *Definition) { d.Triggers = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDefinition()
			tt.change(d)
			opts := Options{KnownAction: knownBuiltins}
			if tt.name == "nil KnownAction accepts any action" {
				opts.KnownAction = nil
			}
			if _, err := Compile(d, opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPlanAccessors(t *testing.T) {
	d := &Definition{
		ID: "w",
		Nodes: []Node{
			{ID: "join", Action: "x"}, {ID: "left", Action: "x"}, {ID: "right", Action: "x"}, {ID: "alone", Action: "x"},
		},
		Connections: []Connection{{From: "left", To: "join"}, {From: "right", To: "join"}},
	}
	p, err := Compile(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Definition() != d {
		t.Error("Definition() is not the compiled definition")
	}
	if got, want := p.Roots(), []string{"left", "right", "alone"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Roots() = %v, want %v", got, want)
	}
	if n, ok := p.Node("right"); !ok || n != &d.Nodes[2] {
		t.Errorf("Node(right) = %v, %v", n, ok)
	}
	if _, ok := p.Node("nope"); ok {
		t.Error("Node(nope) found a node")
	}
}

func BenchmarkCompile(b *testing.B) {
	d, err := ParseDefinition(readFile(b, "testdata/workflows/greet.json"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Compile(d, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// Messages quote long expressions shortened, since they end up in API
// answers.
func TestCompileErrorQuotesLongExpressionsShortened(t *testing.T) {
	d := validDefinition()
	d.Output = strings.Repeat("1 + ", 2000) + "x"
	_, err := Compile(d, Options{})
	if err == nil {
		t.Fatal("Compile accepted an expression over the length limit")
	}
	if len(err.Error()) > 300 {
		t.Errorf("error is %d bytes long: %q", len(err.Error()), err)
	}
}
