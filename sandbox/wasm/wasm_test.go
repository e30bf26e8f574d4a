package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
func program(t *testing.T, name string) []byte {
	t.Helper()
	modules.once.Do(func() {
		dir, err := os.MkdirTemp("", "nebula-wasm-test")
		if err != nil {
			modules.buildErr = err
			return
		}
		modules.dir = dir
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"../../examples/actions/wordcount", "./testdata/hostile/...")
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

func compileProgram(t *testing.T, name string, granted ...sandbox.Capability) *Module {
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
