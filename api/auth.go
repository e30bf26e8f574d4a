package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/tenant"
)

// Who may call what. Every route belongs to one class, by its path
// template in routeClasses; a route missing there answers 500 to everyone
// (it fails closed), and the route walk in auth_test.go names it.
//
// With auth off (the desktop preset) every request acts for the tenant
// "default" and needs no token; the tenants routes answer 404, since
// there is no token to hand a new tenant's callers.
//
// With auth on, requests carry "Authorization: Bearer TOKEN", one of:
//   - the admin token (api.admin_token): every ADMIN and WORKER route, and
//     every TENANT route acting for the tenant named by the header
//     X-Nebula-Tenant ("default" when absent);
//   - the worker token (api.worker_token): WORKER routes only;
//   - a tenant token (nbt_...): TENANT routes, for its own tenant only.
//
// No token or a bad one is 401; a good token on a route of another class
// is 403. A tenant token never learns whether another tenant's object
// exists: TENANT routes are scoped by the tenant in every query, so those
// objects are simply not found (404).
type routeClass uint8

const (
	// classPublic: no token, ever (health, metrics, webhooks).
	classPublic routeClass = iota + 1
	// classAdmin: the admin token (tenants, the cluster).
	classAdmin
	// classWorker: the worker protocol; the worker or the admin token.
	classWorker
	// classTenant: a tenant's own objects.
	classTenant
)

func (c routeClass) String() string {
	switch c {
	case classPublic:
		return "public"
	case classAdmin:
		return "admin"
	case classWorker:
		return "worker"
	case classTenant:
		return "tenant"
	}
	return "unclassified"
}

// routeClasses classifies every route by its path template, as the router
// reports it (mux.Route.GetPathTemplate).
var routeClasses = map[string]routeClass{
	"/healthz": classPublic,
	"/readyz":  classPublic,
	"/metrics": classPublic,
	// Webhooks are called by other systems that hold no token; with auth
	// on, the tenant is the first segment of the path.
	"/hooks/": classPublic,

	"/v1/tenants":                             classAdmin,
	"/v1/tenants/{id}":                        classAdmin,
	"/v1/tenants/{id}/quota":                  classAdmin,
	"/v1/tenants/{id}/tokens":                 classAdmin,
	"/v1/tenants/{id}/tokens/{token_id}":      classAdmin,
	"/v1/cluster":                             classAdmin,
	"/v1/cluster/rotate-key":                  classAdmin,
	"/v1/tasks/claim":                         classWorker,
	"/v1/tasks/actions/{tenant}/{ref}":        classWorker,
	"/v1/tasks/actions/{tenant}/{ref}/module": classWorker,
	"/v1/tasks/{id:.+}/complete":              classWorker,
	"/v1/tasks/{id:.+}/fail":                  classWorker,
	"/v1/tasks/{id:.+}/heartbeat":             classWorker,
	"/v1/tasks/{id:.+}/credentials/{name}":    classWorker,

	"/v1/workflows":                 classTenant,
	"/v1/workflows/{id}":            classTenant,
	"/v1/workflows/{id}/executions": classTenant,
	"/v1/executions":                classTenant,
	"/v1/executions/{id}":           classTenant,
	"/v1/executions/{id}/journal":   classTenant,
	"/v1/executions/{id}/cancel":    classTenant,
	"/v1/executions/{id}/events":    classTenant,
	"/v1/credentials":               classTenant,
	"/v1/credentials/{name}":        classTenant,
	"/v1/actions":                   classTenant,
	"/v1/actions/{ref}":             classTenant,
}

// tenantHeader names the tenant the admin token acts for on TENANT routes.
const tenantHeader = "X-Nebula-Tenant"

// role is what a request's token made it.
type role uint8

const (
	// roleAnyone: auth is off, or a public route.
	roleAnyone role = iota
	roleAdmin
	roleWorker
	roleTenant
)

// caller is who a request acts as, resolved once by authenticate.
type caller struct {
	tenant string
	role   role
}

type callerKey struct{}

// hookTenant splits a webhook's path (after /hooks/) into its tenant and
// the trigger's path: with auth on the first segment is the tenant, since
// a webhook's callers carry no token; with auth off it is all path, for
// the tenant "default".
func (s *server) hookTenant(p string) (tenantID, path string) {
	if !s.auth {
		return tenant.Default, p
	}
	tenantID, path, _ = strings.Cut(p, "/")
	return tenantID, path
}

// authenticate resolves the caller of every routed request, and refuses
// it when its token does not open the route.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.resolve(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

func (s *server) resolve(r *http.Request) (caller, error) {
	tpl := ""
	if route := mux.CurrentRoute(r); route != nil {
		tpl, _ = route.GetPathTemplate()
	}
	class, ok := routeClasses[tpl]
	if !ok {
		return caller{}, &Error{Status: http.StatusInternalServerError, Code: "internal",
			Msg: fmt.Sprintf("route %s has no access class", tpl)}
	}
	if class == classPublic {
		c := caller{tenant: tenant.Default}
		if tpl == "/hooks/" {
			c.tenant, _ = s.hookTenant(strings.TrimPrefix(r.URL.Path, "/hooks/"))
		}
		return c, nil
	}
	if !s.auth {
		if strings.HasPrefix(tpl, "/v1/tenants") {
			return caller{}, &Error{Status: http.StatusNotFound, Code: "not_found", Msg: "tenants need auth (api.auth = true)"}
		}
		return caller{tenant: tenant.Default}, nil
	}

	token, err := bearer(r)
	if err != nil {
		return caller{}, err
	}
	switch {
	case s.adminHash != nil && sameToken(token, s.adminHash):
		if class != classTenant {
			return caller{role: roleAdmin}, nil
		}
		return s.actAs(r)
	case s.workerHash != nil && sameToken(token, s.workerHash):
		if class != classWorker {
			return caller{}, forbidden("the worker token serves the worker protocol (/v1/tasks) only")
		}
		return caller{role: roleWorker}, nil
	}
	// Anything else must be a tenant token; it is checked before the
	// class, so that a bad token is 401 on every route.
	tenantID, _, err := s.svc.Authenticate(r.Context(), token)
	if err != nil {
		return caller{}, err
	}
	if class != classTenant {
		return caller{}, forbidden("a tenant token cannot use %s routes", class)
	}
	if h := r.Header.Get(tenantHeader); h != "" && h != tenantID {
		return caller{}, forbidden("a tenant token acts for its own tenant only (drop %s)", tenantHeader)
	}
	return caller{tenant: tenantID, role: roleTenant}, nil
}

// actAs resolves the tenant the admin token acts for on a TENANT route:
// the one X-Nebula-Tenant names, which must exist.
func (s *server) actAs(r *http.Request) (caller, error) {
	id := r.Header.Get(tenantHeader)
	if id == "" {
		id = tenant.Default
	}
	if err := tenant.ValidateID(id); err != nil {
		return caller{}, badRequest("%s: %v", tenantHeader, err)
	}
	if _, err := s.svc.GetTenant(r.Context(), id); err != nil {
		return caller{}, err // not found, named by the store
	}
	return caller{tenant: id, role: roleAdmin}, nil
}

// bearer returns the token of "Authorization: Bearer TOKEN".
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", fmt.Errorf("%w: no token (send Authorization: Bearer TOKEN)", engine.ErrUnauthorized)
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", fmt.Errorf("%w: the Authorization header must be \"Bearer TOKEN\"", engine.ErrUnauthorized)
	}
	return token, nil
}

// tokenHash returns the SHA-256 of a configured token, or nil for none.
func tokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// sameToken compares a presented token with a configured one in constant
// time. Comparing their hashes keeps the configured token's length out of
// the timing too.
func sameToken(token string, want []byte) bool {
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

func forbidden(format string, args ...any) error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Msg: fmt.Sprintf(format, args...)}
}
