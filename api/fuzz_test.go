package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	jsonType = "application/json"
	textType = "text/plain; charset=utf-8"
)

// bodyEndpoint is a route that takes a request body. kind groups those
// that read it alike.
type bodyEndpoint struct {
	kind         string // workflow, start, cancel, claim, task, hook, hook-text, action
	method, path string
	contentType  string
	// wait bounds the request: a claim's long poll and a webhook waiting
	// for its execution answer when it ends, as when a client leaves.
	wait time.Duration
}

// bodyTarget is a test server with the state the body endpoints need: a
// workflow with a webhook trigger, an execution whose task the task
// endpoints report on, and one to cancel.
type bodyTarget struct {
	srv       *testServer
	endpoints []bodyEndpoint
}

// targetWorkflow has a webhook at /hooks/fuzz. Its timeout is so short
// that a webhook answers 202 at once: no worker runs here.
const targetWorkflow = `{"id":"target","nodes":[{"id":"a","action":"builtin.log","params":{"message":"x"}}],` +
	`"triggers":[{"type":"webhook","path":"fuzz"}],"timeout":"1ns"}`

func newBodyTarget(tb testing.TB) *bodyTarget {
	tb.Helper()
	srv := newTestServer(tb)
	must := func(method, path, body string, want int) map[string]any {
		tb.Helper()
		rec := send(srv.handler, method, path, jsonType, []byte(body), 0)
		if rec.Code != want {
			tb.Fatalf("%s %s: status %d, want %d: %s", method, path, rec.Code, want, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			tb.Fatalf("%s %s: %v", method, path, err)
		}
		return v
	}
	must(http.MethodPut, "/v1/workflows/target", targetWorkflow, http.StatusOK)
	forTasks := must(http.MethodPost, "/v1/workflows/target/executions", `{}`, http.StatusCreated)
	forCancel := must(http.MethodPost, "/v1/workflows/target/executions", `{}`, http.StatusCreated)
	// The webhook starts target and answers before it ran.
	must(http.MethodPost, "/hooks/fuzz", `{}`, http.StatusAccepted)
	task := "/v1/tasks/" + forTasks["id"].(string) + "/a/1/"
	return &bodyTarget{srv: srv, endpoints: []bodyEndpoint{
		{"workflow", http.MethodPut, "/v1/workflows/fuzzed", jsonType, 0},
		{"workflow", http.MethodPost, "/v1/workflows", jsonType, 0},
		{"start", http.MethodPost, "/v1/workflows/target/executions", jsonType, 0},
		{"cancel", http.MethodPost, "/v1/executions/" + forCancel["id"].(string) + "/cancel", jsonType, 0},
		{"claim", http.MethodPost, "/v1/tasks/claim", jsonType, shortWait},
		{"task", http.MethodPost, task + "complete", jsonType, 0},
		{"task", http.MethodPost, task + "fail", jsonType, 0},
		{"task", http.MethodPost, task + "heartbeat", jsonType, 0},
		{"hook", http.MethodPost, "/hooks/fuzz", jsonType, shortWait},
		// No workflow has this webhook: the body is read and checked all
		// the same, without the cost of starting an execution.
		{"hook-text", http.MethodPut, "/hooks/none/text", textType, shortWait},
		{"action", http.MethodPost, "/v1/actions", jsonType, 0},
	}}
}

// shortWait bounds requests that may wait for work by design.
const shortWait = 250 * time.Millisecond

// send serves one request. Its context ends after wait (zero: a few
// seconds), so that no body can stall the caller: one asking for a long
// poll, or a fuzzed workflow that takes over the webhook with a long
// timeout.
func send(h http.Handler, method, path, contentType string, body []byte, wait time.Duration) *httptest.ResponseRecorder {
	if wait == 0 {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkAnswer checks what every answer to a body must be: never 500, JSON,
// and the error shape with a known code when it is not a success. It
// returns the error code ("" on success).
func checkAnswer(t *testing.T, ep bodyEndpoint, body []byte, rec *httptest.ResponseRecorder) string {
	t.Helper()
	what := ep.method + " " + ep.path
	shown := body
	if len(shown) > 200 {
		shown = append(shown[:200:200], "…"...)
	}
	if rec.Code == http.StatusInternalServerError {
		t.Fatalf("%s with body %q: status 500: %s", what, shown, rec.Body)
	}
	if rec.Code == http.StatusNoContent {
		return ""
	}
	if ct := rec.Header().Get("Content-Type"); ct != jsonType {
		t.Fatalf("%s with body %q: Content-Type %q, want %s", what, shown, ct, jsonType)
	}
	if rec.Code < 300 {
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s with body %q: status %d with a body that is not JSON: %q", what, shown, rec.Code, rec.Body)
		}
		return ""
	}
	var shape struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil || shape.Error == nil || shape.Error.Code == nil || shape.Error.Message == nil {
		t.Fatalf("%s with body %q: status %d without the error shape (%v): %s", what, shown, rec.Code, err, rec.Body)
	}
	code := *shape.Error.Code
	if code == "" || !knownErrorCode(code) {
		t.Fatalf("%s with body %q: status %d with code %q, not one of %v", what, shown, rec.Code, code, errorCodes)
	}
	return code
}

// FuzzAPIBodies sends each body to every route that takes one: no body may
// make a handler panic or answer 500, and every refusal has the error
// shape.
func FuzzAPIBodies(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzAPIBodies.
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"fuzzed","nodes":[{"id":"a","action":"builtin.noop"}]}`))
	f.Add([]byte(`{"token":1,"lease_ttl":"10s"}`))
	f.Add([]byte(`{"id":"community.fuzz","version":"1.0.0","capabilities":["env:LANG"],"module":"AGFzbQEAAAA="}`))
	bt := newBodyTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range bt.endpoints {
			if ep.kind == "cancel" {
				continue // it reads no body; TestHostileRequests sends it some
			}
			checkAnswer(t, ep, body, send(bt.srv.handler, ep.method, ep.path, ep.contentType, body, ep.wait))
		}
	})
}

// TestHostileRequests sends bodies built to hurt: too large, too deep, of
// the wrong types, with unknown fields, not UTF-8. Each is refused with
// the right status and code, in the error shape.
func TestHostileRequests(t *testing.T) {
	bt := newBodyTarget(t)
	huge := []byte(`{"input":"` + strings.Repeat("a", 5<<20) + `"}`)
	deepOpen := []byte(strings.Repeat("[", 100_000))
	deepBalanced := []byte(`{"nodes":[{"id":"a","action":"builtin.noop","params":` +
		strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}]}`)
	notUTF8 := []byte("\xff\xfe\xfd{\"a\":1}")

	type answer struct {
		status int
		code   string
	}
	bad := answer{http.StatusBadRequest, "bad_request"}
	invalid := answer{http.StatusBadRequest, "invalid_workflow"}
	cases := []struct {
		name string
		body []byte
		// want by endpoint kind; kinds left out are sent the body too,
		// with only the common checks.
		want map[string]answer
	}{
		{"5 MiB body", huge, map[string]answer{
			"workflow":  {http.StatusRequestEntityTooLarge, "too_large"},
			"start":     {http.StatusRequestEntityTooLarge, "too_large"},
			"claim":     {http.StatusRequestEntityTooLarge, "too_large"},
			"task":      {http.StatusRequestEntityTooLarge, "too_large"},
			"hook":      {http.StatusRequestEntityTooLarge, "too_large"},
			"hook-text": {http.StatusRequestEntityTooLarge, "too_large"},
			// Under its own 64 MiB limit: read, and refused for its field.
			"action": bad,
		}},
		{"100k unclosed [", deepOpen, map[string]answer{
			"workflow": bad, "start": bad, "claim": bad, "task": bad, "hook": bad, "action": bad,
		}},
		{"100k levels of nesting in params", deepBalanced, map[string]answer{
			"workflow": bad, "start": bad, "claim": bad, "task": bad, "hook": bad, "action": bad,
		}},
		{"wrong types", []byte(`{"nodes":{"id":1},"input":"text","worker":5,"token":"1"}`), map[string]answer{
			"workflow": invalid, "start": bad, "claim": bad, "task": bad, "action": bad,
		}},
		{"wrong type of capabilities", []byte(`{"id":"community.x","version":"1.0.0","capabilities":"net:*","module":"AGFzbQEAAAA="}`), map[string]answer{
			"action": bad,
		}},
		{"wrong type of input", []byte(`{"input":[1,2]}`), map[string]answer{"start": bad}},
		{"wrong type of token", []byte(`{"token":-1}`), map[string]answer{"task": bad}},
		{"wrong type of max", []byte(`{"worker":"w","max":"2"}`), map[string]answer{"claim": bad}},
		{"unknown field in a workflow", []byte(`{"nodes":[{"id":"a","action":"builtin.noop"}],"colour":"red"}`), map[string]answer{
			"workflow": invalid,
		}},
		{"unknown field in a node", []byte(`{"nodes":[{"id":"a","action":"builtin.noop","colour":"red"}]}`), map[string]answer{
			"workflow": invalid,
		}},
		{"unknown field", []byte(`{"input":{},"worker":"w","token":1,"colour":"red"}`), map[string]answer{
			"start": bad, "claim": bad, "task": bad, "action": bad,
		}},
		{"not UTF-8", notUTF8, map[string]answer{
			"workflow": bad, "start": bad, "claim": bad, "task": bad, "hook": bad, "hook-text": bad, "action": bad,
		}},
		{"not UTF-8 in a workflow id", []byte("{\"id\":\"w\xff\",\"nodes\":[{\"id\":\"a\",\"action\":\"builtin.noop\"}]}"), map[string]answer{
			"workflow": invalid,
		}},
		{"trailing data", []byte(`{} {}`), map[string]answer{
			"workflow": bad, "start": bad, "claim": bad, "task": bad, "hook": bad, "action": bad,
		}},
		{"a JSON document that is not an object", []byte(`[1]`), map[string]answer{
			"workflow": invalid, "start": bad, "claim": bad, "task": bad, "action": bad,
		}},
		{"empty", nil, map[string]answer{"workflow": bad, "claim": bad, "task": bad, "action": bad}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, ep := range bt.endpoints {
				rec := send(bt.srv.handler, ep.method, ep.path, ep.contentType, c.body, ep.wait)
				code := checkAnswer(t, ep, c.body, rec)
				want, ok := c.want[ep.kind]
				if ok && (rec.Code != want.status || code != want.code) {
					t.Errorf("%s %s: %d %q, want %d %q: %s", ep.method, ep.path, rec.Code, code, want.status, want.code, rec.Body)
				}
			}
		})
	}

	// Requests no route takes have the error shape too.
	for _, r := range []struct {
		method, path string
		want         answer
	}{
		{http.MethodGet, "/v1/nothing", answer{http.StatusNotFound, "not_found"}},
		{http.MethodPost, "/healthz", answer{http.StatusMethodNotAllowed, "bad_request"}},
	} {
		ep := bodyEndpoint{method: r.method, path: r.path}
		rec := send(bt.srv.handler, r.method, r.path, jsonType, []byte(`{}`), 0)
		if code := checkAnswer(t, ep, nil, rec); rec.Code != r.want.status || code != r.want.code {
			t.Errorf("%s %s: %d %q, want %d %q", r.method, r.path, rec.Code, code, r.want.status, r.want.code)
		}
	}
}
