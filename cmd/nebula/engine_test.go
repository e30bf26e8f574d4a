package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// journalTimes returns, per attempt, when it started and when it finished.
func attemptTimes(t *testing.T, p *proc, id, node string) (started, finished map[int]time.Time) {
	t.Helper()
	var j struct {
		Items []struct {
			journalEntry
			At time.Time `json:"at"`
		}
	}
	p.mustCall("GET", "/v1/executions/"+id+"/journal", "", 200, &j)
	started, finished = map[int]time.Time{}, map[int]time.Time{}
	for _, it := range j.Items {
		if it.Node != node {
			continue
		}
		switch it.Type {
		case "node_attempt_started":
			started[it.Attempt] = it.At
		case "node_attempt_finished":
			finished[it.Attempt] = it.At
		}
	}
	return started, finished
}

func TestRetryWithBackoff(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/flaky", `{"nodes":[{"id":"f","action":"builtin.fail","params":{"times":2},
	  "retry":{"max_attempts":3,"backoff":"200ms","max_backoff":"10s"}}]}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/flaky/executions?wait=20s", `{}`, 200, &e)
	if e.Status != "succeeded" || string(e.Output) != `{"attempt":3}` {
		t.Fatalf("status %s output %s (error %v), want succeeded {\"attempt\":3}", e.Status, e.Output, e.Error)
	}
	started, finished := attemptTimes(t, p, e.ID, "f")
	if len(started) != 3 || len(finished) != 3 {
		t.Fatalf("journal has %d started and %d finished attempts, want 3 and 3", len(started), len(finished))
	}
	// The gap before attempt k+1 is the backoff 200ms doubled k-1 times,
	// plus at most 20% jitter.
	for k, base := range map[int]time.Duration{1: 200 * time.Millisecond, 2: 400 * time.Millisecond} {
		gap := started[k+1].Sub(finished[k])
		if gap < base || gap > base*12/10+time.Second {
			t.Errorf("gap after attempt %d = %s, want about %s", k, gap, base)
		}
	}
}

func TestWorkflowTimeoutAndCancel(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/sleepy", `{"timeout":"1s","nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"30s"}}]}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/sleepy/executions?wait=20s", `{}`, 200, &e)
	if e.Status != "timed_out" || e.nodeStatus(t, "wait") != "cancelled" {
		t.Fatalf("past the workflow timeout: %s, node %s", e.Status, e.nodeStatus(t, "wait"))
	}

	p.mustCall("PUT", "/v1/workflows/long", `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"30s"}}]}`, 200, nil)
	p.mustCall("POST", "/v1/workflows/long/executions", `{}`, 201, &e)
	var c execution
	p.mustCall("POST", "/v1/executions/"+e.ID+"/cancel", "", 200, &c)
	if c.Status != "cancelled" {
		t.Fatalf("cancel answered %s, want cancelled", c.Status)
	}
	var j struct{ Items []journalEntry }
	p.mustCall("GET", "/v1/executions/"+e.ID+"/journal", "", 200, &j)
	n := len(j.Items)
	if n < 2 || j.Items[n-2].Type != "cancellation_requested" || j.Items[n-1].Type != "execution_cancelled" {
		t.Fatalf("journal ends %v", j.Items)
	}
	// Cancelling again is harmless; a missing execution is 404.
	p.mustCall("POST", "/v1/executions/"+e.ID+"/cancel", "", 200, &c)
	p.mustCall("POST", "/v1/executions/nope/cancel", "", 404, nil)
}

// TestDelaysSurviveKill9 parks executions in durable timers, kills the
// process, and checks they all finish after a restart, each timer once.
func TestDelaysSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.mustCall("PUT", "/v1/workflows/park", `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"2s"}},
	  {"id":"after","action":"builtin.set","params":{"value":"{{ input.i }}"}}],"connections":[{"from":"wait","to":"after"}]}`, 200, nil)
	const n = 100
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e execution
			p.mustCall("POST", "/v1/workflows/park/executions", fmt.Sprintf(`{"input":{"i":%d}}`, i), 201, &e)
			ids[i] = e.ID
		}()
	}
	wg.Wait()
	p.kill()

	p = startDesktop(t, dir)
	for i, id := range ids {
		var e execution
		p.mustCall("GET", "/v1/executions/"+id+"?wait=30s", "", 200, &e)
		if e.Status != "succeeded" || string(e.Output) != fmt.Sprint(i) {
			t.Fatalf("execution %s: %s output %s (error %v)", id, e.Status, e.Output, e.Error)
		}
		started, finished := attemptTimes(t, p, id, "wait")
		if len(started) != 1 || len(finished) != 1 {
			t.Fatalf("execution %s: the delay ran %d/%d times", id, len(started), len(finished))
		}
	}
}

// TestKill9MidHTTPAndDelays kills the process while executions sit in
// durable delays and others are in the middle of HTTP calls, restarts it,
// and checks that all finish and that the HTTP server saw each attempt's
// idempotency key no more often than the journal has attempts for it.
func TestKill9MidHTTPAndDelays(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()

	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.mustCall("PUT", "/v1/workflows/park", `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"2s"}}]}`, 200, nil)
	p.mustCall("PUT", "/v1/workflows/call", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`/x"},
	  "retry":{"max_attempts":3,"backoff":"100ms"}}]}`, 200, nil)
	var ids []string
	start := func(wf string, n int) {
		for range n {
			var e execution
			p.mustCall("POST", "/v1/workflows/"+wf+"/executions", `{}`, 201, &e)
			ids = append(ids, e.ID)
		}
	}
	start("park", 100)
	start("call", 50)
	// Wait until the worker's 16 slots are all inside HTTP calls.
	for range 16 {
		select {
		case <-arrived:
		case <-time.After(20 * time.Second):
			t.Fatal("HTTP calls did not arrive")
		}
	}
	p.kill()
	releaseOnce.Do(func() { close(release) })
	go func() {
		for range arrived {
		}
	}()

	p = startDesktop(t, dir)
	for _, id := range ids {
		var e execution
		p.mustCall("GET", "/v1/executions/"+id+"?wait=60s", "", 200, &e)
		if e.Status != "succeeded" {
			t.Fatalf("execution %s: %s (error %v)", id, e.Status, e.Error)
		}
		var j struct{ Items []journalEntry }
		p.mustCall("GET", "/v1/executions/"+id+"/journal", "", 200, &j)
		attempts := map[string]int{}
		for _, it := range j.Items {
			if it.Type == "node_attempt_started" {
				attempts[it.IdempotencyKey]++
			}
		}
		mu.Lock()
		for key, n := range seen {
			if strings.HasPrefix(key, id+"/") && n > attempts[key] {
				t.Errorf("server saw %s %d times; the journal has %d attempts with that key", key, n, attempts[key])
			}
		}
		mu.Unlock()
	}
}

// TestHTTPRefusesPrivateTargets runs builtin.http under a policy that
// does not allow private targets.
func TestHTTPRefusesPrivateTargets(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "strict.toml")
	if err := os.WriteFile(cfg, []byte("[sandbox]\nallow_private_network = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDesktop(t, filepath.Join(dir, "data"), "--config", cfg)
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/"} {
		def := fmt.Sprintf(`{"nodes":[{"id":"get","action":"builtin.http","params":{"url":%q}}]}`, target)
		p.mustCall("PUT", "/v1/workflows/ssrf", def, 200, nil)
		var e execution
		p.mustCall("POST", "/v1/workflows/ssrf/executions?wait=20s", `{}`, 200, &e)
		if e.Status != "failed" || e.Error == nil || !strings.Contains(*e.Error, "not allowed") {
			t.Fatalf("%s: %s (error %v), want failed, not allowed", target, e.Status, e.Error)
		}
	}
}

// TestAttemptTimeout: a node that hangs past its timeout is retried, then
// failed.
func TestAttemptTimeout(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/slow", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`"},
	  "timeout":"500ms","retry":{"max_attempts":2,"backoff":"100ms"}}]}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/slow/executions?wait=20s", `{}`, 200, &e)
	if e.Status != "failed" || e.Error == nil || !strings.Contains(*e.Error, "timed out") {
		t.Fatalf("status %s (error %v), want failed, timed out", e.Status, e.Error)
	}
	started, finished := attemptTimes(t, p, e.ID, "get")
	if len(started) != 2 || len(finished) != 2 {
		t.Fatalf("%d attempts started, %d finished; want 2 and 2", len(started), len(finished))
	}
}

// TestConcurrencyBoundThroughBinary: with engine.max_concurrent_executions
// = 2, a third execution waits in pending and starts when one finishes.
func TestConcurrencyBoundThroughBinary(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bound.toml")
	if err := os.WriteFile(cfg, []byte("[engine]\nmax_concurrent_executions = 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDesktop(t, filepath.Join(dir, "data"), "--config", cfg)
	p.mustCall("PUT", "/v1/workflows/hold", `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"30s"}}]}`, 200, nil)
	// The bound is in force once the node says it is ready.
	var ids []string
	for range 3 {
		var e execution
		p.mustCall("POST", "/v1/workflows/hold/executions", `{}`, 201, &e)
		ids = append(ids, e.ID)
	}
	var e execution
	p.mustCall("GET", "/v1/executions/"+ids[2], "", 200, &e)
	if e.Status != "pending" {
		t.Fatalf("third execution is %s, want pending under a bound of 2", e.Status)
	}
	p.mustCall("POST", "/v1/executions/"+ids[0]+"/cancel", "", 200, nil)
	var third execution
	p.mustCall("GET", "/v1/executions/"+ids[2], "", 200, &third)
	if third.Status != "running" {
		t.Fatalf("after a slot freed the waiting execution is %s, want running", third.Status)
	}
}

// TestLargeOutputGoesToBlobStore: a 5 MiB node output round-trips through
// the blob store, and the Raft log does not carry it.
func TestLargeOutputGoesToBlobStore(t *testing.T) {
	big := strings.Repeat("x", 5<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":%q}`, big)
	}))
	defer srv.Close()
	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.mustCall("PUT", "/v1/workflows/big", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`"}},
	  {"id":"len","action":"builtin.set","params":{"value":"{{ size(nodes.get.output.body.data) }}"}}],
	  "connections":[{"from":"get","to":"len"}]}`, 200, nil)
	var e struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Nodes  struct {
			Get struct {
				Output struct {
					Body struct {
						Data string `json:"data"`
					} `json:"body"`
				} `json:"output"`
			} `json:"get"`
			Len struct {
				Output any `json:"output"`
			} `json:"len"`
		} `json:"nodes"`
	}
	p.mustCall("POST", "/v1/workflows/big/executions?wait=30s", `{}`, 200, &e)
	if got := e.Nodes.Get.Output.Body.Data; e.Status != "succeeded" || got != big {
		var raw map[string]any
		p.mustCall("GET", "/v1/executions/"+e.ID, "", 200, &raw)
		t.Fatalf("status %s, output of %d bytes; want succeeded with the 5 MiB body; error %v", e.Status, len(got), raw["error"])
	}
	if got := e.Nodes.Len.Output; got != float64(5<<20) {
		t.Fatalf("an expression over the large output saw size %v", got)
	}
	var j struct {
		Items []struct {
			Type   string          `json:"type"`
			Node   string          `json:"node"`
			Output json.RawMessage `json:"output"`
		} `json:"items"`
	}
	p.mustCall("GET", "/v1/executions/"+e.ID+"/journal", "", 200, &j)
	full := false
	for _, it := range j.Items {
		if it.Type == "node_attempt_finished" && it.Node == "get" && len(it.Output) > 5<<20 {
			full = true
		}
	}
	if !full {
		t.Fatal("the journal does not show the large output")
	}
	st, err := os.Stat(filepath.Join(dir, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raft log after a 5 MiB output: %d bytes", st.Size())
	if st.Size() >= 5<<20 {
		t.Fatalf("the raft log is %d bytes: the output went through it", st.Size())
	}
}

// TestCancelStopsRunningAttempt: cancelling an execution cancels the
// context of its running HTTP call at once.
func TestCancelStopsRunningAttempt(t *testing.T) {
	arrived, aborted := make(chan struct{}), make(chan struct{})
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(aborted)
		case <-hang:
		}
	}))
	defer srv.Close()
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/hang", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`"}}]}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/hang/executions", `{}`, 201, &e)
	<-arrived
	p.mustCall("POST", "/v1/executions/"+e.ID+"/cancel", "", 200, &e)
	if e.Status != "cancelled" {
		t.Fatalf("status %s, want cancelled", e.Status)
	}
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the running HTTP call was not stopped")
	}
}

// TestEventsStream follows an execution over Server-Sent Events: every
// journal entry arrives in order and the stream ends when it is terminal.
func TestEventsStream(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	p.mustCall("PUT", "/v1/workflows/ev", `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"300ms"}},
	  {"id":"set","action":"builtin.set","params":{"value":1}}],"connections":[{"from":"wait","to":"set"}]}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/ev/executions", `{}`, 201, &e)
	resp, err := http.Get(p.url + "/v1/executions/" + e.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	body, err := io.ReadAll(resp.Body) // ends when the execution is terminal
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			types = append(types, v)
		}
	}
	want := "execution_started node_attempt_started node_attempt_finished node_attempt_started node_attempt_finished execution_succeeded"
	if strings.Join(types, " ") != want {
		t.Fatalf("events %v, want %s", types, want)
	}
	p.mustCall("GET", "/v1/executions/nope/events", "", 404, nil)
}
