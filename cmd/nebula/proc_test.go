package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testClusterKey is the master key of the clusters the tests start.
const testClusterKey = "6e6562756c612074657374206b657920666f7220636c757374657273206f6e6c"

// The tokens of the servers the tests start (auth is on for every
// profile but desktop): procs of servers send the admin token, workers
// are given the worker token.
const (
	testAdminToken  = "nebula-test-admin-token-0123456789"
	testWorkerToken = "nebula-test-worker-token-0123456789"
)

// binPath is the nebula binary built once for the tests in this package.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nebula-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "nebula")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building nebula: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running nebula process.
type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	url string
	// token, when set, is sent as "Authorization: Bearer" by do.
	token string
	logs  *syncBuffer
	done  chan struct{}
	ready chan string
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var readyLine = regexp.MustCompile(`msg=ready .*api=(https?://[0-9.:]+)`)

// startProc runs nebula with args and returns at once; the process is
// killed when the test ends.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startWrapped(t, nil, args...)
}

// startWrapped is startProc with the command run through wrap (e.g.
// `ip netns exec NS`), which must exec it in place so that signals reach
// nebula itself.
func startWrapped(t *testing.T, wrap []string, args ...string) *proc {
	t.Helper()
	return startWrappedEnv(t, wrap, nil, args...)
}

// startWrappedEnv is startWrapped with extra environment variables, which
// win over the ones it sets.
func startWrappedEnv(t *testing.T, wrap, env []string, args ...string) *proc {
	t.Helper()
	token := ""
	if len(args) > 0 && args[0] == "worker" && !slices.Contains(args, "--token") {
		args = append(slices.Clone(args), "--token", testWorkerToken)
	}
	argv := append(append(append([]string{}, wrap...), binPath), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if len(args) > 0 && (args[0] == "server" || args[0] == "control-plane") {
		// The nodes of a cluster share one master key, and auth is on.
		cmd.Env = append(os.Environ(), "NEBULA_MASTER_KEY="+testClusterKey,
			"NEBULA_ADMIN_TOKEN="+testAdminToken, "NEBULA_WORKER_TOKEN="+testWorkerToken)
		token = testAdminToken
	}
	if len(env) > 0 {
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, env...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, token: token, logs: &syncBuffer{}, done: make(chan struct{}), ready: make(chan string, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case p.ready <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("logs of nebula %v:\n%s", args[:1], tail(p.logs.String(), 60))
		}
	})
	return p
}

// waitReady waits until the process logs that it is ready and returns the
// API URL it logged.
func (p *proc) waitReady(timeout time.Duration) string {
	p.t.Helper()
	select {
	case url := <-p.ready:
		return url
	case <-p.done:
		p.t.Fatalf("nebula exited before ready:\n%s", p.logs)
	case <-time.After(timeout):
		p.t.Fatalf("nebula not ready after %s:\n%s", timeout, tail(p.logs.String(), 60))
	}
	return ""
}

// startDesktop runs `nebula desktop` on a free loopback port over dataDir
// and waits until it is ready.
func startDesktop(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	p := startProc(t, append([]string{"desktop", "--data", dataDir, "--bind", "127.0.0.1:0"}, extra...)...)
	p.url = p.waitReady(20 * time.Second)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// kill stops the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop asks the process to shut down and waits for it.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("nebula did not stop after SIGTERM:\n%s", p.logs)
	}
	// A graceful stop is a success.
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("nebula exited %d after SIGTERM:\n%s", code, tail(p.logs.String(), 40))
	}
}

// call sends a request and decodes the JSON answer into out (if not nil),
// returning the status code. A transport error fails the test.
func (p *proc) call(method, path, body string, out any) int {
	p.t.Helper()
	status, err := p.do(method, path, body, out)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status
}

// tryCall is call for a node that may be down: a transport error is
// status 0.
func (p *proc) tryCall(method, path, body string, out any) int {
	status, _ := p.do(method, path, body, out)
	return status
}

func (p *proc) do(method, path, body string, out any) (int, error) {
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %q: %w", clip(b), err)
		}
	}
	return resp.StatusCode, nil
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// mustCall is call that fails the test on an unexpected status.
func (p *proc) mustCall(method, path, body string, want int, out any) {
	p.t.Helper()
	var raw json.RawMessage
	got := p.call(method, path, body, &raw)
	if got != want {
		p.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, clip(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("decoding %s: %v", clip(raw), err)
		}
	}
}

// clip shortens a body for an error message.
func clip(b []byte) []byte {
	if len(b) > 2000 {
		return append(b[:2000:2000], "…"...)
	}
	return b
}
