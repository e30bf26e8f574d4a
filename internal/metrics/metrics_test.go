package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape returns what the handler serves.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerShowsRecordedMetrics(t *testing.T) {
	m := New()
	m.ExecutionStarted()
	m.ExecutionStarted()
	m.ExecutionFinished("succeeded")
	m.ExecutionFinished("failed")
	m.ExecutionFinished("succeeded")
	m.AttemptFinished("builtin.http", OutcomeFailed, 30*time.Millisecond)
	m.HTTPRequest(http.MethodPost, "/v1/workflows/{id}/executions", http.StatusCreated, 5*time.Millisecond)
	m.HTTPRequest("BREW", Unmatched, http.StatusNotFound, time.Millisecond)
	m.LeaderChanged()
	m.ObserveApply(200*time.Microsecond, 3)
	depth := 7.0
	m.Watch("nebula_queue_ready_tasks", "Ready tasks.", func() float64 { return depth })

	out := scrape(t, m)
	for _, want := range []string{
		"nebula_executions_started_total 2\n",
		`nebula_executions_finished_total{status="succeeded"} 2` + "\n",
		`nebula_executions_finished_total{status="failed"} 1` + "\n",
		`nebula_node_attempt_duration_seconds_count{action="builtin.http",outcome="failed"} 1` + "\n",
		`nebula_node_attempt_duration_seconds_bucket{action="builtin.http",outcome="failed",le="0.05"} 1` + "\n",
		`nebula_node_attempt_duration_seconds_bucket{action="builtin.http",outcome="failed",le="0.025"} 0` + "\n",
		`nebula_http_requests_total{code="201",method="POST",route="/v1/workflows/{id}/executions"} 1` + "\n",
		// A method the client made up does not become a label value.
		`nebula_http_requests_total{code="404",method="other",route="unmatched"} 1` + "\n",
		`nebula_http_request_duration_seconds_count{method="POST",route="/v1/workflows/{id}/executions"} 1` + "\n",
		"nebula_raft_leader_changes_total 1\n",
		"nebula_raft_apply_duration_seconds_count 1\n",
		"nebula_raft_applied_entries_total 3\n",
		"nebula_queue_ready_tasks 7\n",
		"# TYPE nebula_queue_ready_tasks gauge\n",
		"go_goroutines ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	// Gauges are read at each scrape, not when registered.
	depth = 3
	if out := scrape(t, m); !strings.Contains(out, "nebula_queue_ready_tasks 3\n") {
		t.Errorf("gauge not re-read:\n%s", out)
	}
}

func TestInstancesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.ExecutionStarted()
	// The same gauge name in two instances must not collide, as it would
	// in a shared registry.
	a.Watch("nebula_raft_term", "Term.", func() float64 { return 1 })
	b.Watch("nebula_raft_term", "Term.", func() float64 { return 2 })
	if out := scrape(t, b); !strings.Contains(out, "nebula_executions_started_total 0\n") || !strings.Contains(out, "nebula_raft_term 2\n") {
		t.Errorf("b shows a's state:\n%s", out)
	}
}
