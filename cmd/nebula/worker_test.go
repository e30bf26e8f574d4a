package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestControlPlaneWithRemoteWorkers runs a control plane that executes
// nothing itself and two `nebula worker` processes; one worker is killed
// mid-run and its attempts finish on the other.
func TestControlPlaneWithRemoteWorkers(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(20 * time.Millisecond) // a slow API, so attempts are in flight at the kill
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()

	dir := t.TempDir()
	port := func() string { return net.JoinHostPort("127.0.0.1", freePort(t, "127.0.0.1")) }
	api := port()
	cp := startProc(t, "control-plane", "--node-id", "cp1", "--data", filepath.Join(dir, "cp"),
		"--bind", api, "--raft-addr", port(), "--gossip-addr", port(), "--bootstrap-expect", "1")
	cp.url = "http://" + api
	cp.waitReady(30 * time.Second)

	workers := make([]*proc, 2)
	for i := range workers {
		workers[i] = startProc(t, "worker", "--server", cp.url, "--id", fmt.Sprintf("w%d", i+1),
			"--concurrency", "8", "--lease-ttl", "3s", "--allow-private-network")
	}
	cp.mustCall("PUT", "/v1/workflows/remote", `{"nodes":[
	  {"id":"a","action":"builtin.set","params":{"value":"{{ input.i }}"}},
	  {"id":"call","action":"builtin.http","params":{"url":"`+srv.URL+`"}},
	  {"id":"b","action":"builtin.set","params":{"value":"{{ nodes.a.output + 1 }}"}}],
	  "connections":[{"from":"a","to":"call"},{"from":"call","to":"b"}]}`, 200, nil)

	const n = 500
	ids := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var e execution
			cp.mustCall("POST", "/v1/workflows/remote/executions", fmt.Sprintf(`{"input":{"i":%d}}`, i), 201, &e)
			ids[i] = e.ID
		}()
		if i == n/4 {
			// Kill a worker while the first executions run.
			for calls.Load() < 20 {
				time.Sleep(5 * time.Millisecond)
			}
			workers[0].kill()
		}
	}
	wg.Wait()
	for i, id := range ids {
		var e execution
		cp.mustCall("GET", "/v1/executions/"+id+"?wait=60s", "", 200, &e)
		if e.Status != "succeeded" || string(e.Output) != fmt.Sprint(i+1) {
			t.Fatalf("execution %s: %s output %s (error %v)", id, e.Status, e.Output, e.Error)
		}
	}
	t.Logf("%d executions finished on the remaining worker after the other was killed; %d HTTP calls", n, calls.Load())
}
