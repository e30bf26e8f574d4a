package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWebhookTrigger(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/hook", `{"triggers":[{"type":"webhook","path":"orders/new"}],
	  "nodes":[{"id":"reply","action":"builtin.set","params":{"value":{"got":"{{ input.body.item }}","via":"{{ input.method }}","q":"{{ input.query.x }}"}}}]}`, 200, nil)
	resp, err := http.Post(p.url+"/hooks/orders/new?x=1", "application/json", strings.NewReader(`{"item":"book"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out map[string]string
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook answered %d %s", resp.StatusCode, b)
	}
	if out["got"] != "book" || out["via"] != "POST" || out["q"] != "1" {
		t.Fatalf("webhook output %v", out)
	}
	if resp.Header.Get("X-Nebula-Execution") == "" {
		t.Error("no X-Nebula-Execution header")
	}

	// A trigger with wait 0s answers 202 with the execution id at once.
	p.mustCall("PUT", "/v1/workflows/slowhook", `{"triggers":[{"type":"webhook","path":"slow","wait":"0s"}],
	  "nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"10s"}}]}`, 200, nil)
	var accepted map[string]string
	p.mustCall("GET", "/hooks/slow", "", 202, &accepted)
	if accepted["execution_id"] == "" {
		t.Fatalf("202 without an execution id: %v", accepted)
	}

	// A failed execution answers the error shape, naming the execution.
	p.mustCall("PUT", "/v1/workflows/badhook", `{"triggers":[{"type":"webhook","path":"bad"}],
	  "nodes":[{"id":"boom","action":"builtin.fail","params":{"message":"no stock"}}]}`, 200, nil)
	var failed struct {
		Error struct{ Code, Message string }
	}
	p.mustCall("POST", "/hooks/bad", "", 500, &failed)
	if failed.Error.Code != "execution_failed" || !strings.Contains(failed.Error.Message, "no stock") {
		t.Fatalf("failed webhook answered %+v", failed)
	}
	p.mustCall("PUT", "/v1/workflows/waithook", `{"triggers":[{"type":"webhook","path":"w","wait":"1m"}],"nodes":[{"id":"n","action":"builtin.noop"}]}`, 400, nil)
	p.mustCall("GET", "/hooks/nothing-here", "", 404, nil)
}

func TestCronTrigger(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/tick", `{"triggers":[{"type":"cron","schedule":"@every 1s"}],
	  "nodes":[{"id":"n","action":"builtin.noop"}]}`, 200, nil)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list struct {
			Items []struct {
				Input struct {
					Tick string `json:"tick"`
				} `json:"input"`
			} `json:"items"`
		}
		p.mustCall("GET", "/v1/executions?workflow=tick", "", 200, &list)
		if len(list.Items) >= 3 {
			seen := map[string]bool{}
			for _, it := range list.Items {
				if seen[it.Input.Tick] {
					t.Fatalf("tick %s fired twice", it.Input.Tick)
				}
				seen[it.Input.Tick] = true
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cron executions after 15s of @every 1s", len(list.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
