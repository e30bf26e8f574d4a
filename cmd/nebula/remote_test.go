package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRemoteWorkerRunsCredentialsAndModules: a remote worker, which holds
// no state and no master key, runs a builtin.http node with a stored
// credential (handed out for the attempt it leases) and a community action
// (its module fetched from the server).
func TestRemoteWorkerRunsCredentialsAndModules(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
		fmt.Fprint(w, "two words")
	}))
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	port := func() string { return net.JoinHostPort("127.0.0.1", freePort(t, "127.0.0.1")) }
	api := port()
	conf := writeFile(t, dir, "cp.toml", "[sandbox.community_actions]\nenabled = true\n")
	cp := startProc(t, "control-plane", "--config", conf, "--node-id", "cp1", "--data", filepath.Join(dir, "cp"),
		"--bind", api, "--raft-addr", port(), "--gossip-addr", port(), "--bootstrap-expect", "1")
	cp.url = "http://" + api
	cp.waitReady(30 * time.Second)
	startProc(t, "worker", "--server", cp.url, "--id", "w1", "--allow-private-network")

	cp.mustCall("POST", "/v1/credentials", `{"name":"api","type":"bearer","data":{"token":"remote-secret"}}`, 201, nil)
	if status, out := registerModule(cp, "community.wordcount", "1.0.0", nil, wasmModule(t, "wordcount")); status != 201 {
		t.Fatalf("register: %d %v", status, out)
	}
	cp.mustCall("PUT", "/v1/workflows/remote", `{"nodes":[
	  {"id":"call","action":"builtin.http","params":{"url":"`+srv.URL+`","credential":"api"}},
	  {"id":"count","action":"community.wordcount","params":{"text":"{{ nodes.call.output.body }}"}}],
	  "connections":[{"from":"call","to":"count"}]}`, 200, nil)
	var e execution
	cp.mustCall("POST", "/v1/workflows/remote/executions?wait=60s", `{}`, 200, &e)
	if e.Status != "succeeded" {
		t.Fatalf("execution: %s %v", e.Status, deref(e.Error))
	}
	if h := <-got; h != "Bearer remote-secret" {
		t.Fatalf("the server saw %q", h)
	}
	var out struct {
		Words int `json:"words"`
	}
	if err := json.Unmarshal(e.Output, &out); err != nil || out.Words != 2 {
		t.Fatalf("output %s", e.Output)
	}
	if strings.Contains(cp.logs.String(), "remote-secret") {
		t.Fatal("the server's logs show the credential")
	}

	// The credential endpoint answers only the lease's holder.
	cp.mustCall("GET", "/v1/tasks/"+e.ID+"/call/1/credentials/api?token=1", "", 409, nil)
}
