package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const greetWorkflow = `{
  "id": "greet",
  "name": "Greet a user",
  "nodes": [
    {"id": "make", "action": "builtin.set", "params": {"value": {"msg": "Hello {{ input.name }}", "n": "{{ input.n * 2 }}"}}},
    {"id": "big", "action": "builtin.set", "params": {"value": "{{ nodes.make.output.n }}"}},
    {"id": "small", "action": "builtin.set", "params": {"value": "small"}}
  ],
  "connections": [
    {"from": "make", "to": "big", "when": "nodes.make.output.n > 10"},
    {"from": "make", "to": "small", "when": "nodes.make.output.n <= 10"}
  ]
}`

type execution struct {
	ID             string                     `json:"id"`
	WorkflowID     string                     `json:"workflow_id"`
	Status         string                     `json:"status"`
	Output         json.RawMessage            `json:"output"`
	Error          *string                    `json:"error"`
	IdempotencyKey *string                    `json:"idempotency_key"`
	Nodes          map[string]json.RawMessage `json:"nodes"`
}

func (e *execution) nodeStatus(t *testing.T, id string) string {
	t.Helper()
	var n struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(e.Nodes[id], &n); err != nil {
		t.Fatalf("node %s: %v (%s)", id, err, e.Nodes[id])
	}
	return n.Status
}

type journalEntry struct {
	Seq            int64           `json:"seq"`
	Type           string          `json:"type"`
	Node           string          `json:"node"`
	Attempt        int             `json:"attempt"`
	IdempotencyKey string          `json:"idempotency_key"`
	Output         json.RawMessage `json:"output"`
	Error          string          `json:"error"`
}

func TestDesktopRunsBranchingWorkflow(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	var wf map[string]any
	p.mustCall("PUT", "/v1/workflows/greet", greetWorkflow, 200, &wf)
	if wf["version"] != float64(1) {
		t.Fatalf("version = %v, want 1", wf["version"])
	}

	tests := []struct {
		n              int
		output         string
		ran, skipped   string
		idempotencyKey string
	}{
		{n: 21, output: `42`, ran: "big", skipped: "small", idempotencyKey: "k-21"},
		{n: 3, output: `"small"`, ran: "small", skipped: "big", idempotencyKey: "k-3"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d", tt.n), func(t *testing.T) {
			body := fmt.Sprintf(`{"input": {"name": "Ada", "n": %d}, "idempotency_key": %q}`, tt.n, tt.idempotencyKey)
			var e execution
			p.mustCall("POST", "/v1/workflows/greet/executions?wait=10s", body, 200, &e)
			if e.Status != "succeeded" {
				t.Fatalf("status = %q, want succeeded (error %v)", e.Status, e.Error)
			}
			if string(e.Output) != tt.output {
				t.Errorf("output = %s, want %s", e.Output, tt.output)
			}
			if got := e.nodeStatus(t, tt.ran); got != "succeeded" {
				t.Errorf("node %s = %q, want succeeded", tt.ran, got)
			}
			if got := e.nodeStatus(t, tt.skipped); got != "skipped" {
				t.Errorf("node %s = %q, want skipped", tt.skipped, got)
			}

			// The journal lists the entries in order.
			var j struct{ Items []journalEntry }
			p.mustCall("GET", "/v1/executions/"+e.ID+"/journal", "", 200, &j)
			want := []string{
				"execution_started",
				"node_attempt_started make", "node_attempt_finished make",
				"node_attempt_started " + tt.ran, "node_attempt_finished " + tt.ran,
				"execution_succeeded",
			}
			var got []string
			for i, it := range j.Items {
				if it.Seq != int64(i+1) {
					t.Errorf("entry %d has seq %d", i, it.Seq)
				}
				got = append(got, strings.TrimSpace(it.Type+" "+it.Node))
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("journal =\n  %v\nwant\n  %v", got, want)
			}

			// The same idempotency key returns the same execution.
			var again execution
			p.mustCall("POST", "/v1/workflows/greet/executions", body, 200, &again)
			if again.ID != e.ID {
				t.Errorf("same idempotency key gave execution %s, want %s", again.ID, e.ID)
			}
		})
	}
}

func TestDesktopErrors(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/greet", greetWorkflow, 200, nil)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"malformed json", "PUT", "/v1/workflows/x", `{"id": `, 400, "bad_request", "malformed JSON"},
		{"empty body", "PUT", "/v1/workflows/x", ``, 400, "bad_request", "empty"},
		{"unknown action", "PUT", "/v1/workflows/x", `{"nodes":[{"id":"a","action":"builtin.nope"}]}`, 400, "invalid_workflow", "builtin.nope"},
		{"cycle", "PUT", "/v1/workflows/x", `{"nodes":[{"id":"a","action":"builtin.noop"},{"id":"b","action":"builtin.noop"}],"connections":[{"from":"a","to":"b"},{"from":"b","to":"a"}]}`, 400, "invalid_workflow", "cycle"},
		{"dangling connection", "PUT", "/v1/workflows/x", `{"nodes":[{"id":"a","action":"builtin.noop"}],"connections":[{"from":"a","to":"zz"}]}`, 400, "invalid_workflow", "zz"},
		{"bad expression", "PUT", "/v1/workflows/x", `{"nodes":[{"id":"a","action":"builtin.set","params":{"value":"{{ 1 + }}"}}]}`, 400, "invalid_workflow", "a"},
		{"id mismatch", "PUT", "/v1/workflows/x", `{"id":"y","nodes":[{"id":"a","action":"builtin.noop"}]}`, 400, "invalid_workflow", "does not match"},
		{"missing workflow", "GET", "/v1/workflows/nope", ``, 404, "not_found", "nope"},
		{"start missing workflow", "POST", "/v1/workflows/nope/executions", `{}`, 404, "not_found", "nope"},
		{"missing execution", "GET", "/v1/executions/nope", ``, 404, "not_found", "nope"},
		{"missing journal", "GET", "/v1/executions/nope/journal", ``, 404, "not_found", "nope"},
		{"bad wait", "POST", "/v1/workflows/greet/executions?wait=soon", `{}`, 400, "bad_request", "wait"},
		{"bad input", "POST", "/v1/workflows/greet/executions", `{"input": 3}`, 400, "bad_request", "input"},
		{"unknown field", "POST", "/v1/workflows/greet/executions", `{"inptu": {}}`, 400, "bad_request", "inptu"},
		{"bad limit", "GET", "/v1/workflows?limit=0", ``, 400, "bad_request", "limit"},
		{"bad cursor", "GET", "/v1/executions?cursor=!!", ``, 400, "bad_request", "cursor"},
		{"bad status filter", "GET", "/v1/executions?status=done", ``, 400, "bad_request", "done"},
		{"no route", "GET", "/v1/nothing", ``, 404, "not_found", "/v1/nothing"},
		{"too large", "PUT", "/v1/workflows/x", `{"name": "` + strings.Repeat("x", 5<<20) + `"}`, 413, "too_large", "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e struct {
				Error struct{ Code, Message string }
			}
			status := p.call(tt.method, tt.path, tt.body, &e)
			if status != tt.status || e.Error.Code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, e.Error.Code, e.Error.Message, tt.status, tt.code)
			}
			if !strings.Contains(e.Error.Message, tt.msg) {
				t.Errorf("message %q does not name %q", e.Error.Message, tt.msg)
			}
		})
	}
}

// TestDesktopSurvivesKill9 acknowledges executions, kills the process at
// once, and checks that after a restart every acknowledged execution is
// there and finishes, each attempt recorded once.
func TestDesktopSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.mustCall("PUT", "/v1/workflows/greet", greetWorkflow, 200, nil)

	const n = 40
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e execution
			p.mustCall("POST", "/v1/workflows/greet/executions", fmt.Sprintf(`{"input": {"name": "x", "n": %d}}`, i), 201, &e)
			ids[i] = e.ID
		}()
	}
	wg.Wait()
	p.kill()

	p = startDesktop(t, dir)
	for _, id := range ids {
		var e execution
		p.mustCall("GET", "/v1/executions/"+id+"?wait=20s", "", 200, &e)
		if e.Status != "succeeded" {
			t.Fatalf("execution %s: status %q after restart, want succeeded (error %v)", id, e.Status, e.Error)
		}
		assertAttemptsOnce(t, p, id)
	}
	// The workflow itself survived too.
	p.mustCall("GET", "/v1/workflows/greet", "", 200, nil)
}

func TestDesktopRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.mustCall("PUT", "/v1/workflows/greet", greetWorkflow, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/greet/executions?wait=10s", `{"input":{"name":"a","n":1}}`, 200, &e)
	p.stop()
	if _, err := os.Stat(dir + "/nebula.sqlite"); err != nil {
		t.Fatalf("state file: %v", err)
	}

	p = startDesktop(t, dir)
	var got execution
	p.mustCall("GET", "/v1/executions/"+e.ID, "", 200, &got)
	if got.Status != "succeeded" || string(got.Output) != `"small"` {
		t.Fatalf("after restart: %+v", got)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	p.mustCall("GET", "/v1/workflows", "", 200, &list)
	if len(list.Items) != 1 || list.Items[0]["id"] != "greet" {
		t.Fatalf("workflows after restart: %v", list.Items)
	}
}

func TestReadyQuickly(t *testing.T) {
	start := time.Now()
	p := startDesktop(t, t.TempDir())
	p.mustCall("GET", "/readyz", "", 200, nil)
	t.Logf("ready after %s (process start to ready log line)", time.Since(start))
}

// TestWrongMasterKey: a node started with a master key other than the one
// its data was sealed with refuses to start, exit 2, and leaves the data
// alone.
func TestWrongMasterKey(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.stop()
	keyFile, _ := os.ReadFile(dir + "/master.key")
	cmd := exec.Command(binPath, "desktop", "--data", dir, "--bind", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "NEBULA_MASTER_KEY="+strings.Repeat("ab", 32))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("wrong key: err %v, output %s; want exit 2", err, out)
	}
	if !strings.Contains(string(out), "master key does not match") {
		t.Fatalf("message: %s", out)
	}
	after, _ := os.ReadFile(dir + "/master.key")
	if string(after) != string(keyFile) {
		t.Fatal("the key file changed")
	}
	startDesktop(t, dir) // the right key still works
}
