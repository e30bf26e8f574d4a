package main

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeMetrics returns the samples of GET /metrics by series (name and
// labels as printed).
func scrapeMetrics(t *testing.T, p *proc) map[string]float64 {
	t.Helper()
	resp, err := httpClient.Get(p.url + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, clip(b))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// Label values here hold no spaces, so the value follows the
		// last one.
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

func TestMetricsOfADesktopNode(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	// builtin.log runs on a worker, so its attempt is timed.
	p.mustCall("PUT", "/v1/workflows/hello", `{
  "id": "hello",
  "nodes": [{"id": "say", "action": "builtin.log", "params": {"message": "hello {{ input.name }}"}}]
}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/hello/executions?wait=20s", `{"input": {"name": "Ada"}}`, 200, &e)
	if e.Status != "succeeded" {
		t.Fatalf("execution %s: status %q, want succeeded", e.ID, e.Status)
	}

	checks := []struct {
		series string
		min    float64
	}{
		{"nebula_executions_started_total", 1},
		{`nebula_executions_finished_total{status="succeeded"}`, 1},
		{`nebula_node_attempt_duration_seconds_count{action="builtin.log",outcome="succeeded"}`, 1},
		{"nebula_raft_term", 1},
		{"nebula_raft_state", 2}, // a group of one leads
		{"nebula_raft_applied_index", 1},
		{"nebula_raft_leader_changes_total", 1},
		{"nebula_raft_apply_duration_seconds_count", 1},
		{"nebula_queue_ready_tasks", 0},
		{"nebula_executions_pending", 0},
		// Recorded once the response is written, so a fast client may
		// scrape before it: polled below.
		{`nebula_http_requests_total{code="200",method="POST",route="/v1/workflows/{id}/executions"}`, 1},
		{`nebula_http_requests_total{code="200",method="PUT",route="/v1/workflows/{id}"}`, 1},
	}
	var samples map[string]float64
	var missing []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		samples, missing = scrapeMetrics(t, p), nil
		for _, c := range checks {
			if v, ok := samples[c.series]; !ok || v < c.min {
				missing = append(missing, c.series)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range missing {
		v, ok := samples[s]
		t.Errorf("%s = %v (present: %v)", s, v, ok)
	}
	for s := range samples {
		// Raw paths carry ids: they must never become labels.
		if strings.Contains(s, "/v1/workflows/hello") {
			t.Errorf("raw path in series %s", s)
		}
	}
}
