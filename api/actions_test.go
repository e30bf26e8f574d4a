package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// testModule returns bytes that pass the API's module checks (the test
// server has no module check); seed tells modules apart.
func testModule(seed string) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), seed...)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// actionJSON is a JSON registration body; extra fields are merged in.
func actionJSON(t testing.TB, id, version string, module []byte, extra map[string]any) []byte {
	t.Helper()
	body := map[string]any{"id": id, "version": version, "capabilities": []string{"net:api.example.com", "env:LANG"}, "module": base64.StdEncoding.EncodeToString(module)}
	for k, v := range extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// actionMultipart is a multipart registration body and its content type;
// a nil manifest or module leaves that part out.
func actionMultipart(t testing.TB, manifest []byte, module []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if manifest != nil {
		if err := mw.WriteField("manifest", string(manifest)); err != nil {
			t.Fatal(err)
		}
	}
	if module != nil {
		fw, err := mw.CreateFormFile("module", "module.wasm")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(module)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// answer is a decoded response.
type answer struct {
	status int
	body   map[string]any
	raw    string
}

func call(t testing.TB, h http.Handler, method, path, contentType string, body []byte) answer {
	t.Helper()
	rec := send(h, method, path, contentType, body, 0)
	a := answer{status: rec.Code, raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &a.body); err != nil {
		t.Fatalf("%s %s: status %d, body not a JSON object: %q", method, path, rec.Code, rec.Body)
	}
	return a
}

// wantError fails t unless a is the error shape with status, code and a
// message containing each of parts.
func (a answer) wantError(t testing.TB, what string, status int, code string, parts ...string) {
	t.Helper()
	e, _ := a.body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if a.status != status || e["code"] != code {
		t.Errorf("%s: %d %v, want %d %s: %s", what, a.status, e["code"], status, code, a.raw)
		return
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("%s: message %q does not contain %q", what, msg, p)
		}
	}
}

func TestRegisterActionJSON(t *testing.T) {
	srv := newTestServer(t)
	module := testModule("wordcount")
	body := actionJSON(t, "community.wordcount", "1.0.0", module, map[string]any{"sha256": sha256Hex(module)})

	first := call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, body)
	if first.status != http.StatusCreated {
		t.Fatalf("register: %d %s, want 201", first.status, first.raw)
	}
	want := map[string]any{
		"id": "community.wordcount", "version": "1.0.0",
		"capabilities": []any{"env:LANG", "net:api.example.com"},
		"sha256":       sha256Hex(module), "size": float64(len(module)),
		"created_at": first.body["created_at"],
	}
	if fmt.Sprint(first.body) != fmt.Sprint(want) {
		t.Errorf("register answered %v, want %v", first.body, want)
	}
	if _, ok := first.body["module"]; ok {
		t.Errorf("the answer carries the module: %s", first.raw)
	}

	// The same registration again: 200 with the stored version.
	again := call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, body)
	if again.status != http.StatusOK || fmt.Sprint(again.body) != fmt.Sprint(first.body) {
		t.Errorf("register again: %d %s, want 200 with %v", again.status, again.raw, first.body)
	}

	// Another module under that version: 409.
	other := actionJSON(t, "community.wordcount", "1.0.0", testModule("other"), nil)
	call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, other).
		wantError(t, "register another module", http.StatusConflict, "conflict", "community.wordcount@1.0.0")
}

func TestRegisterActionMultipart(t *testing.T) {
	srv := newTestServer(t)
	module := testModule("mp")
	manifest := []byte(`{"id":"hub.thing","version":"2.0.0-rc.1","capabilities":["env:A"],"sha256":"` + sha256Hex(module) + `"}`)
	body, ct := actionMultipart(t, manifest, module)
	got := call(t, srv.handler, http.MethodPost, "/v1/actions", ct, body)
	if got.status != http.StatusCreated || got.body["id"] != "hub.thing" || got.body["sha256"] != sha256Hex(module) || got.body["size"] != float64(len(module)) {
		t.Fatalf("multipart register: %d %s", got.status, got.raw)
	}
	if again := call(t, srv.handler, http.MethodPost, "/v1/actions", ct, body); again.status != http.StatusOK {
		t.Errorf("multipart register again: %d %s, want 200", again.status, again.raw)
	}
	fetched := call(t, srv.handler, http.MethodGet, "/v1/actions/hub.thing@2.0.0-rc.1", "", nil)
	if fetched.status != http.StatusOK || fmt.Sprint(fetched.body) != fmt.Sprint(got.body) {
		t.Errorf("GET after multipart register: %d %s, want %v", fetched.status, fetched.raw, got.body)
	}

	// Parts missing, unknown or twice; a manifest with an unknown field.
	noModule, ct1 := actionMultipart(t, manifest, nil)
	call(t, srv.handler, http.MethodPost, "/v1/actions", ct1, noModule).
		wantError(t, "no module part", http.StatusBadRequest, "bad_request", `no "module" part`)
	noManifest, ct2 := actionMultipart(t, nil, module)
	call(t, srv.handler, http.MethodPost, "/v1/actions", ct2, noManifest).
		wantError(t, "no manifest part", http.StatusBadRequest, "bad_request", `no "manifest" part`)
	unknownField, ct3 := actionMultipart(t, []byte(`{"id":"hub.thing","version":"1.0.0","colour":"red"}`), module)
	call(t, srv.handler, http.MethodPost, "/v1/actions", ct3, unknownField).
		wantError(t, "unknown manifest field", http.StatusBadRequest, "bad_request", `"manifest" part`, "colour")

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("manifest", string(manifest))
	mw.WriteField("extra", "x")
	mw.Close()
	call(t, srv.handler, http.MethodPost, "/v1/actions", mw.FormDataContentType(), buf.Bytes()).
		wantError(t, "unknown part", http.StatusBadRequest, "bad_request", `unknown part "extra"`)

	call(t, srv.handler, http.MethodPost, "/v1/actions", "multipart/form-data", body).
		wantError(t, "no boundary", http.StatusBadRequest, "bad_request", "multipart")
	call(t, srv.handler, http.MethodPost, "/v1/actions", "application/wasm", module).
		wantError(t, "wrong content type", http.StatusBadRequest, "bad_request", "application/wasm")
}

func TestRegisterActionInvalid(t *testing.T) {
	srv := newTestServer(t)
	module := testModule("m")
	tests := []struct {
		name  string
		body  []byte
		parts []string // in the message
	}{
		{"bad id", actionJSON(t, "wordcount", "1.0.0", module, nil), []string{`id "wordcount"`, `"community."`}},
		{"bad version", actionJSON(t, "community.x", "1.0", module, nil), []string{`version "1.0"`, "MAJOR.MINOR.PATCH"}},
		{"sha mismatch", actionJSON(t, "community.x", "1.0.0", module, map[string]any{"sha256": sha256Hex([]byte("x"))}),
			[]string{sha256Hex([]byte("x")), sha256Hex(module)}},
		{"bad magic", actionJSON(t, "community.x", "1.0.0", []byte("MZ\x90\x00"), nil), []string{"not WebAssembly"}},
		{"no module", []byte(`{"id":"community.x","version":"1.0.0"}`), []string{"module is empty"}},
		{"empty capability", actionJSON(t, "community.x", "1.0.0", module, map[string]any{"capabilities": []string{""}}), []string{"capability 0"}},
		{"unknown field", actionJSON(t, "community.x", "1.0.0", module, map[string]any{"colour": "red"}), []string{"colour"}},
		{"module not base64", []byte(`{"id":"community.x","version":"1.0.0","module":"not base64!"}`), []string{"base64"}},
		{"trailing data", append(actionJSON(t, "community.x", "1.0.0", module, nil), " {}"...), []string{"data after the object"}},
		{"empty body", nil, []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, tt.body).
				wantError(t, tt.name, http.StatusBadRequest, "bad_request", tt.parts...)
		})
	}
	list := call(t, srv.handler, http.MethodGet, "/v1/actions", "", nil)
	if items, _ := list.body["items"].([]any); list.status != http.StatusOK || len(items) != 0 {
		t.Errorf("list after refusals: %d %s, want no items", list.status, list.raw)
	}
}

func TestRegisterActionBodyLimit(t *testing.T) {
	srv := newTestServer(t, func(c *testConfig) { c.api.ActionBodyLimit = 1024 })
	big := testModule(strings.Repeat("x", 2048))
	call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, actionJSON(t, "community.big", "1.0.0", big, nil)).
		wantError(t, "JSON over the limit", http.StatusRequestEntityTooLarge, "too_large", "1024 bytes")
	body, ct := actionMultipart(t, []byte(`{"id":"community.big","version":"1.0.0"}`), big)
	call(t, srv.handler, http.MethodPost, "/v1/actions", ct, body).
		wantError(t, "multipart over the limit", http.StatusRequestEntityTooLarge, "too_large", "1024 bytes")

	// Under the limit it registers; other routes keep the general limit.
	small := actionJSON(t, "community.small", "1.0.0", testModule("s"), nil)
	if got := call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, small); got.status != http.StatusCreated {
		t.Errorf("register under the limit: %d %s", got.status, got.raw)
	}
	wf := []byte(`{"id":"wf","name":"` + strings.Repeat("n", 2048) + `","nodes":[{"id":"a","action":"builtin.noop"}]}`)
	if got := call(t, srv.handler, http.MethodPut, "/v1/workflows/wf", jsonType, wf); got.status != http.StatusOK {
		t.Errorf("a workflow over the action limit but under the general one: %d %s", got.status, got.raw)
	}
}

func TestRegisterActionDisabled(t *testing.T) {
	srv := newTestServer(t, func(c *testConfig) { c.service.ActionsEnabled = false })
	call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, actionJSON(t, "community.x", "1.0.0", testModule("m"), nil)).
		wantError(t, "register while disabled", http.StatusForbidden, "forbidden", "community actions are disabled (sandbox.community_actions.enabled = false)")
	// Reads still answer.
	if got := call(t, srv.handler, http.MethodGet, "/v1/actions", "", nil); got.status != http.StatusOK {
		t.Errorf("list while disabled: %d %s", got.status, got.raw)
	}
}

func TestListAndGetActions(t *testing.T) {
	srv := newTestServer(t)
	for _, k := range [][2]string{{"community.b", "1.9.0"}, {"community.b", "1.10.0"}, {"community.a", "0.1.0"}, {"hub.c", "3.0.0"}, {"community.b", "1.10.0-rc.1"}} {
		got := call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, actionJSON(t, k[0], k[1], testModule(k[0]+k[1]), nil))
		if got.status != http.StatusCreated {
			t.Fatalf("register %s@%s: %d %s", k[0], k[1], got.status, got.raw)
		}
	}

	var listed []string
	path := "/v1/actions?limit=2"
	for range 10 {
		page := call(t, srv.handler, http.MethodGet, path, "", nil)
		if page.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, page.status, page.raw)
		}
		items, _ := page.body["items"].([]any)
		for _, it := range items {
			m := it.(map[string]any)
			listed = append(listed, fmt.Sprint(m["id"], "@", m["version"]))
		}
		next, _ := page.body["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/v1/actions?limit=2&cursor=" + next
	}
	want := []string{"community.a@0.1.0", "community.b@1.10.0", "community.b@1.10.0-rc.1", "community.b@1.9.0", "hub.c@3.0.0"}
	if !slices.Equal(listed, want) {
		t.Errorf("listed %q, want %q", listed, want)
	}

	for ref, version := range map[string]string{"community.b": "1.10.0", "community.b@1.9.0": "1.9.0", "hub.c": "3.0.0"} {
		got := call(t, srv.handler, http.MethodGet, "/v1/actions/"+ref+"?consistent=true", "", nil)
		if got.status != http.StatusOK || got.body["version"] != version {
			t.Errorf("GET /v1/actions/%s: %d %s, want version %s", ref, got.status, got.raw, version)
		}
	}
	call(t, srv.handler, http.MethodGet, "/v1/actions/community.b@2.0.0", "", nil).
		wantError(t, "missing version", http.StatusNotFound, "not_found", "community.b@2.0.0")
	call(t, srv.handler, http.MethodGet, "/v1/actions/community.nope", "", nil).
		wantError(t, "missing action", http.StatusNotFound, "not_found", "community.nope")
	call(t, srv.handler, http.MethodGet, "/v1/actions/community.b@1.0", "", nil).
		wantError(t, "malformed ref", http.StatusBadRequest, "bad_request", `"community.b@1.0"`)
	call(t, srv.handler, http.MethodGet, "/v1/actions?cursor=!bad", "", nil).
		wantError(t, "bad cursor", http.StatusBadRequest, "bad_request")
}

func TestWorkflowUsingRegisteredAction(t *testing.T) {
	srv := newTestServer(t)
	wf := []byte(`{"nodes":[{"id":"count","action":"community.x@1.0.0"}]}`)
	call(t, srv.handler, http.MethodPut, "/v1/workflows/wc", jsonType, wf).
		wantError(t, "workflow before registration", http.StatusBadRequest, "invalid_workflow",
			`unknown action "community.x@1.0.0" in node "count": not registered`)

	if got := call(t, srv.handler, http.MethodPost, "/v1/actions", jsonType, actionJSON(t, "community.x", "1.0.0", testModule("x"), nil)); got.status != http.StatusCreated {
		t.Fatalf("register: %d %s", got.status, got.raw)
	}
	if got := call(t, srv.handler, http.MethodPut, "/v1/workflows/wc", jsonType, wf); got.status != http.StatusOK {
		t.Errorf("workflow after registration: %d %s", got.status, got.raw)
	}
	call(t, srv.handler, http.MethodPut, "/v1/workflows/wc", jsonType, []byte(`{"nodes":[{"id":"count","action":"community.x@2.0.0"}]}`)).
		wantError(t, "workflow naming an unregistered version", http.StatusBadRequest, "invalid_workflow", `"community.x@2.0.0"`, "not registered")
}
