package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// wasmModules are the example and hostile modules, built for wasip1 once
// per test binary (binaries are never committed).
var wasmModules = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "nebula-wasm-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"../../examples/actions/wordcount", "../../examples/actions/fetch", "../../sandbox/wasm/testdata/hostile/...")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return dir, nil
})

func wasmModule(t *testing.T, name string) []byte {
	t.Helper()
	dir, err := wasmModules()
	if err != nil {
		t.Fatalf("building the wasip1 modules: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trapModule is a command module whose _start executes `unreachable`.
var trapModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // function 0 has type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable, end
}

// startCommunityDesktop runs a desktop node with community actions
// enabled and the given extra [sandbox.community_actions] and [sandbox]
// lines.
func startCommunityDesktop(t *testing.T, community, sbox string) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := writeFile(t, dir, "nebula.toml", "[sandbox]\n"+sbox+"\n[sandbox.community_actions]\nenabled = true\n"+community+"\n")
	return startDesktop(t, filepath.Join(dir, "data"), "--config", conf)
}

func registerModule(p *proc, id, version string, caps []string, module []byte) (int, map[string]any) {
	body, _ := json.Marshal(map[string]any{
		"id": id, "version": version, "capabilities": caps,
		"module": base64.StdEncoding.EncodeToString(module),
	})
	var out map[string]any
	status := p.call("POST", "/v1/actions", string(body), &out)
	return status, out
}

// runOne applies a one-node workflow using action and runs it to the end.
func runOne(t *testing.T, p *proc, wf, action, params string) execution {
	t.Helper()
	p.mustCall("PUT", "/v1/workflows/"+wf, fmt.Sprintf(`{"nodes":[{"id":"n","action":%q,"params":%s}]}`, action, params), 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/"+wf+"/executions?wait=60s", `{}`, 200, &e)
	return e
}

func TestCommunityActions(t *testing.T) {
	p := startCommunityDesktop(t, "wasm_memory_limit_mb = 64\nwasm_fuel_limit = 500_000_000", "")
	if status, out := registerModule(p, "community.wordcount", "1.0.0", nil, wasmModule(t, "wordcount")); status != 201 {
		t.Fatalf("register wordcount: %d %v", status, out)
	}
	e := runOne(t, p, "wc", "community.wordcount@1.0.0", `{"text":"the cat and the hat"}`)
	var out struct {
		Words int `json:"words"`
		Top   []struct {
			Word  string `json:"word"`
			Count int    `json:"count"`
		} `json:"top"`
	}
	if e.Status != "succeeded" || json.Unmarshal(e.Output, &out) != nil || out.Words != 5 || out.Top[0].Word != "the" || out.Top[0].Count != 2 {
		t.Fatalf("wordcount run: %s %s %v", e.Status, e.Output, e.Error)
	}

	// The host function reaches a granted host, and only that.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"hello":"from the host"}`)
	}))
	t.Cleanup(srv.Close)
	fetch := wasmModule(t, "fetch")
	if status, out := registerModule(p, "community.fetch", "1.0.0", []string{"net:127.0.0.1"}, fetch); status != 201 {
		t.Fatalf("register fetch: %d %v", status, out)
	}
	e = runOne(t, p, "fetch", "community.fetch", fmt.Sprintf(`{"url":%q}`, srv.URL))
	if e.Status != "succeeded" || !strings.Contains(string(e.Output), "from the host") {
		t.Fatalf("fetch run: %s %s %v", e.Status, e.Output, deref(e.Error))
	}
	if status, out := registerModule(p, "community.elsewhere", "1.0.0", []string{"net:example.com"}, fetch); status != 201 {
		t.Fatalf("register elsewhere: %d %v", status, out)
	}
	e = runOne(t, p, "elsewhere", "community.elsewhere", fmt.Sprintf(`{"url":%q}`, srv.URL))
	if e.Status != "failed" || !strings.Contains(deref(e.Error), "capability not granted: net:127.0.0.1") {
		t.Fatalf("a host not granted: %s %v", e.Status, deref(e.Error))
	}

	// A module importing a host function it is not granted is refused
	// when it is offered.
	status, refused := registerModule(p, "community.sneaky", "1.0.0", nil, fetch)
	if status != 400 || !strings.Contains(fmt.Sprint(refused), "nebula.http_request") {
		t.Fatalf("ungranted import: %d %v", status, refused)
	}
	// So is a capability the policy does not allow community actions.
	status, refused = registerModule(p, "community.creds", "1.0.0", []string{"credential:github"}, wasmModule(t, "wordcount"))
	if status != 400 || !strings.Contains(fmt.Sprint(refused), "credential:github") {
		t.Fatalf("capability not allowed: %d %v", status, refused)
	}
	// And a workflow naming a version nobody registered.
	p.mustCall("PUT", "/v1/workflows/nope", `{"nodes":[{"id":"n","action":"community.wordcount@2.0.0"}]}`, 400, nil)

	var list struct {
		Items []struct {
			ID           string   `json:"id"`
			Capabilities []string `json:"capabilities"`
		} `json:"items"`
	}
	p.mustCall("GET", "/v1/actions", "", 200, &list)
	if len(list.Items) != 3 {
		t.Fatalf("actions: %+v", list.Items)
	}

	// The CLI registers a module file (multipart) and lists actions.
	file := writeFile(t, t.TempDir(), "wordcount.wasm", string(wasmModule(t, "wordcount")))
	out1 := nebulaCLI(t, p.url, "", "action", "register", file, "--id", "community.words", "--version", "0.1.0").want(t, 0)
	if !strings.Contains(out1.stdout, "community.words@0.1.0 registered") {
		t.Fatalf("register: %q", out1.stdout)
	}
	if out := nebulaCLI(t, p.url, "", "action", "list").want(t, 0); !strings.Contains(out.stdout, "community.words") || !strings.Contains(out.stdout, "net:127.0.0.1") {
		t.Fatalf("list:\n%s", out.stdout)
	}
	nebulaCLI(t, p.url, "", "action", "register", file, "--id", "community.words").want(t, 2).oneLineError(t, "--version")
	nebulaCLI(t, p.url, "", "action", "register", file, "--id", "community.Words", "--version", "1.0.0").want(t, 1).oneLineError(t, "community.Words")
}

// TestHostileModules runs modules that break each limit at once on one
// node: each fails only its own attempt, naming the limit, and the node
// goes on serving.
func TestHostileModules(t *testing.T) {
	p := startCommunityDesktop(t, "wasm_memory_limit_mb = 64\nwasm_fuel_limit = 200_000_000", "max_cpu_time = \"60s\"")
	hostile := []struct {
		name   string
		module []byte
		want   string
	}{
		{"loop", wasmModule(t, "loop"), "fuel exhausted"},
		{"membomb", wasmModule(t, "membomb"), "memory limit"},
		{"flood", wasmModule(t, "flood"), "output limit"},
		{"trap", trapModule, "trap: unreachable"},
		{"panic", wasmModule(t, "panic"), "exited with code 2"},
	}
	for _, h := range hostile {
		if status, out := registerModule(p, "community."+h.name, "1.0.0", nil, h.module); status != 201 {
			t.Fatalf("register %s: %d %v", h.name, status, out)
		}
	}
	var wg sync.WaitGroup
	for _, h := range hostile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := runOne(t, p, h.name, "community."+h.name, `{}`)
			if e.Status != "failed" || !strings.Contains(deref(e.Error), h.want) {
				t.Errorf("%s: %s, error %q; want failed naming %q", h.name, e.Status, deref(e.Error), h.want)
			}
		}()
	}
	wg.Wait()
	p.mustCall("GET", "/readyz", "", 200, nil)
	if status, out := registerModule(p, "community.wordcount", "1.0.0", nil, wasmModule(t, "wordcount")); status != 201 {
		t.Fatalf("register wordcount: %d %v", status, out)
	}
	if e := runOne(t, p, "wc", "community.wordcount", `{"text":"still here"}`); e.Status != "succeeded" {
		t.Fatalf("after the hostile modules: %s %v", e.Status, deref(e.Error))
	}

	// With fuel to spare, the wall-time limit stops the same loop.
	q := startCommunityDesktop(t, "wasm_fuel_limit = 9_000_000_000_000_000_000", "max_cpu_time = \"1s\"")
	if status, out := registerModule(q, "community.loop", "1.0.0", nil, wasmModule(t, "loop")); status != 201 {
		t.Fatalf("register loop: %d %v", status, out)
	}
	if e := runOne(t, q, "loop", "community.loop", `{}`); e.Status != "failed" || !strings.Contains(deref(e.Error), "time limit") {
		t.Fatalf("loop with fuel to spare: %s %q", e.Status, deref(e.Error))
	}
	q.mustCall("GET", "/readyz", "", 200, nil)
}

// TestCommunityIsolationCannotBeWeakened: no configuration runs community
// actions outside the sandbox; such a configuration does not start.
func TestCommunityIsolationCannotBeWeakened(t *testing.T) {
	tests := []struct{ name, conf, key string }{
		{"isolation none", "[sandbox.community_actions]\nisolation = \"none\"\n", "sandbox.community_actions.isolation"},
		{"capability gated", "[sandbox.community_actions]\nisolation = \"capability_gated\"\n", "sandbox.community_actions.isolation"},
		{"trusted pattern", "[sandbox.trusted_actions]\npatterns = [\"*\"]\n", "sandbox.trusted_actions.patterns"},
		{"trusted hub", "[sandbox.trusted_actions]\npatterns = [\"builtin.*\", \"hub.*\"]\n", "sandbox.trusted_actions.patterns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := writeFile(t, dir, "nebula.toml", tt.conf)
			out, err := exec.Command(binPath, "desktop", "--data", dir, "--bind", "127.0.0.1:0", "--config", conf).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("err %v, output %s; want exit 2", err, out)
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tt.key) {
				t.Fatalf("output %q: want one line naming %s", out, tt.key)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
