package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// chainYAML is a three-node chain; its output is (2n)*2 + 1.
const chainYAML = `# a chain of three nodes
id: chain
name: Three in a row
nodes:
  - id: make
    action: builtin.set
    params:
      value: {n: "{{ input.n * 2 }}"}
  - id: double
    action: builtin.set
    params:
      value: "{{ nodes.make.output.n * 2 }}"
  - id: last
    action: builtin.set
    params:
      value: "{{ nodes.double.output + 1 }}"
connections:
  - {from: make, to: double}
  - {from: double, to: last}
`

// cliResult is what a run of the binary printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// nebulaCLI runs the nebula binary with args against server, with stdin as
// its input.
func nebulaCLI(t *testing.T, server, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append(args, "--server", server)...)
	cmd.Env = append(os.Environ(), "NEBULA_ADDR=", "NEBULA_TOKEN=")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("nebula %v: %v", args, err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// want fails the test unless the run ended with code.
func (r cliResult) want(t *testing.T, code int) cliResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// oneLineError fails the test unless stderr is one line that says nebula
// and contains every part.
func (r cliResult) oneLineError(t *testing.T, parts ...string) {
	t.Helper()
	line := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "nebula: ") {
		t.Fatalf("stderr is not one line of nebula: %q", r.stderr)
	}
	for _, p := range parts {
		if !strings.Contains(line, p) {
			t.Errorf("stderr %q does not contain %q", line, p)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var clockLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}  (.*)$`)

func TestCLIWorkflowsAndRuns(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, filepath.Join(dir, "data"))
	file := writeFile(t, dir, "chain.yaml", chainYAML)

	if r := nebulaCLI(t, p.url, "", "workflow", "apply", "-f", file).want(t, 0); r.stdout != "workflow chain version 1\n" {
		t.Fatalf("apply printed %q", r.stdout)
	}
	if r := nebulaCLI(t, p.url, chainYAML, "workflow", "apply", "-f", "-").want(t, 0); r.stdout != "workflow chain version 2\n" {
		t.Fatalf("apply from stdin printed %q", r.stdout)
	}

	list := nebulaCLI(t, p.url, "", "workflow", "list").want(t, 0)
	if !regexp.MustCompile(`(?m)^ID\s+NAME\s+VERSION\s+NODES\s+CREATED$`).MatchString(list.stdout) ||
		!regexp.MustCompile(`(?m)^chain\s+Three in a row\s+2\s+3\s+\d{4}-`).MatchString(list.stdout) {
		t.Fatalf("workflow list:\n%s", list.stdout)
	}

	var def struct {
		ID    string `json:"id"`
		Nodes []any  `json:"nodes"`
	}
	get := nebulaCLI(t, p.url, "", "workflow", "get", "chain").want(t, 0)
	if err := json.Unmarshal([]byte(get.stdout), &def); err != nil || def.ID != "chain" || len(def.Nodes) != 3 {
		t.Fatalf("workflow get: %v\n%s", err, get.stdout)
	}
	if !strings.Contains(get.stdout, "\n  \"id\": \"chain\"") {
		t.Errorf("workflow get is not indented:\n%s", get.stdout)
	}

	t.Run("run without waiting prints the id", func(t *testing.T) {
		r := nebulaCLI(t, p.url, "", "run", "chain", "--input", `{"n": 1}`).want(t, 0)
		if !regexp.MustCompile(`^[0-9a-z]+\n$`).MatchString(r.stdout) {
			t.Fatalf("run printed %q", r.stdout)
		}
	})

	t.Run("wait prints status and output", func(t *testing.T) {
		input := writeFile(t, dir, "input.json", `{"n": 3}`)
		r := nebulaCLI(t, p.url, "", "run", "chain", "--input", "@"+input, "--wait").want(t, 0)
		for _, want := range []string{"status:    succeeded", "output:    13", "NODE", "double"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("run --wait output lacks %q:\n%s", want, r.stdout)
			}
		}
	})

	var followed string
	t.Run("follow prints each attempt and the end", func(t *testing.T) {
		r := nebulaCLI(t, p.url, "", "run", "chain", "--input", `{"n": 5}`, "--follow").want(t, 0)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		var got []string
		for _, l := range lines {
			m := clockLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line %q is not <time>  <event>:\n%s", l, r.stdout)
			}
			got = append(got, strings.Join(strings.Fields(m[1]), " "))
		}
		want := []string{
			"execution started",
			"make attempt 1 started", "make succeeded",
			"double attempt 1 started", "double succeeded",
			"last attempt 1 started", "last succeeded",
			"execution succeeded",
		}
		if len(got) != len(want) {
			t.Fatalf("follow printed %d lines, want %d:\n%s", len(got), len(want), r.stdout)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("line %d = %q, want it to start with %q", i+1, got[i], want[i])
			}
		}
		if !strings.HasSuffix(got[len(got)-1], "output 21") {
			t.Errorf("last line %q does not show the output 21", got[len(got)-1])
		}

		var execs struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(nebulaCLI(t, p.url, "", "execution", "list", "--workflow", "chain", "--output", "json").want(t, 0).stdout), &execs); err != nil {
			t.Fatal(err)
		}
		followed = execs.Items[len(execs.Items)-1].ID
	})

	t.Run("execution list", func(t *testing.T) {
		var page struct {
			Items []struct {
				ID, Status string
			} `json:"items"`
		}
		r := nebulaCLI(t, p.url, "", "execution", "list", "--output", "json").want(t, 0)
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
			t.Fatalf("execution list --output json: %v\n%s", err, r.stdout)
		}
		if len(page.Items) != 3 {
			t.Fatalf("%d executions listed, want 3:\n%s", len(page.Items), r.stdout)
		}
		for _, e := range page.Items {
			if e.ID == "" || e.Status == "" {
				t.Errorf("execution without id or status: %+v", e)
			}
		}
		limited := nebulaCLI(t, p.url, "", "execution", "list", "--status", "succeeded", "--limit", "2").want(t, 0)
		if lines := strings.Split(strings.TrimSpace(limited.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") {
			t.Errorf("execution list --limit 2:\n%s", limited.stdout)
		}
	})

	t.Run("journal in order", func(t *testing.T) {
		if followed == "" {
			t.Skip("no followed execution")
		}
		r := nebulaCLI(t, p.url, "", "execution", "journal", followed).want(t, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if !regexp.MustCompile(`^SEQ\s+AT\s+TYPE\s+NODE\s+ATTEMPT\s+DETAIL$`).MatchString(lines[0]) {
			t.Fatalf("journal header %q", lines[0])
		}
		entries := lines[1:]
		if len(entries) != 8 {
			t.Fatalf("%d journal entries, want 8:\n%s", len(entries), r.stdout)
		}
		for i, l := range entries {
			f := strings.Fields(l)
			if seq, _ := strconv.Atoi(f[0]); seq != i+1 {
				t.Errorf("entry %d has seq %s: %q", i+1, f[0], l)
			}
		}
		if f := strings.Fields(entries[0]); f[3] != "execution_started" {
			t.Errorf("first entry %q", entries[0])
		}
		if f := strings.Fields(entries[len(entries)-1]); f[3] != "execution_succeeded" || f[len(f)-1] != "21" {
			t.Errorf("last entry %q", entries[len(entries)-1])
		}

		get := nebulaCLI(t, p.url, "", "execution", "get", followed).want(t, 0)
		if !regexp.MustCompile(`(?m)^make\s+succeeded\s+1\s+\S+$`).MatchString(get.stdout) {
			t.Errorf("execution get lacks node make:\n%s", get.stdout)
		}
	})
}

func TestCLIFailureAndCancel(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, filepath.Join(dir, "data"))
	failing := writeFile(t, dir, "boom.json", `{"id": "boom", "nodes": [{"id": "f", "action": "builtin.fail", "params": {"message": "no luck"}}]}`)
	slow := writeFile(t, dir, "slow.yaml", "id: slow\nnodes:\n  - {id: nap, action: builtin.delay, params: {duration: 30s}}\n")
	nebulaCLI(t, p.url, "", "workflow", "apply", "-f", failing).want(t, 0)
	nebulaCLI(t, p.url, "", "workflow", "apply", "-f", slow).want(t, 0)

	t.Run("wait on a failure exits 1", func(t *testing.T) {
		r := nebulaCLI(t, p.url, "", "run", "boom", "--wait").want(t, 1)
		if !strings.Contains(r.stdout, "status:    failed") || !strings.Contains(r.stdout, "no luck") {
			t.Errorf("run --wait output:\n%s", r.stdout)
		}
		r.oneLineError(t, "failed")
	})

	t.Run("follow a failure as JSON exits 1", func(t *testing.T) {
		r := nebulaCLI(t, p.url, "", "run", "boom", "--follow", "--output", "json").want(t, 1)
		var last struct{ Type string }
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if err := json.Unmarshal([]byte(l), &last); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
		}
		if last.Type != "execution_failed" {
			t.Errorf("last event %q, want execution_failed:\n%s", last.Type, r.stdout)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		id := strings.TrimSpace(nebulaCLI(t, p.url, "", "run", "slow").want(t, 0).stdout)
		r := nebulaCLI(t, p.url, "", "execution", "cancel", id).want(t, 0)
		if r.stdout != "execution "+id+" cancelled\n" {
			t.Errorf("cancel printed %q", r.stdout)
		}
		var e struct{ Status string }
		if err := json.Unmarshal([]byte(nebulaCLI(t, p.url, "", "execution", "get", id, "--output", "json").want(t, 0).stdout), &e); err != nil {
			t.Fatal(err)
		}
		if e.Status != "cancelled" {
			t.Errorf("status %q after cancel, want cancelled", e.Status)
		}
	})

	t.Run("delete", func(t *testing.T) {
		nebulaCLI(t, p.url, "", "workflow", "delete", "boom").want(t, 0)
		nebulaCLI(t, p.url, "", "workflow", "get", "boom").want(t, 1).oneLineError(t, "not_found", "HTTP 404")
	})
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	p := startDesktop(t, filepath.Join(dir, "data"))
	nebulaCLI(t, p.url, chainYAML, "workflow", "apply", "-f", "-").want(t, 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name   string
		server string
		args   []string
		code   int
		parts  []string
	}{
		{"malformed input", p.url, []string{"run", "chain", "--input", "{"}, 2, []string{"--input", "JSON"}},
		{"input not an object", p.url, []string{"run", "chain", "--input", "[1]"}, 2, []string{"JSON object"}},
		{"missing input file", p.url, []string{"run", "chain", "--input", "@" + filepath.Join(dir, "none.json")}, 2, []string{"none.json"}},
		{"missing workflow file", p.url, []string{"workflow", "apply", "-f", filepath.Join(dir, "none.yaml")}, 2, []string{"none.yaml"}},
		{"no file", p.url, []string{"workflow", "apply"}, 2, []string{"-f"}},
		{"bad status", p.url, []string{"execution", "list", "--status", "done"}, 2, []string{"--status"}},
		{"bad flag", p.url, []string{"run", "chain", "--wiat"}, 2, []string{"--wiat"}},
		{"unknown workflow", p.url, []string{"run", "nope", "--wait"}, 1, []string{"not_found", "HTTP 404"}},
		{"unknown execution", p.url, []string{"execution", "journal", "nope"}, 1, []string{"not_found", "HTTP 404"}},
		{"closed port", closed, []string{"workflow", "list"}, 1, []string{"cannot reach " + closed}},
		{"closed port, follow", closed, []string{"run", "chain", "--follow"}, 1, []string{"cannot reach " + closed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := nebulaCLI(t, tt.server, "", tt.args...).want(t, tt.code)
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			r.oneLineError(t, tt.parts...)
		})
	}
}

// TestCLIFollowFallsBackToJournal follows an execution on a server that has
// no event stream: the journal, read again and again, gives each entry once.
func TestCLIFollowFallsBackToJournal(t *testing.T) {
	entries := []string{
		`{"seq":1,"type":"execution_started","at":"2026-01-02T10:00:00Z","input":{}}`,
		`{"seq":2,"type":"node_attempt_started","at":"2026-01-02T10:00:00.001Z","node":"fetch","attempt":1}`,
		`{"seq":3,"type":"node_attempt_finished","at":"2026-01-02T10:00:00.004Z","node":"fetch","attempt":1,"error":"HTTP 503","retry_at":"2026-01-02T10:00:00.204Z"}`,
		`{"seq":4,"type":"node_attempt_started","at":"2026-01-02T10:00:00.204Z","node":"fetch","attempt":2}`,
		`{"seq":5,"type":"node_attempt_finished","at":"2026-01-02T10:00:00.210Z","node":"fetch","attempt":2,"error":"HTTP 503"}`,
		`{"seq":6,"type":"execution_failed","at":"2026-01-02T10:00:00.210Z","error":"node \"fetch\" failed: HTTP 503"}`,
	}
	var reads atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/workflows/w/executions", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"e1","workflow_id":"w","workflow_version":1,"status":"running","nodes":{"fetch":{"status":"pending"},"x":{"status":"pending"}}}`)
	})
	mux.HandleFunc("GET /v1/executions/e1/journal", func(w http.ResponseWriter, r *http.Request) {
		// The journal grows by two entries a read.
		n := min(2*int(reads.Add(1)), len(entries))
		fmt.Fprintf(w, `{"items":[%s]}`, strings.Join(entries[:n], ","))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":"not_found","message":"no route for %s %s"}}`, r.Method, r.URL.Path)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetArgs([]string{"run", "w", "--follow", "--server", srv.URL})
	err := root.Execute()
	if err == nil || err.Error() != "execution e1 failed" {
		t.Fatalf("error %v, want execution e1 failed", err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		m := clockLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not <time>  <event>", l)
		}
		got = append(got, m[1])
	}
	want := []string{
		"execution started",
		"fetch  attempt 1 started",
		"fetch  attempt 1 failed (3ms): HTTP 503; retry in 200ms",
		"fetch  attempt 2 started",
		"fetch  attempt 2 failed (6ms): HTTP 503",
		`execution failed (210ms): node "fetch" failed: HTTP 503`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("follow printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCLIListFollowsCursors lists page by page: all of a list by default,
// and with --limit never more than asked, nor a page larger than wanted.
func TestCLIListFollowsCursors(t *testing.T) {
	const total = 5
	var limits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limits = append(limits, q.Get("limit"))
		from, _ := strconv.Atoi(q.Get("cursor"))
		n, _ := strconv.Atoi(q.Get("limit"))
		n = min(n, 2, total-from) // the server's pages are smaller than asked
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"id":"w%d","version":1,"nodes":[{}],"created_at":"2026-01-02T10:00:00Z"}`, from+i)
		}
		next := ""
		if from+n < total {
			next = strconv.Itoa(from + n)
		}
		fmt.Fprintf(w, `{"items":[%s],"next_cursor":%q}`, strings.Join(items, ","), next)
	}))
	defer srv.Close()

	for _, tt := range []struct {
		args   []string
		rows   int
		limits string
	}{
		{nil, 5, "1000 1000 1000"},
		{[]string{"--limit", "3"}, 3, "3 1"},
	} {
		limits = nil
		var out bytes.Buffer
		root := newRoot()
		root.SetOut(&out)
		root.SetArgs(append([]string{"workflow", "list", "--server", srv.URL}, tt.args...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if rows := strings.Count(out.String(), "\n") - 1; rows != tt.rows {
			t.Errorf("%v: %d rows, want %d:\n%s", tt.args, rows, tt.rows, out.String())
		}
		if got := strings.Join(limits, " "); got != tt.limits {
			t.Errorf("%v: pages asked with limits %s, want %s", tt.args, got, tt.limits)
		}
	}
}

func TestCLIFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{850 * time.Microsecond, "850µs"},
		{3*time.Millisecond + 400*time.Microsecond, "3ms"},
		{1254 * time.Millisecond, "1.25s"},
		{2*time.Minute + 3400*time.Millisecond, "2m3s"},
		{time.Hour + 2*time.Minute + 9*time.Second, "1h2m"},
	} {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
