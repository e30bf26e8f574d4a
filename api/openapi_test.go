package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"go.yaml.in/yaml/v3"

	"github.com/nebula-engine/nebula/internal/metrics"
)

// openAPIMethods are the operations a Path Item can hold, in the order
// OpenAPI lists them.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPIDoc struct {
	root  map[string]any
	paths map[string]map[string]any
}

func loadOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	var root map[string]any
	if err := yaml.Unmarshal(OpenAPI(), &root); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	d := &openAPIDoc{root: root, paths: map[string]map[string]any{}}
	paths, ok := root["paths"].(map[string]any)
	if !ok {
		t.Fatal("openapi.yaml has no paths")
	}
	for p, item := range paths {
		m, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("path %s: not a mapping", p)
		}
		d.paths[p] = m
	}
	return d
}

// operations returns "METHOD path" for every documented operation.
func (d *openAPIDoc) operations() map[string]map[string]any {
	ops := map[string]map[string]any{}
	for p, item := range d.paths {
		for _, m := range openAPIMethods {
			if op, ok := item[m].(map[string]any); ok {
				ops[strings.ToUpper(m)+" "+p] = op
			}
		}
	}
	return ops
}

// resolve follows a local $ref ("#/components/...") in v, if any.
func (d *openAPIDoc) resolve(t *testing.T, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	for range 8 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		m, ok = d.lookup(ref).(map[string]any)
		if !ok {
			t.Fatalf("$ref %s does not resolve to a mapping", ref)
		}
	}
	t.Fatal("$ref chain too long")
	return nil
}

// lookup returns what a local JSON pointer names, or nil.
func (d *openAPIDoc) lookup(ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = d.root
	for _, part := range strings.Split(rest, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// pathParam finds the {names} of an OpenAPI path template.
var pathParam = regexp.MustCompile(`\{([^{}]+)\}`)

// TestOpenAPIDocument checks the document on its own: version, unique
// operation ids, resolvable references, declared path parameters, and the
// error shape on every error answer.
func TestOpenAPIDocument(t *testing.T) {
	d := loadOpenAPI(t)
	if v, _ := d.root["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}

	// Every local $ref resolves.
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && d.lookup(ref) == nil {
				t.Errorf("%s: $ref %s does not resolve", at, ref)
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s/%d", at, i), e)
			}
		}
	}
	walk("#", d.root)

	ids := map[string]string{}
	for name, op := range d.operations() {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", name)
		} else if other, dup := ids[id]; dup {
			t.Errorf("%s: operationId %q also used by %s", name, id, other)
		} else {
			ids[id] = name
		}

		// Each {param} of the path is declared, at the path or here.
		method, path, _ := strings.Cut(name, " ")
		declared := map[string]bool{}
		for _, list := range []any{d.paths[path]["parameters"], op["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm := d.resolve(t, p)
				if pm["in"] == "path" {
					if pm["required"] != true {
						t.Errorf("%s: path parameter %v is not required", name, pm["name"])
					}
					declared[fmt.Sprint(pm["name"])] = true
				}
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared", name, m[1])
			}
		}

		responses, _ := op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s: no responses", name)
		}
		ok2xx := false
		for code, r := range responses {
			if strings.HasPrefix(code, "2") {
				ok2xx = true
			}
			if code != "default" && code < "400" {
				continue
			}
			// Errors answer with ErrorResponse (an event stream or
			// metrics never do, since they fail before they start).
			resp := d.resolve(t, r)
			content, _ := resp["content"].(map[string]any)
			media := d.resolve(t, content["application/json"])
			schema, _ := media["schema"].(map[string]any)
			if schema["$ref"] != "#/components/schemas/ErrorResponse" {
				t.Errorf("%s: response %s is not the ErrorResponse shape", name, code)
			}
		}
		if !ok2xx {
			t.Errorf("%s %s: no 2xx response", method, path)
		}
	}

	// The error codes the handlers use are all in the enum.
	enum, _ := d.lookup("#/components/schemas/ErrorCode/enum").([]any)
	codes := map[string]bool{}
	for _, c := range enum {
		codes[fmt.Sprint(c)] = true
	}
	for _, c := range errorCodes {
		if !codes[c] {
			t.Errorf("ErrorCode enum lacks %q", c)
		}
	}
}

// route is one method of one path the router serves, in OpenAPI terms.
type route struct {
	method, path string
	// prefix: the route takes every path under the template (PathPrefix).
	prefix bool
}

// muxVar matches {name} and {name:pattern} of a mux template.
var muxVar = regexp.MustCompile(`\{([^{}:]+)(?::(?:[^{}]|\{[^{}]*\})*)?\}`)

// routerRoutes walks the router New builds, or skips the test when New
// no longer returns the router itself.
func routerRoutes(t *testing.T) (*mux.Router, []route) {
	t.Helper()
	r, ok := New(Config{}).(*mux.Router)
	if !ok {
		t.Skip("api.New(api.Config{}) is not a *mux.Router: the routes cannot be walked")
	}
	var routes []route
	err := r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if rt.GetHandler() == nil {
			return nil // a subrouter's own route, e.g. /v1
		}
		tpl, err := rt.GetPathTemplate()
		if err != nil {
			return fmt.Errorf("route without a path template: %w", err)
		}
		re, err := rt.GetPathRegexp()
		if err != nil {
			return err
		}
		methods, err := rt.GetMethods()
		if err != nil {
			// No method matcher: the route takes any method.
			methods = nil
			for _, m := range openAPIMethods {
				methods = append(methods, strings.ToUpper(m))
			}
		}
		path := muxVar.ReplaceAllString(tpl, "{$1}")
		for _, m := range methods {
			routes = append(routes, route{method: m, path: path, prefix: !strings.HasSuffix(re, "$")})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) == 0 {
		t.Fatal("the walk found no routes")
	}
	return r, routes
}

// documentedPath returns the documented path for a route: the same
// template, or for a prefix route the prefix followed by one parameter.
func documentedPath(d *openAPIDoc, rt route) (string, bool) {
	if !rt.prefix {
		_, ok := d.paths[rt.path]
		return rt.path, ok
	}
	for p := range d.paths {
		rest, ok := strings.CutPrefix(p, rt.path)
		if ok && pathParam.MatchString(rest) && pathParam.FindString(rest) == rest {
			return p, true
		}
	}
	return rt.path + "{…}", false
}

// TestOpenAPIMatchesRouter checks that every route is documented and that
// every documented operation is served: a route cannot be added, removed
// or changed without the document.
func TestOpenAPIMatchesRouter(t *testing.T) {
	d := loadOpenAPI(t)
	r, routes := routerRoutes(t)
	ops := d.operations()

	served := map[string]bool{}
	for _, rt := range routes {
		p, ok := documentedPath(d, rt)
		name := rt.method + " " + p
		served[name] = true
		if !ok {
			t.Errorf("route %s %s is not in openapi.yaml (add path %s)", rt.method, rt.path, p)
			continue
		}
		if _, ok := ops[name]; !ok {
			t.Errorf("route %s: openapi.yaml has path %s but not its %s operation", name, p, strings.ToLower(rt.method))
		}
	}

	// Operations served only by a fuller configuration (GET /metrics needs
	// Config.Metrics, and New then wraps the router): probe them.
	full := New(Config{Metrics: metrics.New()})
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		method, path, _ := strings.Cut(name, " ")
		target := samplePath(t, d, path, ops[name])
		req := httptest.NewRequest(method, target, nil)
		if served[name] {
			// The router must take the path with sample values too, e.g.
			// a task id with slashes in it.
			var m mux.RouteMatch
			if !r.Match(req, &m) || m.MatchErr != nil {
				t.Errorf("%s: documented, but the router does not match %s %s", name, method, target)
			}
			continue
		}
		rec := httptest.NewRecorder()
		full.ServeHTTP(rec, req)
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s: documented, but no route serves it (%s %s answered %d: %s)", name, method, target, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
}

// samplePath fills a path template's parameters with their examples, or
// "x".
func samplePath(t *testing.T, d *openAPIDoc, path string, op map[string]any) string {
	examples := map[string]string{}
	for _, list := range []any{d.paths[path]["parameters"], op["parameters"]} {
		ps, _ := list.([]any)
		for _, p := range ps {
			pm := d.resolve(t, p)
			if pm["in"] == "path" {
				if ex, ok := pm["example"].(string); ok {
					examples[fmt.Sprint(pm["name"])] = ex
				}
			}
		}
	}
	return pathParam.ReplaceAllStringFunc(path, func(s string) string {
		if ex, ok := examples[s[1:len(s)-1]]; ok {
			return ex
		}
		return "x"
	})
}

// TestOpenAPITaskIDsSpanSlashes pins down what the document says of task
// ids: the whole of a/b/c reaches the handler as the id.
func TestOpenAPITaskIDsSpanSlashes(t *testing.T) {
	r, _ := routerRoutes(t)
	for _, suffix := range []string{"complete", "fail", "heartbeat"} {
		req := httptest.NewRequest(http.MethodPost, "/v1/tasks/exec/node/1/"+suffix, nil)
		var m mux.RouteMatch
		if !r.Match(req, &m) {
			t.Errorf("POST %s: no route", req.URL.Path)
			continue
		}
		if got := m.Vars["id"]; got != "exec/node/1" {
			t.Errorf("POST %s: id %q, want exec/node/1", req.URL.Path, got)
		}
	}
}

// errorCodes are the codes the API answers with (CONTRACT §5, errors.go,
// and execution_failed of webhooks).
var errorCodes = []string{
	"bad_request", "invalid_workflow", "unauthorized", "forbidden", "not_found", "conflict",
	"too_large", "quota_exceeded", "no_leader", "unavailable", "internal", "execution_failed",
}

func knownErrorCode(c string) bool { return slices.Contains(errorCodes, c) }
