package main

import (
	"bufio"
	"crypto/tls"
	"encoding/hex"
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

	"github.com/nebula-engine/nebula/storage/secrets"
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

	// Internal endpoints are not on the API port at all; on the peer
	// port they need both a certificate of the cluster and the secret
	// derived from the master key.
	for _, path := range []string{"/internal/v1/submit", "/internal/v1/status", "/internal/v1/blobs/sha256:" + strings.Repeat("0", 64)} {
		code := c.nodes[0].p.tryCall("POST", path, "x", nil)
		if code != http.StatusNotFound {
			t.Errorf("POST %s on the API port: %d, want 404", path, code)
		}
	}
	peer := c.nodes[0].raft
	if resp, err := http.Post("http://"+peer+"/internal/v1/status", "text/plain", nil); err == nil {
		resp.Body.Close()
		t.Errorf("plain HTTP on the peer port was answered: %s", resp.Status)
	}
	keys, _, err := secrets.LoadKeys(t.TempDir(), testClusterKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(secrets.DeriveKey(keys[0], "peers"))
	cert := nodeCert(t, derivedCA(t, testClusterKey), "n1")
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer " + strings.Repeat("ab", 32), http.StatusUnauthorized},
		{"Bearer " + secret, http.StatusOK},
	} {
		code, err := peerHTTP(peer, cert, "POST", "/internal/v1/status", tc.auth)
		if err != nil || code != tc.want {
			t.Errorf("status with a cluster certificate and authorization %.12q: %d %v, want %d", tc.auth, code, err, tc.want)
		}
	}
}

// peerHTTP makes one internal call to a node's peer port with cert, as a
// peer would, and returns the status.
func peerHTTP(addr string, cert tls.Certificate, method, path, auth string) (int, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte{peerProtoHTTP}); err != nil {
		return 0, err
	}
	req, _ := http.NewRequest(method, "https://"+addr+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if err := req.Write(conn); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
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
