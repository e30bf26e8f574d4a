package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/nebula-engine/nebula/engine"
)

// webhook starts the workflow whose webhook trigger has the request's path
// (after /hooks/, and with auth on after the tenant's segment:
// /hooks/{tenant}/{path}), any method. The input is {"method","headers","query",
// "body"}; the body is parsed when it is JSON, else passed as text. The
// answer is the execution's output when it succeeds within the trigger's
// wait, 202 with its id when it is still running, or the error shape
// (500 execution_failed, naming the execution and its error) when it ended
// otherwise.
func (s *server) webhook(w http.ResponseWriter, r *http.Request) error {
	_, path := s.hookTenant(strings.TrimPrefix(r.URL.Path, "/hooks/"))
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("reading body: %v", err)
	}
	var body any
	if len(bytes.TrimSpace(raw)) > 0 {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch {
		case ct == "application/json" || strings.HasSuffix(ct, "+json"):
			if err := json.Unmarshal(raw, &body); err != nil {
				return badRequest("malformed JSON body: %v", err)
			}
		case utf8.Valid(raw):
			body = string(raw)
		default:
			return badRequest("body is neither JSON nor UTF-8 text")
		}
	}
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		if k == "Authorization" || k == "Cookie" {
			continue // secrets stay out of the journal
		}
		headers[k] = strings.Join(v, ", ")
	}
	query := make(map[string]string, len(r.URL.Query()))
	for k, v := range r.URL.Query() {
		query[k] = strings.Join(v, ",")
	}
	input, err := json.Marshal(map[string]any{"method": r.Method, "headers": headers, "query": query, "body": body})
	if err != nil {
		return badRequest("request cannot be turned into JSON: %v", err)
	}
	e, err := s.svc.Webhook(r.Context(), tenantOf(r), path, input)
	if err != nil {
		return err
	}
	w.Header().Set("X-Nebula-Execution", e.ID)
	switch engine.ExecutionStatus(e.Status) {
	case engine.StatusSucceeded:
		return writeJSON(w, http.StatusOK, rawOrNull(e.Output))
	case engine.StatusFailed, engine.StatusCancelled, engine.StatusTimedOut:
		return &Error{Status: http.StatusInternalServerError, Code: "execution_failed",
			Msg: fmt.Sprintf("execution %s %s: %s", e.ID, e.Status, e.Error)}
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"execution_id": e.ID})
}
