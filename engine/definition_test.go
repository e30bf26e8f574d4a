package engine

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseDefinitionJSONAndYAMLAgree(t *testing.T) {
	files, err := filepath.Glob("testdata/workflows/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, jsonFile := range files {
		t.Run(filepath.Base(jsonFile), func(t *testing.T) {
			fromJSON, err := ParseDefinition(readFile(t, jsonFile))
			if err != nil {
				t.Fatalf("JSON: %v", err)
			}
			fromYAML, err := ParseDefinition(readFile(t, strings.TrimSuffix(jsonFile, ".json")+".yaml"))
			if err != nil {
				t.Fatalf("YAML: %v", err)
			}
			if !reflect.DeepEqual(fromJSON, fromYAML) {
				a, _ := json.MarshalIndent(fromJSON, "", "  ")
				b, _ := json.MarshalIndent(fromYAML, "", "  ")
				t.Errorf("JSON and YAML differ:\n%s\n%s", a, b)
			}
			if _, err := Compile(fromJSON, Options{}); err != nil {
				t.Errorf("Compile: %v", err)
			}
		})
	}
}

func TestParseDefinitionFields(t *testing.T) {
	d, err := ParseDefinition(readFile(t, "testdata/workflows/orders.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Definition{
		ID: "orders",
		Nodes: []Node{
			{
				ID:      "fetch",
				Action:  "builtin.http",
				Params:  json.RawMessage(`{"headers":{"Accept":"application/json"},"method":"GET","url":"https://example.com/orders/{{ input.id }}"}`),
				Retry:   &RetryPolicy{MaxAttempts: 3, Backoff: Duration(200 * time.Millisecond), MaxBackoff: Duration(10 * time.Second)},
				Timeout: Duration(90 * time.Second),
			},
			{
				ID:      "notify",
				Action:  "builtin.log",
				Params:  json.RawMessage(`{"limit":2.5,"message":"order {{ nodes.fetch.output.body.id }}: {{ nodes.fetch.output.status }}","tags":["a",1,true,null]}`),
				OnError: "continue",
			},
		},
		Connections: []Connection{{From: "fetch", To: "notify"}},
		Output:      "{'status': nodes.fetch.output.status, 'logged': nodes.notify.status == 'succeeded'}",
	}
	if !reflect.DeepEqual(d, want) {
		got, _ := json.Marshal(d)
		exp, _ := json.Marshal(want)
		t.Errorf("got  %s\nwant %s", got, exp)
	}
}

// A stored definition is read back with ParseDefinition: marshaling must
// round-trip.
func TestDefinitionRoundTrip(t *testing.T) {
	for _, name := range []string{"greet.json", "orders.json"} {
		d, err := ParseDefinition(readFile(t, filepath.Join("testdata/workflows", name)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseDefinition(raw)
		if err != nil {
			t.Fatalf("%s: parsing %s: %v", name, raw, err)
		}
		if !reflect.DeepEqual(d, again) {
			t.Errorf("%s: round trip changed the definition:\n%s", name, raw)
		}
	}
}

func TestParseDefinitionNullParams(t *testing.T) {
	d, err := ParseDefinition([]byte(`{"id": "w", "nodes": [{"id": "a", "action": "x", "params": null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Nodes[0].Params != nil {
		t.Errorf("params = %q, want nil", d.Nodes[0].Params)
	}
}

func TestParseDefinitionErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "  \n", "empty document"},
		{"JSON syntax", "\n{\n  \"id\": \"a\",\n  \"nodes\": [}\n}", "line 4, column 13"},
		{"unknown field", `{"id": "a", "nodes": [], "bogus": 1}`, `unknown field "bogus"`},
		{"unknown node field", `{"id": "a", "nodes": [{"id": "n", "action": "x", "param": {}}]}`, `unknown field "param"`},
		{"wrong type", `{"id": 5, "nodes": []}`, "id: got number, want string (line 1, column 8)"},
		{"wrong nested type", `{"id": "a", "nodes": [{"id": "n", "action": "x", "retry": {"max_attempts": "3"}}]}`, "nodes.retry.max_attempts: got string, want integer"},
		{"nodes not an array", `{"id": "a", "nodes": {}}`, "nodes: got object, want array"},
		{"bad duration", `{"id": "a", "timeout": "soon", "nodes": []}`, `invalid duration "soon"`},
		{"negative duration", `{"id": "a", "timeout": "-1s", "nodes": []}`, `negative duration "-1s"`},
		{"number duration", `{"id": "a", "timeout": 60, "nodes": []}`, `duration must be a string such as "1m30s", got 60`},
		{"trailing data", "{\"id\": \"a\", \"nodes\": []}\n  {}", "unexpected data after the definition (line 2, column 3)"},
		{"truncated", `{"id": "a", "nodes": [`, "unexpected end"},
		{"YAML syntax", "id: a\nnodes: [\n", "yaml"},
		{"YAML unknown field", "id: a\nnodes: []\nbogus: 1\n", `unknown field "bogus"`},
		{"YAML duration", "id: a\nnodes: []\ntimeout: 60\n", "duration must be a string"},
		{"YAML list", "- id: a\n", "not a mapping"},
		{"YAML second document", "id: a\nnodes: []\n---\nid: b\n", "unexpected data after the first YAML document"},
		{"YAML duplicate key", "id: a\nid: b\nnodes: []\n", "already defined"},
		{"YAML infinity", "id: a\nnodes: [{id: n, action: x, params: {v: .inf}}]\n", "+Inf is not a JSON number"},
		{"YAML comments only", "# nothing\n", "empty document"},
		{"YAML scalar", "hello\n", "not a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDefinition([]byte(tt.doc))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseDefinition = %+v, %v; want an error wrapping ErrMalformed", d, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		d    Duration
		json string
	}{
		{0, `"0s"`},
		{Duration(200 * time.Millisecond), `"200ms"`},
		{Duration(90 * time.Second), `"1m30s"`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.d)
		if err != nil || string(got) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", time.Duration(tt.d), got, err, tt.json)
		}
		var back Duration
		if err := json.Unmarshal(got, &back); err != nil || back != tt.d {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", got, time.Duration(back), err, time.Duration(tt.d))
		}
	}
}

// YAML 1.1 would read n, no and on as bools and dates as timestamps;
// definitions keep what was written.
func TestParseDefinitionYAMLScalars(t *testing.T) {
	doc := `
id: w
nodes:
  - id: a
    action: builtin.set
    params:
      n: no
      on: off
      y: 2024-01-31
      big: 9007199254740993
      ratio: 0.5
      1: one
      list: [yes, ~, true]
`
	d, err := ParseDefinition([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"1":"one","big":9007199254740993,"list":["yes",null,true],"n":"no","on":"off","ratio":0.5,"y":"2024-01-31"}`
	if got := string(d.Nodes[0].Params); got != want {
		t.Errorf("params = %s\nwant     %s", got, want)
	}
}
