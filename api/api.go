// Package api serves Nebula's HTTP API (CONTRACT §5): JSON over gorilla/mux,
// with one error shape for every failure.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/internal/metrics"
	"github.com/nebula-engine/nebula/storage"
)

const (
	defaultBodyLimit = 4 << 20
	defaultPageSize  = 50
	maxPageSize      = 1000
	maxWait          = 5 * time.Minute
)

// Config configures the API.
type Config struct {
	Service *engine.Service
	// Ready reports whether the node can serve (it has a leader and its
	// state caught up); /readyz answers from it.
	Ready  func() bool
	Logger *slog.Logger
	// BodyLimit caps request bodies; zero picks 4 MiB.
	BodyLimit int64
	// ActionBodyLimit caps the body of POST /v1/actions instead, since it
	// carries a WebAssembly module; zero picks 64 MiB.
	ActionBodyLimit int64
	// Cluster describes the cluster for GET /v1/cluster.
	Cluster func(ctx context.Context) (ClusterView, error)
	// Metrics, if set, records every request and is served at GET
	// /metrics.
	Metrics *metrics.Metrics
	// Auth turns tokens on (api.auth): see auth.go for who may call
	// what. Off, every request acts for the tenant "default".
	Auth bool
	// AdminToken (api.admin_token) manages tenants and the cluster, and
	// acts for any tenant; WorkerToken (api.worker_token), if set, serves
	// the worker protocol only.
	AdminToken, WorkerToken string
}

// ClusterView is the answer of GET /v1/cluster.
type ClusterView struct {
	Leader  string          `json:"leader"`
	Members []ClusterMember `json:"members"`
}

// ClusterMember is one coordinator as GET /v1/cluster shows it.
type ClusterMember struct {
	ID       string `json:"id"`
	APIAddr  string `json:"api_addr"`
	RaftAddr string `json:"raft_addr"`
	Status   string `json:"status"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

type server struct {
	svc     *engine.Service
	cluster func(ctx context.Context) (ClusterView, error)
	ready   func() bool
	logger  *slog.Logger
	limit   int64
	// actionLimit is the body limit of POST /v1/actions.
	actionLimit int64
	// auth: tokens are required; adminHash and workerHash are the
	// SHA-256 of the configured tokens (nil for none).
	auth                  bool
	adminHash, workerHash []byte
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	h, _ := build(cfg)
	return h
}

// build returns the API's handler and the router inside it, whose routes
// the tests walk.
func build(cfg Config) (http.Handler, *mux.Router) {
	s := &server{svc: cfg.Service, cluster: cfg.Cluster, ready: cfg.Ready, logger: cfg.Logger, limit: cfg.BodyLimit, actionLimit: cfg.ActionBodyLimit,
		auth: cfg.Auth, adminHash: tokenHash(cfg.AdminToken), workerHash: tokenHash(cfg.WorkerToken)}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.limit == 0 {
		s.limit = defaultBodyLimit
	}
	if s.actionLimit == 0 {
		s.actionLimit = defaultActionBodyLimit
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	r := mux.NewRouter()
	r.NotFoundHandler = s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Msg: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)}
	})
	r.MethodNotAllowedHandler = s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return &Error{Status: http.StatusMethodNotAllowed, Code: "bad_request", Msg: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)}
	})
	r.Handle("/healthz", s.handle(s.healthz)).Methods(http.MethodGet)
	r.Handle("/readyz", s.handle(s.readyz)).Methods(http.MethodGet)

	r.PathPrefix("/hooks/").Handler(s.handle(s.webhook))

	// Routes sit on the root router rather than a /v1 subrouter: with a
	// subrouter, gorilla/mux answers a wrong method with 404, not 405.
	v1 := func(path string, h http.Handler) *mux.Route { return r.Handle("/v1"+path, h) }
	v1("/workflows", s.handle(s.createWorkflow)).Methods(http.MethodPost)
	v1("/workflows", s.handle(s.listWorkflows)).Methods(http.MethodGet)
	v1("/workflows/{id}", s.handle(s.putWorkflow)).Methods(http.MethodPut)
	v1("/workflows/{id}", s.handle(s.getWorkflow)).Methods(http.MethodGet)
	v1("/workflows/{id}", s.handle(s.deleteWorkflow)).Methods(http.MethodDelete)
	v1("/workflows/{id}/executions", s.handle(s.startExecution)).Methods(http.MethodPost)
	v1("/executions", s.handle(s.listExecutions)).Methods(http.MethodGet)
	v1("/executions/{id}", s.handle(s.getExecution)).Methods(http.MethodGet)
	v1("/executions/{id}/journal", s.handle(s.journal)).Methods(http.MethodGet)
	v1("/executions/{id}/cancel", s.handle(s.cancelExecution)).Methods(http.MethodPost)
	v1("/executions/{id}/events", s.handle(s.events)).Methods(http.MethodGet)
	v1("/tenants", s.handle(s.createTenant)).Methods(http.MethodPost)
	v1("/tenants", s.handle(s.listTenants)).Methods(http.MethodGet)
	v1("/tenants/{id}", s.handle(s.getTenant)).Methods(http.MethodGet)
	v1("/tenants/{id}/quota", s.handle(s.setTenantQuota)).Methods(http.MethodPut)
	v1("/tenants/{id}/tokens", s.handle(s.issueToken)).Methods(http.MethodPost)
	v1("/tenants/{id}/tokens", s.handle(s.listTokens)).Methods(http.MethodGet)
	v1("/tenants/{id}/tokens/{token_id}", s.handle(s.revokeToken)).Methods(http.MethodDelete)
	v1("/cluster", s.handle(s.clusterInfo)).Methods(http.MethodGet)
	v1("/cluster/rotate-key", s.handle(s.rotateKey)).Methods(http.MethodPost)
	v1("/credentials", s.handle(s.putCredential)).Methods(http.MethodPost)
	v1("/credentials", s.handle(s.listCredentials)).Methods(http.MethodGet)
	v1("/credentials/{name}", s.handle(s.deleteCredential)).Methods(http.MethodDelete)
	v1("/actions", s.handleLimit(s.actionLimit, s.registerAction)).Methods(http.MethodPost)
	v1("/actions", s.handle(s.listActions)).Methods(http.MethodGet)
	v1("/actions/{ref}", s.handle(s.getAction)).Methods(http.MethodGet)
	v1("/tasks/claim", s.handle(s.claimTasks)).Methods(http.MethodPost)
	v1("/tasks/actions/{tenant}/{ref}", s.handle(s.taskAction)).Methods(http.MethodGet)
	v1("/tasks/actions/{tenant}/{ref}/module", s.handle(s.taskModule)).Methods(http.MethodGet)
	// Task ids are execution/node/attempt: the id pattern spans slashes.
	v1("/tasks/{id:.+}/complete", s.handle(s.completeTask)).Methods(http.MethodPost)
	v1("/tasks/{id:.+}/fail", s.handle(s.failTask)).Methods(http.MethodPost)
	v1("/tasks/{id:.+}/heartbeat", s.handle(s.heartbeatTask)).Methods(http.MethodPost)
	v1("/tasks/{id:.+}/credentials/{name}", s.handle(s.taskCredential)).Methods(http.MethodGet)
	h := instrument(r, cfg.Metrics)
	// After instrument: its GET /metrics is a route too, and the
	// middleware that names routes for metrics runs first, so refused
	// requests are counted under their route.
	r.Use(s.authenticate)
	return h, r
}

// handle adapts a handler that returns an error, writing the error shape.
// A read asked with ?consistent=true waits first for a read barrier.
func (s *server) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return s.handleLimit(s.limit, h)
}

// handleLimit is handle with a body limit of the route's own.
func (s *server) handleLimit(limit int64, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		err := s.consistent(r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := statusOf(err)
	msg := err.Error()
	var ae *Error
	if status == http.StatusInternalServerError && !errors.As(err, &ae) {
		// An unexpected error may carry internals: logged, not shown.
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	if status == http.StatusRequestEntityTooLarge {
		// The route's own limit, which the reader that hit it knows.
		limit := s.limit
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			limit = mbe.Limit
		}
		msg = fmt.Sprintf("request body exceeds %d bytes", limit)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nebula"`)
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// Workflows hold CEL expressions: "a > 1" reads better than "a \u003e 1".
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// consistent honours ?consistent=true on reads.
func (s *server) consistent(r *http.Request) error {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/") || s.svc == nil {
		return nil // a webhook's query string is its input
	}
	on := false
	if v := r.URL.Query().Get("consistent"); v != "" {
		var err error
		if on, err = strconv.ParseBool(v); err != nil {
			return badRequest("consistent must be true or false, got %q", v)
		}
	}
	if !on {
		return s.svc.LocalRead(r.Context())
	}
	return s.svc.Consistent(r.Context())
}

// readBody reads the whole body, refusing one that is not JSON.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("reading body: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, badRequest("request body is empty")
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, badRequest("malformed JSON body: %v", err)
	}
	return b, nil
}

// tenantOf returns the tenant the request acts for, as authenticate
// resolved it (auth.go). It is "" only for a request authenticate did not
// see, which then finds nothing.
func tenantOf(r *http.Request) string {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c.tenant
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	if !s.ready() {
		return &Error{Status: http.StatusServiceUnavailable, Code: "no_leader", Msg: "not ready: no leader, or state not caught up"}
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) decodeDefinition(r *http.Request) (*engine.Definition, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return engine.ParseDefinition(body)
}

func (s *server) putWorkflow(w http.ResponseWriter, r *http.Request) error {
	def, err := s.decodeDefinition(r)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	if def.ID != "" && def.ID != id {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_workflow", Msg: fmt.Sprintf("body id %q does not match path id %q", def.ID, id)}
	}
	def.ID = id
	wf, err := s.svc.PutWorkflow(r.Context(), tenantOf(r), def)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewWorkflow(wf))
}

func (s *server) createWorkflow(w http.ResponseWriter, r *http.Request) error {
	def, err := s.decodeDefinition(r)
	if err != nil {
		return err
	}
	wf, err := s.svc.PutWorkflow(r.Context(), tenantOf(r), def)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, viewWorkflow(wf))
}

func (s *server) getWorkflow(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	wf, err := s.svc.GetWorkflow(r.Context(), tenantOf(r), id)
	if err != nil {
		return err // the store names the workflow
	}
	return writeJSON(w, http.StatusOK, viewWorkflow(wf))
}

func (s *server) listWorkflows(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	wfs, next, err := s.svc.ListWorkflows(r.Context(), tenantOf(r), page)
	if err != nil {
		return err
	}
	items := make([]any, len(wfs))
	for i, wf := range wfs {
		items[i] = viewWorkflow(wf)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (s *server) deleteWorkflow(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := s.svc.DeleteWorkflow(r.Context(), tenantOf(r), id); err != nil {
		return err // the store names the workflow
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) startExecution(w http.ResponseWriter, r *http.Request) error {
	wait, err := waitOf(r)
	if err != nil {
		return err
	}
	var body struct {
		Input          json.RawMessage `json:"input"`
		IdempotencyKey string          `json:"idempotency_key"`
	}
	if raw, err := io.ReadAll(r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("reading body: %v", err)
	} else if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return badRequest("malformed JSON body: %v", err)
		}
		if dec.More() {
			return badRequest("malformed JSON body: data after the object")
		}
	}
	if len(body.IdempotencyKey) > 256 {
		return badRequest("idempotency_key longer than 256 bytes")
	}
	if t := bytes.TrimSpace(body.Input); len(t) > 0 && t[0] != '{' && !bytes.Equal(t, []byte("null")) {
		return badRequest("input must be a JSON object")
	}
	e, created, err := s.svc.StartExecution(r.Context(), engine.StartRequest{
		Tenant:         tenantOf(r),
		WorkflowID:     mux.Vars(r)["id"],
		Input:          body.Input,
		IdempotencyKey: body.IdempotencyKey,
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	if wait > 0 {
		status = http.StatusOK
		if e, err = s.svc.Await(r.Context(), e, wait); err != nil {
			return err
		}
	}
	return writeJSON(w, status, viewExecution(e))
}

func (s *server) getExecution(w http.ResponseWriter, r *http.Request) error {
	wait, err := waitOf(r)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	var e *storage.Execution
	if wait > 0 {
		e, err = s.svc.WaitExecution(r.Context(), tenantOf(r), id, wait)
	} else {
		e, err = s.svc.GetExecution(r.Context(), tenantOf(r), id)
	}
	if err != nil {
		return err // the store names the execution
	}
	return writeJSON(w, http.StatusOK, viewExecution(e))
}

func (s *server) cancelExecution(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	e, err := s.svc.CancelExecution(r.Context(), tenantOf(r), id)
	if err != nil {
		return err // the store names the execution
	}
	return writeJSON(w, http.StatusOK, viewExecution(e))
}

func (s *server) listExecutions(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := storage.ExecutionFilter{WorkflowID: q.Get("workflow"), Status: q.Get("status")}
	if f.Status != "" && !validStatus(engine.ExecutionStatus(f.Status)) {
		return badRequest("unknown status %q", f.Status)
	}
	execs, next, err := s.svc.ListExecutions(r.Context(), tenantOf(r), f, page)
	if err != nil {
		return err
	}
	items := make([]any, len(execs))
	for i, e := range execs {
		items[i] = viewExecution(e)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (s *server) journal(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	entries, err := s.svc.Journal(r.Context(), tenantOf(r), id)
	if err != nil {
		return err // the store names the execution
	}
	items := make([]any, len(entries))
	for i, e := range entries {
		items[i] = viewEntry(e)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *server) clusterInfo(w http.ResponseWriter, r *http.Request) error {
	if s.cluster == nil {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Msg: "this node has no cluster"}
	}
	v, err := s.cluster(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// pageOf reads ?limit= and ?cursor=.
func pageOf(r *http.Request) (storage.Page, error) {
	q := r.URL.Query()
	p := storage.Page{Cursor: q.Get("cursor"), Limit: defaultPageSize}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, badRequest("limit must be an integer from 1 to %d, got %q", maxPageSize, v)
		}
		p.Limit = n
	}
	return p, nil
}

// waitOf reads ?wait= as a duration ("30s"); absent is 0.
func waitOf(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxWait {
		return 0, badRequest("wait must be a duration from 0s to %s, got %q", maxWait, v)
	}
	return d, nil
}

func validStatus(s engine.ExecutionStatus) bool {
	switch s {
	case engine.StatusPending, engine.StatusRunning, engine.StatusSucceeded,
		engine.StatusFailed, engine.StatusCancelled, engine.StatusTimedOut:
		return true
	}
	return false
}
