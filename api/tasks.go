package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage"
)

// The worker protocol: remote workers claim tasks (a long poll), run them,
// and report each result or heartbeat with the lease token they were
// given. A stale token is 409 conflict: the attempt was reclaimed.

const (
	maxClaimBatch   = 256
	maxClaimWait    = time.Minute
	defaultLeaseTTL = 30 * time.Second
	maxLeaseTTL     = time.Hour
	// workerHolderPrefix keeps remote workers' lease holders apart from
	// coordinators' local workers ("<node>/<run>").
	workerHolderPrefix = "worker:"
)

type taskView struct {
	ID           string          `json:"id"`
	Tenant       string          `json:"tenant"`
	ExecutionID  string          `json:"execution_id"`
	Node         string          `json:"node"`
	Attempt      int             `json:"attempt"`
	Action       string          `json:"action"`
	Params       json.RawMessage `json:"params"`
	Timeout      string          `json:"timeout,omitempty"`
	LeaseToken   uint64          `json:"lease_token"`
	LeaseExpires string          `json:"lease_expires"`
}

func viewTask(t *storage.Task) taskView {
	v := taskView{
		ID: t.ID, Tenant: t.TenantID, ExecutionID: t.ExecutionID, Node: t.Node, Attempt: t.Attempt, Action: t.Action,
		Params: rawOrNull(t.Params), LeaseToken: t.LeaseToken, LeaseExpires: stamp(t.LeaseExpires),
	}
	if t.Timeout > 0 {
		v.Timeout = t.Timeout.String()
	}
	return v
}

// decodeStrict decodes a JSON object body into v, refusing unknown fields
// and trailing data.
func decodeStrict(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("reading body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return badRequest("request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed JSON body: data after the object")
	}
	return nil
}

// durationField parses an optional duration field within [0, limit].
func durationField(name, v string, def, limit time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > limit {
		return 0, badRequest("%s must be a duration from 0s to %s, got %q", name, limit, v)
	}
	return d, nil
}

func (s *server) claimTasks(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Worker   string `json:"worker"`
		Max      int    `json:"max"`
		Wait     string `json:"wait"`
		LeaseTTL string `json:"lease_ttl"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	if body.Worker == "" || len(body.Worker) > 128 {
		return badRequest("worker must be a name of 1 to 128 bytes")
	}
	if body.Max == 0 {
		body.Max = 1
	}
	if body.Max < 1 || body.Max > maxClaimBatch {
		return badRequest("max must be from 1 to %d, got %d", maxClaimBatch, body.Max)
	}
	wait, err := durationField("wait", body.Wait, 0, maxClaimWait)
	if err != nil {
		return err
	}
	ttl, err := durationField("lease_ttl", body.LeaseTTL, defaultLeaseTTL, maxLeaseTTL)
	if err != nil {
		return err
	}
	if ttl < time.Second {
		return badRequest("lease_ttl must be at least 1s")
	}
	tasks, err := s.svc.ClaimTasks(r.Context(), workerHolderPrefix+body.Worker, body.Max, ttl, wait)
	if err != nil {
		return err
	}
	items := make([]taskView, len(tasks))
	for i, t := range tasks {
		items[i] = viewTask(t)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tasks": items})
}

func (s *server) completeTask(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Token  uint64          `json:"token"`
		Output json.RawMessage `json:"output"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	if body.Token == 0 {
		return badRequest("token is required")
	}
	out := body.Output
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	return s.report(w, r, &engine.CompleteTask{TaskID: mux.Vars(r)["id"], Token: body.Token, Output: out})
}

func (s *server) failTask(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Token     uint64 `json:"token"`
		Error     string `json:"error"`
		Retryable bool   `json:"retryable"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	if body.Token == 0 {
		return badRequest("token is required")
	}
	if body.Error == "" {
		return badRequest("error is required")
	}
	if len(body.Error) > 64<<10 {
		// Cut, then drop a character the cut may have split.
		body.Error = strings.ToValidUTF8(body.Error[:64<<10], "")
	}
	return s.report(w, r, &engine.CompleteTask{
		TaskID: mux.Vars(r)["id"], Token: body.Token, Error: body.Error,
		Retryable: body.Retryable, Jitter: jitter(),
	})
}

func (s *server) report(w http.ResponseWriter, r *http.Request, c *engine.CompleteTask) error {
	err := s.svc.CompleteTask(r.Context(), c)
	if errors.Is(err, engine.ErrStaleLease) {
		return &Error{Status: http.StatusConflict, Code: "conflict", Msg: fmt.Sprintf("task %q: the lease token no longer holds it (reclaimed, or its execution ended)", c.TaskID)}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]bool{"accepted": true})
}

func (s *server) heartbeatTask(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Token    uint64 `json:"token"`
		LeaseTTL string `json:"lease_ttl"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	if body.Token == 0 {
		return badRequest("token is required")
	}
	ttl, err := durationField("lease_ttl", body.LeaseTTL, defaultLeaseTTL, maxLeaseTTL)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	err = s.svc.RenewLease(r.Context(), id, body.Token, ttl)
	if errors.Is(err, engine.ErrStaleLease) {
		return &Error{Status: http.StatusConflict, Code: "conflict", Msg: fmt.Sprintf("task %q: the lease token no longer holds it", id)}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]bool{"accepted": true})
}

// taskAction is the manifest of a registered action for a remote worker
// that runs it; the worker fetches the module when it does not have it.
func (s *server) taskAction(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	a, err := s.svc.GetAction(r.Context(), v["tenant"], v["ref"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewAction(a))
}

// taskModule is the module of a registered action, as bytes.
func (s *server) taskModule(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	_, module, err := s.svc.ActionModule(r.Context(), v["tenant"], v["ref"])
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/wasm")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(module)
	return err
}

// taskCredential hands a remote worker the credential an attempt it holds
// needs (builtin.http with "credential"): only with the task's lease
// token, only from the task's tenant. The answer carries the secret in
// clear: workers should reach servers over TLS or a private network.
func (s *server) taskCredential(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	token, err := strconv.ParseUint(r.URL.Query().Get("token"), 10, 64)
	if err != nil || token == 0 {
		return badRequest("token must be the task's lease token")
	}
	typ, data, err := s.svc.TaskCredential(r.Context(), v["id"], token, v["name"])
	if errors.Is(err, engine.ErrStaleLease) {
		return &Error{Status: http.StatusConflict, Code: "conflict", Msg: fmt.Sprintf("task %q: the lease token no longer holds it", v["id"])}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, map[string]any{"type": typ, "data": data})
}
