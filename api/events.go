package api

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/engine"
)

// events streams an execution's journal as Server-Sent Events: every entry
// so far, then each new one as it is applied, and the stream ends once the
// execution is terminal. Each event's id is the entry's seq, so a client
// that reconnects with Last-Event-ID resumes where it stopped.
func (s *server) events(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	tenant := tenantOf(r)
	flusher, ok := w.(http.Flusher)
	if !ok {
		return fmt.Errorf("streaming unsupported by the connection")
	}
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("Last-Event-ID must be a journal sequence number, got %q", v)
		}
		after = n
	}
	// Subscribe before the first read, so no change falls in between.
	changed, stop := s.svc.Watch(id)
	defer stop()
	if _, err := s.svc.GetExecution(r.Context(), tenant, id); err != nil {
		return err // the store names the execution
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		// The status is read before the entries: when it says terminal,
		// the entries read next include the last one.
		e, err := s.svc.GetExecution(r.Context(), tenant, id)
		if err != nil {
			return nil // headers are sent; the client sees the stream end
		}
		entries, err := s.svc.JournalAfter(r.Context(), tenant, id, after)
		if err != nil {
			return nil
		}
		for _, en := range entries {
			data, _ := json.Marshal(viewEntry(en))
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", en.Seq, en.Type, data)
			after = en.Seq
		}
		flusher.Flush()
		if engine.ExecutionStatus(e.Status).Terminal() {
			return nil
		}
		select {
		case <-changed:
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case <-r.Context().Done():
			return nil
		}
	}
}

// jitter draws the proposer-side randomness of a retry backoff.
func jitter() uint32 { return rand.Uint32() }
