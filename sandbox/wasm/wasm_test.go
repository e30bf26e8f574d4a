package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/sandbox/internal/wasmbin"
)

// Go's wasip1 runtime burns about 1.5 million fuel before main even starts,
// so the limits here are generous for programs and small enough that the
// hostile ones stop in well under a second.
var testLimits = sandbox.Limits{
	MemoryBytes:    256 << 20,
	Fuel:           2_000_000_000,
	WallTime:       time.Minute,
	MaxOutputBytes: 1 << 20,
}

// modules holds the example and hostile programs, built for wasip1 once per
// test binary; buildErr says why they are missing.
var modules struct {
	once     sync.Once
	dir      string
	buildErr error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if modules.dir != "" {
		os.RemoveAll(modules.dir)
	}
	os.Exit(code)
}

// program returns the wasm bytes of a Go program built from this
// repository, skipping the test when the toolchain cannot build it.
func program(t testing.TB, name string) []byte {
	t.Helper()
	modules.once.Do(func() {
		dir, err := os.MkdirTemp("", "nebula-wasm-test")
		if err != nil {
			modules.buildErr = err
			return
		}
		modules.dir = dir
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"../../examples/actions/wordcount", "../../examples/actions/fetch", "./testdata/hostile/...")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			modules.buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if modules.buildErr != nil {
		t.Skipf("cannot build the wasip1 test programs (needs a Go toolchain with GOOS=wasip1): %v", modules.buildErr)
	}
	b, err := os.ReadFile(filepath.Join(modules.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	ctx := context.Background()
	r, err := NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	return r
}

// sharedRuntime compiles each program once for all the tests that only run
// it, since a Go program takes seconds to compile.
var sharedRuntime = sync.OnceValues(func() (*Runtime, error) {
	return NewRuntime(context.Background(), Config{})
})

func compileProgram(t testing.TB, name string, granted ...sandbox.Capability) *Module {
	t.Helper()
	b := program(t, name)
	r, err := sharedRuntime()
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Compile(context.Background(), b, granted)
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	return m
}

// handModule assembles a module from a function type list, imports and one
// exported _start body, for what Go cannot produce.
func handModule(imports []byte, body []byte) []byte {
	sections := []wasmbin.Section{{ID: wasmbin.SectionType, Content: []byte{0x01, 0x60, 0x00, 0x00}}}
	if imports != nil {
		sections = append(sections, wasmbin.Section{ID: wasmbin.SectionImport, Content: imports})
	}
	if body != nil {
		code := append(wasmbin.AppendU32([]byte{0x01}, uint32(len(body)+1)), 0x00)
		sections = append(sections,
			wasmbin.Section{ID: wasmbin.SectionFunction, Content: []byte{0x01, 0x00}},
			wasmbin.Section{ID: wasmbin.SectionExport, Content: append(append([]byte{0x01}, wasmbin.AppendName(nil, "_start")...), 0x00, 0x00)},
			wasmbin.Section{ID: wasmbin.SectionCode, Content: append(code, body...)},
		)
	}
	return wasmbin.Encode(sections)
}

func importFunc(module, name string) []byte {
	b := wasmbin.AppendName([]byte{0x01}, module)
	b = wasmbin.AppendName(b, name)
	return append(b, 0x00, 0x00)
}

func TestWordCount(t *testing.T) {
	m := compileProgram(t, "wordcount")
	tests := []struct {
		params string
		want   string
	}{
		{`{"text": "the cat and the hat and the bat"}`,
			`{"words":8,"top":[{"word":"the","count":3},{"word":"and","count":2},{"word":"bat","count":1},{"word":"cat","count":1},{"word":"hat","count":1}]}`},
		{`{"text": ""}`, `{"words":0,"top":[]}`},
		{``, `{"words":0,"top":[]}`},
	}
	for _, tt := range tests {
		out, err := m.Run(context.Background(), json.RawMessage(tt.params), testLimits)
		if err != nil {
			t.Fatalf("Run(%s): %v", tt.params, err)
		}
		if string(out) != tt.want {
			t.Errorf("Run(%s) = %s, want %s", tt.params, out, tt.want)
		}
	}

	_, err := m.Run(context.Background(), json.RawMessage(`not json`), testLimits)
	if err == nil || !strings.Contains(err.Error(), "exited with code 1") || !strings.Contains(err.Error(), "wordcount: bad params") {
		t.Errorf("bad params: err = %v, want exit code 1 with the stderr tail", err)
	}
}

func TestHostile(t *testing.T) {
	tests := []struct {
		name    string
		program string // a Go program, or
		module  []byte // a hand-assembled one
		limits  sandbox.Limits
		want    error // sentinel, nil for a plain failure
		message string
	}{
		{name: "infinite loop, fuel", program: "loop", limits: withFuel(testLimits, 50_000_000),
			want: sandbox.ErrFuelExhausted, message: "fuel exhausted"},
		{name: "infinite loop, wall time", program: "loop", limits: sandbox.Limits{Fuel: 1 << 62, WallTime: 300 * time.Millisecond},
			want: sandbox.ErrTimeLimit, message: "time limit"},
		{name: "memory bomb", program: "membomb", limits: withMemory(testLimits, 64<<20),
			want: sandbox.ErrMemoryLimit, message: "memory limit"},
		{name: "too little memory to start", program: "wordcount", limits: withMemory(testLimits, 1<<20),
			want: sandbox.ErrMemoryLimit, message: "to start"},
		{name: "stdout flood", program: "flood", limits: testLimits,
			want: sandbox.ErrOutputLimit, message: "output limit"},
		{name: "panic", program: "panic", limits: testLimits,
			message: "exited with code 2; stderr: panic: hostile module gave up"},
		{name: "trap", module: handModule(nil, []byte{0x00, 0x0b}), limits: testLimits,
			want: sandbox.ErrTrap, message: "trap: unreachable"},
		{name: "tight loop, fuel", module: handModule(nil, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}), limits: withFuel(testLimits, 1000),
			want: sandbox.ErrFuelExhausted, message: "all of its 1000 fuel"},
		{name: "no output", module: handModule(nil, []byte{0x0b}), limits: testLimits,
			message: "not valid JSON"},
	}
	r, err := sharedRuntime()
	if err != nil {
		t.Fatal(err)
	}
	word := compileProgram(t, "wordcount")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var m *Module
			if tt.program != "" {
				m = compileProgram(t, tt.program)
			} else if m, err = r.Compile(ctx, tt.module, nil); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			out, used, err := m.RunWithStats(ctx, nil, tt.limits)
			t.Logf("%v after %v, %d fuel", err, time.Since(start).Round(time.Millisecond), used)
			if err == nil {
				t.Fatalf("run succeeded with %s", out)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("err = %v, want it to contain %q", err, tt.message)
			}
			if errors.Is(tt.want, sandbox.ErrFuelExhausted) && used != tt.limits.Fuel {
				t.Errorf("fuel used = %d, want all of %d", used, tt.limits.Fuel)
			}
			// The runtime must be as good as new for the next run.
			if _, err := word.Run(ctx, json.RawMessage(`{"text": "still alive"}`), testLimits); err != nil {
				t.Errorf("next run: %v", err)
			}
		})
	}
}

func withFuel(l sandbox.Limits, fuel uint64) sandbox.Limits { l.Fuel = fuel; return l }

func withMemory(l sandbox.Limits, bytes uint64) sandbox.Limits { l.MemoryBytes = bytes; return l }

func TestImportsRefused(t *testing.T) {
	r := newRuntime(t, Config{})
	tests := []struct {
		name    string
		module  []byte
		granted []sandbox.Capability
		want    string
	}{
		{"env.evil", handModule(importFunc("env", "evil"), nil), nil, "function env.evil"},
		{"granted net", handModule(importFunc("env", "evil"), nil), []sandbox.Capability{"net:*"}, "function env.evil"},
		{"unknown WASI function", handModule(importFunc("wasi_snapshot_preview1", "sock_connect"), nil), nil,
			"function wasi_snapshot_preview1.sock_connect"},
		{"http without net", handModule(importFunc("nebula", "http_request"), nil), []sandbox.Capability{"clock", "credential:github"},
			"function nebula.http_request, which needs a net: capability"},
		{"both http functions without net", hostModuleWith([]string{"http_request", "http_response"}, nil), nil,
			"functions nebula.http_request, nebula.http_response, which need a net: capability"},
		{"unknown nebula function", handModule(importFunc("nebula", "exec"), nil), []sandbox.Capability{"net:*"},
			"function nebula.exec, which is neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Compile(context.Background(), tt.module, tt.granted)
			if !errors.Is(err, sandbox.ErrCapability) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile() error = %v, want %v naming %q", err, sandbox.ErrCapability, tt.want)
			}
		})
	}
	if _, err := r.Compile(context.Background(), handModule(nil, []byte{0x0b}), []sandbox.Capability{"net:"}); err == nil {
		t.Error("Compile accepted a malformed capability")
	}
	if _, err := r.Compile(context.Background(), []byte("\x00asm\x01\x00\x00\x00"), nil); err == nil ||
		!strings.Contains(err.Error(), "_start") {
		t.Errorf("Compile(empty module) error = %v, want no _start", err)
	}
}

func TestFuelDeterministic(t *testing.T) {
	m := compileProgram(t, "wordcount")
	params := json.RawMessage(`{"text": "a b c a b a lorem ipsum dolor sit amet a"}`)
	var first uint64
	for i := range 5 {
		_, used, err := m.RunWithStats(context.Background(), params, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = used
			t.Logf("wordcount used %d fuel", used)
			continue
		}
		if used != first {
			t.Fatalf("run %d used %d fuel, run 0 used %d", i, used, first)
		}
	}
	// A budget one short of what the run needs must fail, every time.
	for range 3 {
		_, used, err := m.RunWithStats(context.Background(), params, withFuel(testLimits, first-1))
		if !errors.Is(err, sandbox.ErrFuelExhausted) || used != first-1 {
			t.Fatalf("with %d fuel: err = %v, used %d; want fuel exhausted", first-1, err, used)
		}
	}
	if _, used, err := m.RunWithStats(context.Background(), params, withFuel(testLimits, first)); err != nil || used != first {
		t.Fatalf("with exactly %d fuel: err = %v, used %d", first, err, used)
	}
}

// TestFuelStopsAtTheSamePoint runs a counter that prints its progress
// until fuel runs out, on two runtimes standing for two nodes (one with a
// disk cache, one without): it stops at the same count on every run.
func TestFuelStopsAtTheSamePoint(t *testing.T) {
	b := program(t, "counter")
	var first string
	var runs int
	for _, cfg := range []Config{{}, {CacheDir: t.TempDir()}} {
		r := newRuntime(t, cfg)
		m, err := r.Compile(context.Background(), b, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			_, err = m.Run(context.Background(), nil, withFuel(testLimits, 50_000_000))
			if !errors.Is(err, sandbox.ErrFuelExhausted) || !strings.Contains(err.Error(), "\nat ") {
				t.Fatalf("run %d: %v, want fuel exhausted quoting the progress", runs, err)
			}
			if runs == 0 {
				first = err.Error()
			} else if err.Error() != first {
				t.Fatalf("run %d stopped elsewhere:\n%s\nrun 0:\n%s", runs, err, first)
			}
			runs++
		}
	}
	tail := first[strings.LastIndex(first, "at "):]
	t.Logf("50,000,000 fuel stops the counter after %q", strings.TrimSpace(tail))
}

func TestCacheDir(t *testing.T) {
	dir := t.TempDir()
	b := program(t, "panic") // the smallest program
	for range 2 {
		r := newRuntime(t, Config{CacheDir: dir})
		if _, err := r.Compile(context.Background(), b, nil); err != nil {
			t.Fatal(err)
		}
		r.Close(context.Background())
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache dir %s: %d entries, %v", dir, len(entries), err)
	}
}

func TestCancel(t *testing.T) {
	m := compileProgram(t, "loop")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := m.Run(ctx, nil, sandbox.Limits{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sandbox.ErrTimeLimit) {
		t.Errorf("err = %v, want the caller's context error, not a limit", err)
	}
}

// hostModuleWith assembles a module importing the named nebula functions as
// (i32, i32) -> i32, with one page of memory and an exported _start body.
func hostModuleWith(funcs []string, body []byte) []byte {
	types := []byte{0x02, 0x60, 0x00, 0x00, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f}
	imports := wasmbin.AppendU32(nil, uint32(len(funcs)))
	for _, name := range funcs {
		imports = wasmbin.AppendName(imports, "nebula")
		imports = wasmbin.AppendName(imports, name)
		imports = append(imports, wasmbin.KindFunc, 0x01)
	}
	sections := []wasmbin.Section{
		{ID: wasmbin.SectionType, Content: types},
		{ID: wasmbin.SectionImport, Content: imports},
	}
	if body != nil {
		code := append(wasmbin.AppendU32([]byte{0x01}, uint32(len(body)+1)), 0x00)
		export := append(wasmbin.AppendName([]byte{0x01}, "_start"), wasmbin.KindFunc)
		sections = append(sections,
			wasmbin.Section{ID: wasmbin.SectionFunction, Content: []byte{0x01, 0x00}},
			wasmbin.Section{ID: wasmbin.SectionMemory, Content: []byte{0x01, 0x00, 0x01}},
			wasmbin.Section{ID: wasmbin.SectionExport, Content: wasmbin.AppendU32(export, uint32(len(funcs)))},
			wasmbin.Section{ID: wasmbin.SectionCode, Content: append(code, body...)},
		)
	}
	return wasmbin.Encode(sections)
}

// callHost is the code for "call fn(ptr, n); drop".
func callHost(fn uint32, ptr, n int32) []byte {
	b := wasmbin.AppendS64([]byte{0x41}, int64(ptr)) // i32.const
	b = wasmbin.AppendS64(append(b, 0x41), int64(n))
	return append(wasmbin.AppendU32(append(b, 0x10), fn), 0x1a) // call, drop
}

type tenantKey struct{}

// testHTTP is a small builtin.http: GET only, the body as a string and an
// error for a status of 400 or more. Like builtin.http it checks the
// capability itself, which the run's grants in ctx must satisfy, and it
// sends the caller's tenant from ctx so that the server can echo it.
func testHTTP(ctx context.Context, request json.RawMessage) (json.RawMessage, error) {
	var p struct{ Method, URL string }
	if err := json.Unmarshal(request, &p); err != nil {
		return nil, err
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, err
	}
	if err := sandbox.Check(ctx, sandbox.Capability("net:"+u.Hostname())); err != nil {
		return nil, fmt.Errorf("hook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, p.Method, p.URL, nil)
	if err != nil {
		return nil, err
	}
	if tenant, ok := ctx.Value(tenantKey{}).(string); ok {
		req.Header.Set("X-Tenant", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("GET %s: %s", p.URL, resp.Status)
	}
	return json.Marshal(map[string]any{"status": resp.StatusCode, "body": string(body)})
}

// httpRuntime compiles the fetch program once for the HTTP tests; the
// compiled module is shared whatever the capabilities.
var httpRuntime = sync.OnceValues(func() (*Runtime, error) {
	return NewRuntime(context.Background(), Config{HTTP: testHTTP})
})

func compileFetch(t *testing.T, granted ...sandbox.Capability) (*Module, error) {
	t.Helper()
	b := program(t, "fetch")
	r, err := httpRuntime()
	if err != nil {
		t.Fatal(err)
	}
	return r.Compile(t.Context(), b, granted)
}

// testServer answers /slow only when the client gives up, reporting that
// the request arrived, and every other path with a greeting; requests
// counts what reached it.
func testServer(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}, requests *atomic.Int32) {
	slow := make(chan struct{}, 1)
	release := make(chan struct{})
	requests = new(atomic.Int32)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/slow":
			select {
			case slow <- struct{}{}:
			default:
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/missing":
			http.NotFound(w, r)
		default:
			greeting := "hello from " + r.URL.Path
			if tenant := r.Header.Get("X-Tenant"); tenant != "" {
				greeting += " for " + tenant
			}
			fmt.Fprint(w, greeting)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first, so Close does not wait on /slow
	return srv, slow, requests
}

func TestHTTPRequest(t *testing.T) {
	srv, _, requests := testServer(t)
	tests := []struct {
		name    string
		granted []sandbox.Capability
		path    string
		tenant  string // put in the caller's ctx
		want    string // the output, or
		wantErr string // what the run's error says
		reached bool   // whether the request reaches the server
	}{
		{name: "granted host", granted: []sandbox.Capability{"net:127.0.0.1"}, path: "/hello",
			want: `{"status":200,"body":"hello from /hello"}`, reached: true},
		{name: "granted every host", granted: []sandbox.Capability{"clock", "net:*"}, path: "/hello",
			want: `{"status":200,"body":"hello from /hello"}`, reached: true},
		{name: "caller's ctx reaches the hook", granted: []sandbox.Capability{"net:127.0.0.1"}, path: "/t", tenant: "acme",
			want: `{"status":200,"body":"hello from /t for acme"}`, reached: true},
		{name: "other host granted", granted: []sandbox.Capability{"net:example.com"}, path: "/hello",
			wantErr: "exited with code 1; stderr: fetch: GET " + srv.URL + "/hello: capability not granted: net:127.0.0.1"},
		{name: "hook error", granted: []sandbox.Capability{"net:127.0.0.1"}, path: "/missing",
			wantErr: "exited with code 1; stderr: fetch: GET " + srv.URL + "/missing: GET " + srv.URL + "/missing: 404 Not Found",
			reached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := compileFetch(t, tt.granted...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if tt.tenant != "" {
				ctx = context.WithValue(ctx, tenantKey{}, tt.tenant)
			}
			before := requests.Load()
			params, _ := json.Marshal(map[string]string{"url": srv.URL + tt.path})
			out, err := m.Run(ctx, params, testLimits)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr == "" && string(out) != tt.want:
				t.Errorf("Run = %s, want %s", out, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Run = %s, %v; want an error containing %q", out, err, tt.wantErr)
			}
			if reached := requests.Load() > before; reached != tt.reached {
				t.Errorf("request reached the server: %v, want %v", reached, tt.reached)
			}
		})
	}
}

func TestHTTPRequiresNet(t *testing.T) {
	for _, granted := range [][]sandbox.Capability{nil, {"clock"}, {"credential:github", "blob:read"}} {
		_, err := compileFetch(t, granted...)
		if !errors.Is(err, sandbox.ErrCapability) || !strings.Contains(err.Error(), "nebula.http_request") ||
			!strings.Contains(err.Error(), "need a net: capability") {
			t.Errorf("Compile with %v: error = %v, want %v naming nebula.http_request", granted, err, sandbox.ErrCapability)
		}
	}
}

func TestHTTPTimeLimit(t *testing.T) {
	srv, arrived, _ := testServer(t)
	m, err := compileFetch(t, "net:127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lim := testLimits
	lim.WallTime = time.Second
	start := time.Now()
	_, err = m.Run(t.Context(), json.RawMessage(`{"url": "`+srv.URL+`/slow"}`), lim)
	elapsed := time.Since(start)
	if !errors.Is(err, sandbox.ErrTimeLimit) {
		t.Fatalf("err = %v, want %v", err, sandbox.ErrTimeLimit)
	}
	select {
	case <-arrived:
	default:
		t.Fatal("the request never reached the server: the limit struck before it, proving nothing")
	}
	// The server never answers: only cancelling the request ends the run.
	if elapsed > lim.WallTime+5*time.Second {
		t.Errorf("the run took %v with a wall time of %v", elapsed, lim.WallTime)
	}
}

func TestHTTPConcurrentRuns(t *testing.T) {
	srv, _, _ := testServer(t)
	m, err := compileFetch(t, "net:127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			tenant := fmt.Sprintf("tenant%d", i)
			ctx := context.WithValue(t.Context(), tenantKey{}, tenant)
			out, err := m.Run(ctx, json.RawMessage(`{"url": "`+srv.URL+`/`+tenant+`"}`), testLimits)
			want := fmt.Sprintf(`{"status":200,"body":"hello from /%s for %s"}`, tenant, tenant)
			if err != nil || string(out) != want {
				t.Errorf("run %d = %s, %v; want %s", i, out, err, want)
			}
		})
	}
	wg.Wait()
}

func TestHostFunctionTraps(t *testing.T) {
	r := newRuntime(t, Config{HTTP: testHTTP})
	both := []string{"http_request", "http_response"}
	tests := []struct {
		name   string
		module []byte
		want   string
	}{
		{"request outside memory", hostModuleWith(both, append(callHost(0, 65530, 100), 0x0b)),
			"trap: nebula.http_request: request at [65530, 65630) is outside the module's memory of 65536 bytes"},
		{"negative length", hostModuleWith(both, append(callHost(0, 0, -1), 0x0b)),
			"trap: nebula.http_request: request at [0, 4294967295) is outside"},
		{"buffer outside memory", hostModuleWith(both, append(append(callHost(0, 0, 2), callHost(1, 65535, 10)...), 0x0b)),
			"trap: nebula.http_response: buffer at [65535, 65545) is outside the module's memory of 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := r.Compile(t.Context(), tt.module, []sandbox.Capability{"net:*"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Run(t.Context(), nil, testLimits)
			if !errors.Is(err, sandbox.ErrTrap) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %v containing %q", err, sandbox.ErrTrap, tt.want)
			}
		})
	}

	// A well-behaved call gets an error response to handle, not a trap: the
	// request at 0 is two zero bytes, not JSON.
	m, err := r.Compile(t.Context(), hostModuleWith(both, append(callHost(0, 0, 2), 0x0b)), []sandbox.Capability{"net:*"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(t.Context(), nil, testLimits); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("err = %v, want only the missing output complained of", err)
	}
}

func TestHostSignatureChecked(t *testing.T) {
	r := newRuntime(t, Config{})
	// http_request imported as () -> (), the type handModule gives imports.
	module := handModule(importFunc("nebula", "http_request"), []byte{0x0b})
	// handModule's _start is function 0, the import; export the real one.
	sections, err := wasmbin.Parse(module)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sections {
		if s.ID == wasmbin.SectionExport {
			sections[i].Content = append(wasmbin.AppendName([]byte{0x01}, "_start"), 0x00, 0x01)
		}
	}
	_, err = r.Compile(t.Context(), wasmbin.Encode(sections), []sandbox.Capability{"net:example.com"})
	if err == nil || !strings.Contains(err.Error(), "imports nebula.http_request as () -> (), want (i32, i32) -> (i32)") {
		t.Errorf("Compile error = %v, want the signature mismatch", err)
	}
}

func TestRespond(t *testing.T) {
	// hook answers with out and err, after checking that the run's grants
	// reached it.
	hook := func(out string, err error) httpHook {
		return func(ctx context.Context, req json.RawMessage) (json.RawMessage, error) {
			if err := sandbox.Check(ctx, "net:api.example.com"); err != nil {
				return nil, err
			}
			return json.RawMessage(out), err
		}
	}
	ok := `{"status":200,"headers":{},"body":"hi"}`
	net := []sandbox.Capability{"net:api.example.com"}
	tests := []struct {
		name    string
		hook    httpHook
		granted []sandbox.Capability
		req     string
		want    string
	}{
		{"success", hook(ok, nil), net, `{"url": "https://api.example.com/x"}`, ok},
		{"host case", hook(ok, nil), net, `{"url": "https://API.Example.com/x"}`, ok},
		{"host pattern", hook(ok, nil), []sandbox.Capability{"net:*.example.com"}, `{"url": "https://api.example.com/x"}`, ok},
		{"no hook", nil, net, `{"url": "https://api.example.com/x"}`, `{"error":"http_request: no HTTP on this runtime"}`},
		{"host not granted", hook(ok, nil), net, `{"method": "POST", "url": "http://127.0.0.1:8080/x"}`,
			`{"error":"capability not granted: net:127.0.0.1"}`},
		{"no grants", hook(ok, nil), nil, `{"url": "https://api.example.com/x"}`,
			`{"error":"capability not granted: net:api.example.com"}`},
		{"not JSON", hook(ok, nil), net, `{"url"`, `{"error":"http_request: request: unexpected end of JSON input"}`},
		{"no host", hook(ok, nil), net, `{"url": "/x"}`, `{"error":"http_request: url \"/x\" has no host"}`},
		{"bad url", hook(ok, nil), net, `{"url": "http://[::1"}`, `{"error":"http_request: url: parse \"http://[::1\": missing ']' in host"}`},
		{"hook error", hook("", errors.New("GET https://api.example.com/x: 404 Not Found")), net, `{"url": "https://api.example.com/x"}`,
			`{"error":"GET https://api.example.com/x: 404 Not Found"}`},
		{"hook answer not an object", hook(`[1]`, nil), net, `{"url": "https://api.example.com/x"}`,
			`{"error":"http_request: the HTTP hook returned something other than a JSON object"}`},
		{"hook answer too large", hook(`{"body":"`+strings.Repeat("x", maxHTTPResponse)+`"}`, nil), net, `{"url": "https://api.example.com/x"}`,
			fmt.Sprintf(`{"error":"http_request: response of %d bytes exceeds the limit of %d bytes"}`, maxHTTPResponse+11, maxHTTPResponse)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := respond(t.Context(), tt.hook, tt.granted, []byte(tt.req)); string(got) != tt.want {
				t.Errorf("respond = %s, want %s", got, tt.want)
			}
		})
	}
}
