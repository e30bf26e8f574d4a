package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nebula-engine/nebula/sandbox"
)

// hostModule is the import module the host functions are exported from.
const hostModule = "nebula"

// maxHTTPResponse bounds the response http_request keeps for a run, so a
// hook returning a huge body cannot make the host hold it on the module's
// behalf; the module reads it into its own, limited, memory anyway.
const maxHTTPResponse = 32 << 20

// httpHook sends one HTTP request for a module; see Config.HTTP.
type httpHook = func(ctx context.Context, request json.RawMessage) (json.RawMessage, error)

// runState is what the host functions keep for one run. It travels in the
// context _start is called with, since wazero hands that context to host
// functions: one host module then serves every run, and no state is shared
// between them.
type runState struct {
	granted  []sandbox.Capability
	response []byte // the last http_request's response
}

type runStateKey struct{}

func withRunState(ctx context.Context, st *runState) context.Context {
	return context.WithValue(ctx, runStateKey{}, st)
}

func runStateFrom(ctx context.Context, fn string) *runState {
	st, ok := ctx.Value(runStateKey{}).(*runState)
	if !ok {
		// Only RunWithStats calls into modules, and it always sets one.
		panic(fmt.Errorf("%s.%s: called outside a run", hostModule, fn))
	}
	return st
}

// instantiateHost registers the nebula host module with the runtime and
// records its functions' signatures for Compile to check imports against.
func (r *Runtime) instantiateHost(ctx context.Context) error {
	i32 := api.ValueTypeI32
	mod, err := r.rt.NewHostModuleBuilder(hostModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.httpRequest), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("req_ptr", "req_len").
		WithResultNames("resp_len").
		Export("http_request").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(httpResponse), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("buf_ptr", "buf_len").
		WithResultNames("copied").
		Export("http_response").
		Instantiate(ctx)
	if err != nil {
		return err
	}
	r.host = mod.ExportedFunctionDefinitions()
	return nil
}

// grantsNet reports whether granted holds any network capability, which
// is what importing the HTTP host functions takes; which hosts a module may
// reach is checked on every request.
func grantsNet(granted []sandbox.Capability) bool {
	return slices.ContainsFunc(granted, func(c sandbox.Capability) bool {
		return c == "*" || strings.HasPrefix(string(c), "net:")
	})
}

// checkHostSignatures refuses a module whose nebula imports have the wrong
// types, so that it fails at Compile rather than on every run.
func (r *Runtime) checkHostSignatures(mod wazero.CompiledModule) error {
	for _, def := range mod.ImportedFunctions() {
		module, name, _ := def.Import()
		if module != hostModule {
			continue
		}
		want := r.host[name] // checkImports let only known names through
		if !slices.Equal(def.ParamTypes(), want.ParamTypes()) || !slices.Equal(def.ResultTypes(), want.ResultTypes()) {
			return fmt.Errorf("wasm: module imports %s.%s as %s, want %s",
				hostModule, name, signature(def), signature(want))
		}
	}
	return nil
}

func signature(def api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return names(def.ParamTypes()) + " -> " + names(def.ResultTypes())
}

// httpRequest is nebula.http_request(req_ptr, req_len u32) -> u32: it sends
// the request and keeps the response for http_response, returning its
// length. Failures become an {"error": ...} response the module can handle;
// only a request outside the module's memory traps.
func (r *Runtime) httpRequest(ctx context.Context, mod api.Module, stack []uint64) {
	st := runStateFrom(ctx, "http_request")
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	req, ok := memory(mod, "http_request").Read(ptr, n)
	if !ok {
		panic(outside(mod, "http_request", "request", ptr, n))
	}
	// Read returns a view of the module's memory, which must not be used
	// once the module is closed (the run's time may run out mid-request).
	req = bytes.Clone(req)

	resp := respond(ctx, r.http, st.granted, req)
	if err := ctx.Err(); err != nil {
		// The run is over: stop the module here rather than hand it an
		// error it might exit on, which would hide why the run ended.
		code := sys.ExitCodeContextCanceled
		if errors.Is(err, context.DeadlineExceeded) {
			code = sys.ExitCodeDeadlineExceeded
		}
		panic(sys.NewExitError(code))
	}
	st.response = resp
	stack[0] = api.EncodeU32(uint32(len(resp)))
}

// httpResponse is nebula.http_response(buf_ptr, buf_len u32) -> u32: it
// copies as much of the last response as fits into the buffer and returns
// the count copied. The whole buffer must lie in the module's memory.
func httpResponse(ctx context.Context, mod api.Module, stack []uint64) {
	st := runStateFrom(ctx, "http_response")
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	buf, ok := memory(mod, "http_response").Read(ptr, n)
	if !ok {
		panic(outside(mod, "http_response", "buffer", ptr, n))
	}
	stack[0] = api.EncodeU32(uint32(copy(buf, st.response)))
}

func memory(mod api.Module, fn string) api.Memory {
	mem := mod.Memory()
	if mem == nil {
		panic(fmt.Errorf("%s.%s: the module has no memory", hostModule, fn))
	}
	return mem
}

// outside is the trap for a pointer the module got wrong: a bug in the
// module, not a failure it could handle.
func outside(mod api.Module, fn, what string, ptr, n uint32) error {
	return fmt.Errorf("%s.%s: %s at [%d, %d) is outside the module's memory of %d bytes",
		hostModule, fn, what, ptr, uint64(ptr)+uint64(n), mod.Memory().Size())
}

// respond runs one request through hook and returns the response the module
// reads: the hook's JSON object, or {"error": ...}.
func respond(ctx context.Context, hook httpHook, granted []sandbox.Capability, req []byte) []byte {
	resp, err := send(ctx, hook, granted, req)
	if err != nil {
		resp, _ = json.Marshal(struct {
			Error string `json:"error"`
		}{err.Error()})
	}
	return resp
}

func send(ctx context.Context, hook httpHook, granted []sandbox.Capability, req []byte) (json.RawMessage, error) {
	if hook == nil {
		return nil, errors.New("http_request: no HTTP on this runtime")
	}
	// The hook checks the capability too, when it dials; checking here as
	// well means a hook that forgets cannot open the network to a module.
	var p struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(req, &p); err != nil {
		return nil, fmt.Errorf("http_request: request: %w", err)
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, fmt.Errorf("http_request: url: %w", err)
	}
	host := strings.ToLower(u.Hostname()) // as builtin.http checks it
	if host == "" {
		return nil, fmt.Errorf("http_request: url %q has no host", p.URL)
	}
	if !sandbox.Grants(granted, sandbox.Capability("net:"+host)) {
		return nil, fmt.Errorf("%w: net:%s", sandbox.ErrCapability, host)
	}

	resp, err := hook(sandbox.WithGrants(ctx, granted), req)
	switch {
	case err != nil:
		return nil, err
	case len(resp) > maxHTTPResponse:
		return nil, fmt.Errorf("http_request: response of %d bytes exceeds the limit of %d bytes", len(resp), maxHTTPResponse)
	case !isObject(resp):
		// The module is promised an object; a hook breaking that is a bug
		// the module should not have to guess at.
		return nil, errors.New("http_request: the HTTP hook returned something other than a JSON object")
	}
	return resp, nil
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}
