package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClusterSharesCredentialsAndGuardsPeers: a credential stored through
// one node is used by attempts run on every node (they share the master
// key), and the internal endpoints refuse callers that do not hold it.
func TestClusterSharesCredentialsAndGuardsPeers(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)

	c := newTestCluster(t, 3)
	for _, s := range c.nodes {
		if err := os.WriteFile(s.config, []byte(clusterConfig+"[sandbox]\nallow_private_network = true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.startAll()
	c.waitAgreement(3, 20*time.Second)

	c.nodes[0].p.mustCall("POST", "/v1/credentials", `{"name":"api","type":"bearer","data":{"token":"shared-secret-token"}}`, 201, nil)
	c.nodes[1].p.mustCall("PUT", "/v1/workflows/call?consistent=true", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`","credential":"api"}}]}`, 200, nil)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e execution
			c.nodes[i%3].p.mustCall("POST", "/v1/workflows/call/executions?wait=30s", `{}`, 200, &e)
			if e.Status != "succeeded" {
				t.Errorf("execution via node %d: %s %v", i%3+1, e.Status, deref(e.Error))
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	if len(seen) != 1 || seen["Bearer shared-secret-token"] != 12 {
		t.Errorf("the server saw %v, want the token 12 times", seen)
	}
	mu.Unlock()

	// Internal endpoints answer peers only.
	for _, path := range []string{"/internal/v1/submit", "/internal/v1/status", "/internal/v1/blobs/sha256:" + strings.Repeat("0", 64)} {
		method := http.MethodPost
		if strings.Contains(path, "blobs") {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, c.nodes[0].p.url+path, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("ab", 32))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without the cluster secret: %d, want 401", method, path, resp.StatusCode)
		}
	}
}

// TestServerNeedsMasterKey: a server never makes a master key of its own,
// since every node must hold the same.
func TestServerNeedsMasterKey(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binPath, "server", "--data", filepath.Join(dir, "data"), "--bind", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "NEBULA_MASTER_KEY=", "NEBULA_ADMIN_TOKEN=test-admin-token-0123456789")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("err %v, output %s; want exit 2", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "NEBULA_MASTER_KEY") {
		t.Fatalf("output %q: want one line naming NEBULA_MASTER_KEY", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "master.key")); !os.IsNotExist(err) {
		t.Fatalf("a key file was made: %v", err)
	}
}
