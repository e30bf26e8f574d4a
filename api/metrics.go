package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/internal/metrics"
)

// instrument serves GET /metrics from r and records every request r
// serves, labelled by its route template; without m it returns r as is.
//
// The recorder wraps the whole router, so that requests no route takes
// (404, 405, path-cleaning redirects) are counted too, as "unmatched". A
// router middleware, which runs only once a route matched, then names the
// route on the same recorder: mux passes the writer through unchanged.
func instrument(r *mux.Router, m *metrics.Metrics) http.Handler {
	if m == nil {
		return r
	}
	r.Handle("/metrics", m.Handler()).Methods(http.MethodGet)
	r.Use(nameRoute)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, route: metrics.Unmatched}
		r.ServeHTTP(rec, req)
		code := rec.code
		if code == 0 {
			// Nothing written: net/http answers 200.
			code = http.StatusOK
		}
		m.HTTPRequest(req.Method, rec.route, code, time.Since(start))
	})
}

// nameRoute records the template of the matched route (not the raw path,
// whose ids would make a series per execution).
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if rec, ok := w.(*statusRecorder); ok {
			if route := mux.CurrentRoute(req); route != nil {
				if tpl, err := route.GetPathTemplate(); err == nil {
					rec.route = tpl
				}
			}
		}
		next.ServeHTTP(w, req)
	})
}

// statusRecorder remembers the status code of a response. It forwards
// Flush, which the event stream needs, and unwraps for
// http.ResponseController. One thing does not pass through: the server's
// own hook that makes http.MaxBytesReader close the connection after an
// oversized body; the server still drains or closes it after the reply.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	route string
}

func (w *statusRecorder) WriteHeader(code int) {
	// 1xx answers are interim; the final status comes later.
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
