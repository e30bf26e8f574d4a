package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateMasterKey walks a key rotation on a desktop node: a credential
// sealed under the old key is re-sealed under the new one, after which the
// old key is dropped and the credential still works.
func TestRotateMasterKey(t *testing.T) {
	const token = "tok_RotatedButStillWorking"
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	p := startDesktop(t, dir)
	p.mustCall("POST", "/v1/credentials", `{"name":"api","type":"bearer","data":{"token":"`+token+`"}}`, 201, nil)
	p.mustCall("PUT", "/v1/workflows/call", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`","credential":"api"}}]}`, 200, nil)
	p.stop()

	keyFile := filepath.Join(dir, "master.key")
	old, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	const newKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	writeKey := func(content string) {
		t.Helper()
		if err := os.WriteFile(keyFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey(newKey + "\n" + string(old))
	p = startDesktop(t, dir)
	out := nebulaCLI(t, p.url, "", "credential", "rotate-key").want(t, 0)
	if !strings.Contains(out.stdout, "1 credentials re-sealed") {
		t.Fatalf("rotate-key: %q", out.stdout)
	}
	if out := nebulaCLI(t, p.url, "", "credential", "rotate-key").want(t, 0); !strings.Contains(out.stdout, "0 credentials re-sealed under the current key (1 already were)") {
		t.Fatalf("second rotate-key: %q", out.stdout)
	}
	p.stop()

	writeKey(newKey + "\n")
	p = startDesktop(t, dir)
	var e execution
	p.mustCall("POST", "/v1/workflows/call/executions?wait=20s", `{}`, 200, &e)
	if e.Status != "succeeded" || len(seen) != 1 || seen[0] != "Bearer "+token {
		t.Fatalf("after the rotation: %s %v, server saw %v", e.Status, deref(e.Error), seen)
	}
}
