package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/internal/metrics"
	"github.com/nebula-engine/nebula/storage/secrets"
)

const (
	testAdminToken  = "admin-token-for-the-api-tests"
	testWorkerToken = "worker-token-for-the-api-tests"
)

// newAuthServer is the test server with auth on, the two configured
// tokens, and a master key so that credentials can be stored.
func newAuthServer(t testing.TB) *testServer {
	t.Helper()
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, func(c *testConfig) {
		c.api.Auth = true
		c.api.AdminToken = testAdminToken
		c.api.WorkerToken = testWorkerToken
		c.service.Secrets = keys
	})
}

// authAnswer is an answer to a request made with a token.
type authAnswer struct {
	status int
	header http.Header
	body   string
}

// code returns the error code of an error answer, or "".
func (a authAnswer) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal([]byte(a.body), &e)
	return e.Error.Code
}

// do sends a request with token (none when "") and extra headers (name,
// value pairs). Every request has a deadline, so that an event stream
// ends.
func do(t *testing.T, h http.Handler, method, path, token, body string, headers ...string) authAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return authAnswer{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// must is do that fails the test unless the status is want, and decodes
// the answer into out (if not nil).
func must(t *testing.T, h http.Handler, method, path, token, body string, want int, out any, headers ...string) {
	t.Helper()
	a := do(t, h, method, path, token, body, headers...)
	if a.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, a.status, want, a.body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(a.body), out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, path, a.body, err)
		}
	}
}

// walkedRoute is one method of one route of the router, with its mux
// template ("/v1/tasks/{id:.+}/complete").
type walkedRoute struct {
	method, template string
}

func (r walkedRoute) String() string { return r.method + " " + r.template }

// walkRoutes lists every route of the full router (with GET /metrics),
// one entry per method.
func walkRoutes(t *testing.T) []walkedRoute {
	t.Helper()
	_, r := build(Config{Metrics: metrics.New()})
	var out []walkedRoute
	err := r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if rt.GetHandler() == nil {
			return nil
		}
		tpl, err := rt.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := rt.GetMethods()
		if err != nil {
			methods = []string{http.MethodGet, http.MethodPost} // any method: two suffice
		}
		for _, m := range methods {
			out = append(out, walkedRoute{m, tpl})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 30 {
		t.Fatalf("the walk found %d routes", len(out))
	}
	return out
}

// TestEveryRouteIsClassified: a route added without an access class
// fails here (and answers 500 to everyone until it has one).
func TestEveryRouteIsClassified(t *testing.T) {
	served := map[string]bool{}
	for _, rt := range walkRoutes(t) {
		served[rt.template] = true
		if _, ok := routeClasses[rt.template]; !ok {
			t.Errorf("route %s has no access class: add %q to routeClasses in auth.go (public, admin, worker or tenant)", rt, rt.template)
		}
	}
	for tpl := range routeClasses {
		if !served[tpl] {
			t.Errorf("routeClasses names %q, which no route serves", tpl)
		}
	}

	// The document says the same of every operation.
	d := loadOpenAPI(t)
	for _, rt := range walkRoutes(t) {
		path := muxVar.ReplaceAllString(rt.template, "{$1}")
		if path == "/hooks/" {
			path = "/hooks/{path}"
		}
		op, ok := d.operations()[rt.method+" "+path]
		if !ok {
			continue // TestOpenAPIMatchesRouter reports it
		}
		if got, want := fmt.Sprint(op["x-nebula-access"]), routeClasses[rt.template].String(); got != want {
			t.Errorf("%s %s: openapi.yaml says x-nebula-access %q, auth.go says %q", rt.method, path, got, want)
		}
	}
}

// tenantFixture is what TestTenantIsolation makes: tenants A and B, and in
// A one object of every kind.
type tenantFixture struct {
	tokenA, tokenB string
	// tokenA2 is a second token of A, whose id names a token in paths.
	tokenA2, tokenA2ID                            string
	workflow, execution, task, credential, action string
	// secretsA is every value of A that B must never see.
	secretsA []string
}

func newTenantFixture(t *testing.T, h http.Handler) *tenantFixture {
	t.Helper()
	var a, b struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, h, "POST", "/v1/tenants", testAdminToken, `{"id":"tenant-a","name":"Tenant A Name","quota":{"max_workflows":7}}`, 201, &a)
	must(t, h, "POST", "/v1/tenants", testAdminToken, `{"id":"tenant-b"}`, 201, &b)
	f := &tenantFixture{tokenA: a.Token, tokenB: b.Token, workflow: "wf-a-secret", credential: "cred-a", action: "community.action-a"}

	must(t, h, "PUT", "/v1/workflows/"+f.workflow, f.tokenA,
		`{"name":"Workflow A Name","nodes":[{"id":"n","action":"builtin.log","params":{"message":"log-secret-a"}}],"triggers":[{"type":"webhook","path":"hook-a","wait":"0s"}]}`, 200, nil)
	var e struct {
		ID string `json:"id"`
	}
	must(t, h, "POST", "/v1/workflows/"+f.workflow+"/executions", f.tokenA, `{"input":{"k":"input-secret-a"}}`, 201, &e)
	f.execution, f.task = e.ID, e.ID+"/n/1"
	must(t, h, "POST", "/v1/credentials", f.tokenA, `{"name":"cred-a","type":"bearer","data":{"token":"credential-secret-a"}}`, 201, nil)
	must(t, h, "POST", "/v1/actions", f.tokenA, string(actionJSON(t, f.action, "1.0.0", testModule("a"), nil)), 201, nil)
	var k struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	must(t, h, "POST", "/v1/tenants/tenant-a/tokens", testAdminToken, ``, 201, &k)
	f.tokenA2, f.tokenA2ID = k.Token, k.ID

	// B has objects of its own, so that its lists are not empty.
	must(t, h, "PUT", "/v1/workflows/wf-b", f.tokenB, `{"nodes":[{"id":"n","action":"builtin.noop"}]}`, 200, nil)
	must(t, h, "POST", "/v1/credentials", f.tokenB, `{"name":"cred-b","type":"bearer","data":{"token":"credential-secret-b"}}`, 201, nil)

	f.secretsA = []string{
		"tenant-a", "Tenant A Name", f.tokenA, f.tokenA2, f.tokenA2ID,
		f.workflow, "Workflow A Name", "log-secret-a", "hook-a", f.execution, "input-secret-a",
		f.credential, "credential-secret-a", f.action,
	}
	return f
}

// muxParam matches {name} or {name:pattern} in a mux template.
var muxParam = regexp.MustCompile(`\{([^{}:]+)(?::(?:[^{}]|\{[^{}]*\})*)?\}`)

// pathFor fills a route template with A's ids; suffix is appended to each
// (to name objects that do not exist). It fails naming a parameter it has
// no value for, so that a new kind of route gets one.
func (f *tenantFixture) pathFor(t *testing.T, tpl, suffix string) string {
	t.Helper()
	if tpl == "/hooks/" {
		return "/hooks/tenant-a/no-such-hook" + suffix
	}
	return muxParam.ReplaceAllStringFunc(tpl, func(m string) string {
		name := muxParam.FindStringSubmatch(m)[1]
		var v string
		switch {
		case name == "id" && strings.HasPrefix(tpl, "/v1/workflows/"):
			v = f.workflow
		case name == "id" && strings.HasPrefix(tpl, "/v1/executions/"):
			v = f.execution
		case name == "id" && strings.HasPrefix(tpl, "/v1/tasks/"):
			v = f.task
		case name == "id" && strings.HasPrefix(tpl, "/v1/tenants/"), name == "tenant":
			v = "tenant-a"
		case name == "name":
			v = f.credential
		case name == "ref":
			v = f.action
		case name == "token_id":
			v = f.tokenA2ID
		default:
			t.Fatalf("route %s: no sample value for {%s}: teach tenantFixture.pathFor", tpl, name)
		}
		return v + suffix
	})
}

// leaks returns the secrets of A in body that the request did not carry
// itself (an error naming the id it was asked about is no leak).
func (f *tenantFixture) leaks(path, body string) []string {
	var out []string
	for _, s := range f.secretsA {
		if strings.Contains(body, s) && !strings.Contains(path, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestTenantIsolation walks every route of the router with no token,
// tenant B's token and tenant A's token, on A's objects: no token is 401
// (unless the route is public); B never reaches A's objects, is told they
// do not exist exactly as for objects that never did, and never reads any
// of A's data; tenant tokens are 403 on admin and worker routes.
func TestTenantIsolation(t *testing.T) {
	ts := newAuthServer(t)
	h := ts.handler
	f := newTenantFixture(t, h)

	routes := walkRoutes(t)
	sort.Slice(routes, func(i, j int) bool { return routes[i].String() < routes[j].String() })
	for _, rt := range routes {
		class, ok := routeClasses[rt.template]
		if !ok {
			t.Errorf("route %s is not classified (see TestEveryRouteIsClassified)", rt)
			continue
		}
		path := f.pathFor(t, rt.template, "")

		// No token.
		a := do(t, h, rt.method, path, "", "")
		if class == classPublic {
			if a.status == http.StatusUnauthorized || a.status == http.StatusForbidden {
				t.Errorf("%s (public) without a token: %d %s", rt, a.status, a.body)
			}
		} else if a.status != http.StatusUnauthorized || a.code() != "unauthorized" || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s (%s) without a token: %d %q %s, want 401 unauthorized with a Bearer challenge", rt, class, a.status, a.header.Get("WWW-Authenticate"), a.body)
		}
		if class == classPublic {
			continue
		}

		// B's token, on A's ids.
		b := do(t, h, rt.method, path, f.tokenB, "")
		if leaked := f.leaks(path, b.body); len(leaked) > 0 {
			t.Errorf("%s with B's token on A's objects: the answer holds A's %q: %s", rt, leaked, b.body)
		}
		switch {
		case class != classTenant:
			if b.status != http.StatusForbidden || b.code() != "forbidden" {
				t.Errorf("%s (%s) with a tenant token: %d %s, want 403 forbidden", rt, class, b.status, b.body)
			}
		case strings.Contains(rt.template, "{") && rt.method != http.MethodPut:
			// An object of A is, to B, an object that does not exist.
			missing := do(t, h, rt.method, f.pathFor(t, rt.template, "zz"), f.tokenB, "")
			missingBody := strings.ReplaceAll(missing.body, "zz", "")
			if b.status != http.StatusNotFound || b.status != missing.status || b.body != missingBody {
				t.Errorf("%s with B's token on A's objects: %d %s; want 404, the answer for objects that do not exist (%d %s)",
					rt, b.status, b.body, missing.status, missingBody)
			}
		default:
			// Lists, and writes without a body: B's own namespace.
			if b.status == http.StatusUnauthorized || b.status == http.StatusForbidden || b.status == http.StatusNotFound && !strings.Contains(rt.template, "{") {
				t.Errorf("%s with B's token: %d %s", rt, b.status, b.body)
			}
		}

		// A's own token opens exactly the tenant routes.
		own := do(t, h, rt.method, path, f.tokenA, "")
		if class == classTenant && (own.status == http.StatusUnauthorized || own.status == http.StatusForbidden) {
			t.Errorf("%s with A's token on A's objects: %d %s", rt, own.status, own.body)
		}
		if class != classTenant && own.status != http.StatusForbidden {
			t.Errorf("%s (%s) with A's token: %d %s, want 403", rt, class, own.status, own.body)
		}
	}

	// B's lists hold B's items and none of A's.
	for _, list := range []string{"/v1/workflows", "/v1/executions", "/v1/credentials", "/v1/actions"} {
		a := do(t, h, "GET", list, f.tokenB, "")
		if a.status != http.StatusOK || len(f.leaks("", a.body)) > 0 {
			t.Errorf("GET %s with B's token: %d %s", list, a.status, a.body)
		}
	}
	for _, list := range []string{"/v1/workflows", "/v1/credentials"} {
		if a := do(t, h, "GET", list, f.tokenB, ""); !strings.Contains(a.body, "-b\"") {
			t.Errorf("GET %s with B's token does not list B's own item: %s", list, a.body)
		}
	}
}

// TestTokensAndRoles checks each kind of token on each class of route,
// the admin token acting for a tenant, revocation, and webhooks per
// tenant.
func TestTokensAndRoles(t *testing.T) {
	ts := newAuthServer(t)
	h := ts.handler
	f := newTenantFixture(t, h)

	// The admin token acts for the tenant X-Nebula-Tenant names.
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	must(t, h, "GET", "/v1/workflows", testAdminToken, "", 200, &page, tenantHeader, "tenant-a")
	if len(page.Items) != 1 || page.Items[0].ID != f.workflow {
		t.Errorf("admin acting for tenant-a lists %+v", page.Items)
	}
	must(t, h, "GET", "/v1/workflows", testAdminToken, "", 200, &page)
	if len(page.Items) != 0 {
		t.Errorf("admin without %s (tenant default) lists %+v", tenantHeader, page.Items)
	}
	if a := do(t, h, "GET", "/v1/workflows", testAdminToken, "", tenantHeader, "nobody"); a.status != 404 {
		t.Errorf("admin acting for an unknown tenant: %d %s, want 404", a.status, a.body)
	}
	if a := do(t, h, "GET", "/v1/workflows", testAdminToken, "", tenantHeader, "Bad Id"); a.status != 400 {
		t.Errorf("admin acting for a malformed tenant id: %d %s, want 400", a.status, a.body)
	}
	// A tenant token cannot act for another tenant.
	if a := do(t, h, "GET", "/v1/workflows", f.tokenB, "", tenantHeader, "tenant-a"); a.status != 403 || f.leaks("", a.body) != nil {
		t.Errorf("B's token naming tenant-a: %d %s, want 403", a.status, a.body)
	}

	// The worker token serves the worker protocol only.
	for _, tt := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/v1/tasks/claim", testWorkerToken, 200},
		{"POST", "/v1/tasks/claim", testAdminToken, 200},
		{"POST", "/v1/tasks/claim", f.tokenA, 403},
		{"GET", "/v1/workflows", testWorkerToken, 403},
		{"GET", "/v1/tenants", testWorkerToken, 403},
		{"GET", "/v1/tenants", testAdminToken, 200},
		{"GET", "/v1/cluster", testAdminToken, 200},
		{"GET", "/v1/tenants", "not-a-token-of-any-kind", 401},
		{"GET", "/v1/workflows", "nbt_aaaaaaaa_" + strings.Repeat("a", 52), 401},
		{"GET", "/v1/workflows", testAdminToken + "x", 401},
	} {
		body := ""
		if tt.path == "/v1/tasks/claim" {
			body = `{"worker":"w1","max":1}`
		}
		if a := do(t, h, tt.method, tt.path, tt.token, body); a.status != tt.want {
			t.Errorf("%s %s with %.12s…: %d %s, want %d", tt.method, tt.path, tt.token, a.status, a.body, tt.want)
		}
	}
	if a := do(t, h, "GET", "/v1/workflows", "", "", "Authorization", "Basic "+testAdminToken); a.status != 401 {
		t.Errorf("a Basic header: %d, want 401", a.status)
	}

	// Revocation: the second token of A works, then is refused; the first
	// is untouched.
	must(t, h, "GET", "/v1/workflows", f.tokenA2, "", 200, nil)
	must(t, h, "DELETE", "/v1/tenants/tenant-a/tokens/"+f.tokenA2ID, testAdminToken, "", 204, nil)
	if a := do(t, h, "GET", "/v1/workflows", f.tokenA2, ""); a.status != 401 || a.code() != "unauthorized" {
		t.Errorf("a revoked token: %d %s, want 401", a.status, a.body)
	}
	must(t, h, "GET", "/v1/workflows", f.tokenA, "", 200, nil)
	must(t, h, "DELETE", "/v1/tenants/tenant-a/tokens/zzzzzzzz", testAdminToken, "", 404, nil)
	// A token id of A named under B is not found.
	must(t, h, "DELETE", "/v1/tenants/tenant-b/tokens/"+f.tokenA2ID, testAdminToken, "", 404, nil)
	var tokens struct {
		Items []map[string]any `json:"items"`
	}
	must(t, h, "GET", "/v1/tenants/tenant-a/tokens", testAdminToken, "", 200, &tokens)
	if len(tokens.Items) != 2 || tokens.Items[1]["id"] != f.tokenA2ID || tokens.Items[1]["revoked_at"] == nil || tokens.Items[0]["revoked_at"] != nil {
		t.Errorf("A's tokens: %v", tokens.Items)
	}
	raw := do(t, h, "GET", "/v1/tenants/tenant-a/tokens", testAdminToken, "").body
	if strings.Contains(raw, "hash") || strings.Contains(raw, f.tokenA) || strings.Contains(raw, "nbt_") {
		t.Errorf("a token list shows tokens or hashes: %s", raw)
	}

	// The same workflow id in B is B's own: A's is untouched.
	must(t, h, "PUT", "/v1/workflows/"+f.workflow, f.tokenB, `{"nodes":[{"id":"n","action":"builtin.noop"}]}`, 200, nil)
	var wf struct {
		Version int    `json:"version"`
		Name    string `json:"name"`
	}
	must(t, h, "GET", "/v1/workflows/"+f.workflow, f.tokenA, "", 200, &wf)
	if wf.Version != 1 || wf.Name != "Workflow A Name" {
		t.Errorf("A's workflow after B saved one of the same id: %+v", wf)
	}

	// Webhooks: /hooks/{tenant}/{path}.
	if a := do(t, h, "POST", "/hooks/tenant-a/hook-a", "", `{}`); a.status != http.StatusAccepted {
		t.Errorf("A's webhook: %d %s, want 202", a.status, a.body)
	}
	for _, p := range []string{"/hooks/hook-a", "/hooks/tenant-b/hook-a", "/hooks/default/hook-a"} {
		if a := do(t, h, "POST", p, "", `{}`); a.status != http.StatusNotFound {
			t.Errorf("POST %s: %d %s, want 404", p, a.status, a.body)
		}
	}
}

func TestTenantRoutes(t *testing.T) {
	ts := newAuthServer(t)
	h := ts.handler
	var created map[string]any
	must(t, h, "POST", "/v1/tenants", testAdminToken, `{"id":"acme","name":"Acme","quota":{"max_workflows":3,"max_storage_mb":10}}`, 201, &created)
	if created["id"] != "acme" || created["name"] != "Acme" || created["created_at"] == nil {
		t.Errorf("created: %v", created)
	}
	if q, _ := created["quota"].(map[string]any); q["max_workflows"] != 3.0 || q["max_storage_mb"] != 10.0 || q["max_executions_per_hour"] != 0.0 {
		t.Errorf("created quota: %v", created["quota"])
	}
	if tok, _ := created["token"].(string); !strings.HasPrefix(tok, "nbt_") {
		t.Errorf("created token: %v", created["token"])
	}
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"id":"acme"}`, 409},
		{`{"id":"default"}`, 409},
		{`{"id":"Bad!"}`, 400},
		{`{}`, 400},
		{`{"id":"x","quota":{"max_workflows":-1}}`, 400},
		{`{"id":"x","quota":{"max_things":1}}`, 400},
		{`{"id":"x","extra":1}`, 400},
	} {
		if a := do(t, h, "POST", "/v1/tenants", testAdminToken, tt.body); a.status != tt.want {
			t.Errorf("POST /v1/tenants %s: %d %s, want %d", tt.body, a.status, a.body, tt.want)
		}
	}
	var tn map[string]any
	must(t, h, "PUT", "/v1/tenants/acme/quota", testAdminToken, `{"max_concurrent_executions":2}`, 200, &tn)
	if q, _ := tn["quota"].(map[string]any); q["max_concurrent_executions"] != 2.0 || q["max_workflows"] != 0.0 {
		t.Errorf("quota after PUT: %v", tn["quota"])
	}
	must(t, h, "PUT", "/v1/tenants/nobody/quota", testAdminToken, `{}`, 404, nil)
	must(t, h, "PUT", "/v1/tenants/acme/quota", testAdminToken, `{"max_storage_mb":-2}`, 400, nil)
	must(t, h, "GET", "/v1/tenants/acme", testAdminToken, "", 200, &tn)
	if _, has := tn["token"]; has {
		t.Errorf("GET shows a token: %v", tn)
	}
	must(t, h, "GET", "/v1/tenants/nobody", testAdminToken, "", 404, nil)
	must(t, h, "GET", "/v1/tenants/nobody/tokens", testAdminToken, "", 404, nil)
	must(t, h, "POST", "/v1/tenants/nobody/tokens", testAdminToken, "", 404, nil)

	var list struct {
		Items []struct {
			ID        string  `json:"id"`
			CreatedAt *string `json:"created_at"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	must(t, h, "GET", "/v1/tenants?limit=1", testAdminToken, "", 200, &list)
	if len(list.Items) != 1 || list.Items[0].ID != "default" || list.Items[0].CreatedAt != nil || list.NextCursor == "" {
		t.Fatalf("first page: %+v", list)
	}
	must(t, h, "GET", "/v1/tenants?limit=1&cursor="+list.NextCursor, testAdminToken, "", 200, &list)
	if len(list.Items) != 1 || list.Items[0].ID != "acme" || list.NextCursor != "" {
		t.Fatalf("second page: %+v", list)
	}

	// A new tenant's token works at once.
	tok, _ := created["token"].(string)
	must(t, h, "GET", "/v1/workflows", tok, "", 200, nil)
}

// TestAuthOff: without auth every request is tenant default with no
// token, and tenants are not served.
func TestAuthOff(t *testing.T) {
	ts := newTestServer(t)
	h := ts.handler
	must(t, h, "PUT", "/v1/workflows/w", "", `{"nodes":[{"id":"n","action":"builtin.noop"}]}`, 200, nil)
	must(t, h, "GET", "/v1/workflows/w", "some-token-that-is-ignored", "", 200, nil)
	for _, p := range []string{"/v1/tenants", "/v1/tenants/default", "/v1/tenants/default/tokens"} {
		a := do(t, h, "GET", p, "", "")
		if a.status != 404 || !strings.Contains(a.body, "api.auth") {
			t.Errorf("GET %s with auth off: %d %s, want 404 naming api.auth", p, a.status, a.body)
		}
	}
	must(t, h, "GET", "/v1/cluster", "", "", 200, nil)
	must(t, h, "POST", "/v1/tasks/claim", "", `{"worker":"w"}`, 200, nil)
	if a := do(t, h, "POST", "/hooks/default/x", "", `{}`); a.status != 404 || !strings.Contains(a.body, "default/x") {
		t.Errorf("with auth off the whole path is the hook's: %d %s", a.status, a.body)
	}
	if slices.Contains([]int{401, 403}, do(t, h, "GET", "/healthz", "", "").status) {
		t.Error("healthz refused")
	}
}

// FuzzTenantBodies sends fuzzed bodies to the tenant routes that read
// one: never a 500, always JSON, and the error shape when refused.
func FuzzTenantBodies(f *testing.F) {
	for _, seed := range []string{
		`{"id":"acme","name":"Acme","quota":{"max_workflows":3}}`, `{"id":"x","quota":{"max_workflows":-1}}`,
		`{"max_concurrent_executions":2}`, `{"id":"` + strings.Repeat("a", 80) + `"}`, `{"quota":null}`,
		`{"id":1}`, `[]`, `{`, ``, `{"max_storage_mb":1e400}`, `{"id":"a\u0000b"}`,
	} {
		f.Add([]byte(seed))
	}
	ts := newAuthServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, route := range []struct{ method, path string }{{"POST", "/v1/tenants"}, {"PUT", "/v1/tenants/default/quota"}} {
			a := do(t, ts.handler, route.method, route.path, testAdminToken, string(body))
			if a.status >= 500 {
				t.Fatalf("%s %s %q: %d %s", route.method, route.path, body, a.status, a.body)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(a.body), &v); err != nil {
				t.Fatalf("%s %s %q: answer is not JSON: %q", route.method, route.path, body, a.body)
			}
			if a.status >= 400 && !knownErrorCode(a.code()) {
				t.Fatalf("%s %s %q: %d with code %q", route.method, route.path, body, a.status, a.code())
			}
		}
	})
}
