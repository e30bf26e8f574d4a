package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestWorkflowLimits: a workflow over engine.max_workflow_nodes is refused
// with 400 invalid_workflow naming the limit, and the limit is the
// configured one.
func TestWorkflowLimits(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "nebula.toml", "[engine]\nmax_workflow_nodes = 50\n")
	p := startDesktop(t, dir+"/data", "--config", conf)
	wf := func(n int) string {
		nodes := make([]string, n)
		for i := range nodes {
			nodes[i] = fmt.Sprintf(`{"id":"n%d","action":"builtin.noop"}`, i)
		}
		return `{"nodes":[` + strings.Join(nodes, ",") + `]}`
	}
	p.mustCall("PUT", "/v1/workflows/fifty", wf(50), 200, nil)
	var answer struct {
		Error struct{ Code, Message string }
	}
	p.mustCall("PUT", "/v1/workflows/more", wf(51), 400, &answer)
	if answer.Error.Code != "invalid_workflow" || !strings.Contains(answer.Error.Message, "max_workflow_nodes = 50") {
		b, _ := json.Marshal(answer)
		t.Fatalf("51 nodes: %s; want invalid_workflow naming max_workflow_nodes = 50", b)
	}
}
