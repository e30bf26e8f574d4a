package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nebula-engine/nebula/internal/metrics"
)

func TestMetricsRecordRouteTemplates(t *testing.T) {
	srv := httptest.NewServer(New(Config{Metrics: metrics.New()}))
	defer srv.Close()

	send := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(http.MethodGet, "/healthz")
	// An empty body is refused before the service is reached.
	send(http.MethodPut, "/v1/workflows/one")
	send(http.MethodPut, "/v1/workflows/two")
	send(http.MethodGet, "/no/such/path")
	send(http.MethodPost, "/healthz")

	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, b)
	}
	out := string(b)
	for _, want := range []string{
		`nebula_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		// Both ids land in one series: the template, not the path.
		`nebula_http_requests_total{code="400",method="PUT",route="/v1/workflows/{id}"} 2`,
		`nebula_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`nebula_http_requests_total{code="405",method="POST",route="unmatched"} 1`,
		`nebula_http_request_duration_seconds_count{method="GET",route="/healthz"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "/v1/workflows/one") {
		t.Errorf("a raw path became a label:\n%s", out)
	}
}

func TestStatusRecorderFlushes(t *testing.T) {
	inner := httptest.NewRecorder()
	rec := &statusRecorder{ResponseWriter: inner}
	var w http.ResponseWriter = rec
	f, ok := w.(http.Flusher)
	if !ok {
		t.Fatal("statusRecorder is not an http.Flusher")
	}
	f.Flush()
	if !inner.Flushed {
		t.Error("Flush did not reach the underlying writer")
	}
	if rec.code != http.StatusOK {
		t.Errorf("code %d after a flush, want 200", rec.code)
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Errorf("ResponseController.Flush: %v", err)
	}
}
