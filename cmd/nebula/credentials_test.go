package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCredentialsAreSealed stores a credential and checks that its value
// appears in no answer and in no file of the data directory: the Raft log,
// snapshots and the SQLite state hold ciphertext only.
func TestCredentialsAreSealed(t *testing.T) {
	dir := t.TempDir()
	// Snapshots often, so that one holds the state when the files are
	// searched.
	conf := writeFile(t, t.TempDir(), "nebula.toml", "[cluster]\nsnapshot_threshold = 16\nsnapshot_interval = \"200ms\"\n")
	p := startDesktop(t, dir, "--config", conf)
	const secret = "ghp_s3cr3tV4lueNeverPrinted"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		fmt.Fprintf(w, "you sent %s", r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	var c map[string]any
	p.mustCall("POST", "/v1/credentials", `{"name":"github","type":"bearer","data":{"token":"`+secret+`"}}`, 201, &c)
	if c["name"] != "github" || c["type"] != "bearer" || c["data"] != nil {
		t.Fatalf("answer %v", c)
	}
	var list json.RawMessage
	p.mustCall("GET", "/v1/credentials", "", 200, &list)
	if bytes.Contains(list, []byte(secret)) || !bytes.Contains(list, []byte(`"github"`)) {
		t.Fatalf("list: %s", list)
	}
	for _, bad := range []string{
		`{"name":"x","type":"oauth","data":{"token":"a"}}`,
		`{"name":"x","type":"bearer","data":{"tok":"a"}}`,
		`{"name":"bad name","type":"bearer","data":{"token":"a"}}`,
		`{"name":"x","type":"basic","data":{"username":"u"}}`,
	} {
		p.mustCall("POST", "/v1/credentials", bad, 400, nil)
	}
	// Used in runs: the echoing server sends it back in a header and the
	// body, and the runs' outputs are stored.
	p.mustCall("PUT", "/v1/workflows/use", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+echo.URL+`","credential":"github"}}]}`, 200, nil)
	for range 5 {
		var e execution
		p.mustCall("POST", "/v1/workflows/use/executions?wait=20s", `{}`, 200, &e)
		if e.Status != "succeeded" {
			t.Fatalf("run: %s %v", e.Status, deref(e.Error))
		}
		var answers []json.RawMessage
		for _, path := range []string{"/v1/executions/" + e.ID, "/v1/executions/" + e.ID + "/journal", "/v1/executions?limit=100"} {
			var raw json.RawMessage
			p.mustCall("GET", path, "", 200, &raw)
			answers = append(answers, raw)
		}
		for _, a := range answers {
			if bytes.Contains(a, []byte(secret)) {
				t.Fatalf("an answer shows the secret: %s", a)
			}
		}
	}
	snapshots, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	for deadline := time.Now().Add(10 * time.Second); len(snapshots) == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		snapshots, _ = filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	}
	if len(snapshots) == 0 {
		t.Fatal("no snapshot was taken")
	}
	if strings.Contains(p.logs.String(), secret) {
		t.Error("the logs show the secret")
	}
	p.stop() // flush everything to disk
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p = startDesktop(t, dir)
	p.mustCall("DELETE", "/v1/credentials/github", "", 204, nil)
	p.mustCall("DELETE", "/v1/credentials/github", "", 404, nil)
}

// TestHTTPUsesCredentialAndRedactsIt: builtin.http sends a stored bearer
// token; the server echoes it back, and the output, the journal and the
// logs show it only as [REDACTED].
func TestHTTPUsesCredentialAndRedactsIt(t *testing.T) {
	const secret = "tok_EchoedBackByTheServer42"
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"you_sent":%q}`, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	p := startDesktop(t, t.TempDir())
	p.mustCall("POST", "/v1/credentials", `{"name":"api","type":"bearer","data":{"token":"`+secret+`"}}`, 201, nil)
	p.mustCall("PUT", "/v1/workflows/call", `{"nodes":[{"id":"get","action":"builtin.http","params":{"url":"`+srv.URL+`","credential":"api"}}]}`, 200, nil)
	var e execution
	p.mustCall("POST", "/v1/workflows/call/executions?wait=20s", `{}`, 200, &e)
	if e.Status != "succeeded" {
		t.Fatalf("status %s (error %v)", e.Status, e.Error)
	}
	if h := <-got; h != "Bearer "+secret {
		t.Fatalf("server saw Authorization %q", h)
	}
	var raw json.RawMessage
	p.mustCall("GET", "/v1/executions/"+e.ID, "", 200, &raw)
	var journal json.RawMessage
	p.mustCall("GET", "/v1/executions/"+e.ID+"/journal", "", 200, &journal)
	for what, b := range map[string][]byte{"execution": raw, "journal": journal, "logs": []byte(p.logs.String())} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the %s shows the secret", what)
		}
	}
	if !bytes.Contains(raw, []byte("[REDACTED]")) {
		t.Errorf("the echoed token is not marked redacted: %s", raw)
	}
}

func TestCLICredentialCommands(t *testing.T) {
	p := startDesktop(t, t.TempDir())
	run := func(stdin string, args ...string) (string, int) {
		cmd := exec.Command(binPath, append(args, "--server", p.url)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := run("tok-from-stdin\n", "credential", "set", "gh", "--type", "bearer"); code != 0 || !strings.Contains(out, "stored") {
		t.Fatalf("set: %d %s", code, out)
	}
	out, code := run("", "credential", "list")
	if code != 0 || !strings.Contains(out, "gh") || strings.Contains(out, "tok-from-stdin") {
		t.Fatalf("list: %d %s", code, out)
	}
	if out, code := run("", "credential", "set", "x", "--type", "oauth"); code != 2 {
		t.Fatalf("bad type: %d %s", code, out)
	}
	if out, code := run("", "credential", "delete", "gh"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s", code, out)
	}
}
