// Command nebula-bench drives a running Nebula over its HTTP API and
// reports executions per second and start-to-finish latency.
//
// A workload applies a workflow and starts it -count times from -clients
// concurrent clients, each request waiting (?wait=) for the execution to
// finish:
//
//   - chain: three builtin.set nodes in a chain, with expressions;
//   - set: one builtin.set node, the baseline for the next one;
//   - wasm: one community.wordcount node (the module given by -module is
//     registered first), the cost of running a node in the WebAssembly
//     sandbox;
//   - fanout: one builtin.set root, 100 parallel builtin.set nodes after it
//     and one join after all of them (102 nodes per execution);
//   - http: three builtin.http nodes in a chain, each a GET to an echo
//     server that nebula-bench runs on loopback: every node is a task a
//     worker claims, runs and reports.
//
// The delay workload is different: it starts -count executions of a single
// builtin.delay node without waiting, then polls the running executions
// until all have finished, to show that parked durable timers cost nothing
// while they wait (see delay.go).
//
// After any run the server's resident memory is printed, from -pid or from
// the nebula process listening on -addr's port (see rss.go).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const chainWorkflow = `{
  "id": "bench-chain",
  "name": "3-node set chain",
  "nodes": [
    {"id": "a", "action": "builtin.set", "params": {"value": {"n": "{{ input.n + 1 }}"}}},
    {"id": "b", "action": "builtin.set", "params": {"value": {"n": "{{ nodes.a.output.n * 2 }}"}}},
    {"id": "c", "action": "builtin.set", "params": {"value": "n={{ nodes.b.output.n }}"}}
  ],
  "connections": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]
}`

const setWorkflow = `{
  "id": "bench-set",
  "nodes": [{"id": "a", "action": "builtin.set", "params": {"value": {"text": "{{ input.text }}"}}}]
}`

const wasmWorkflow = `{
  "id": "bench-wasm",
  "nodes": [{"id": "a", "action": "community.wordcount@1.0.0", "params": {"text": "{{ input.text }}"}}]
}`

// workload is a workflow and the input of its i-th execution.
type workload struct {
	id, workflow, what string
	input              func(i int64) string
}

var benchText = strings.Repeat("The quick brown fox jumps over the lazy dog; the dog sleeps on. ", 16)

var workloads = map[string]workload{
	"chain": {"bench-chain", chainWorkflow, "chain (3 x builtin.set)", func(i int64) string {
		return fmt.Sprintf(`{"input": {"n": %d}}`, i)
	}},
	"set": {"bench-set", setWorkflow, "1 x builtin.set on 1 KiB of text", func(int64) string {
		return fmt.Sprintf(`{"input": {"text": %q}}`, benchText)
	}},
	"wasm": {"bench-wasm", wasmWorkflow, "1 x community.wordcount (WebAssembly) on 1 KiB of text", func(int64) string {
		return fmt.Sprintf(`{"input": {"text": %q}}`, benchText)
	}},
	"fanout": {"bench-fanout", fanoutWorkflow(), fmt.Sprintf("fan-out (1 + %d parallel + 1 join builtin.set)", fanoutWidth), func(i int64) string {
		return fmt.Sprintf(`{"input": {"n": %d}}`, i)
	}},
}

// authToken, when set, is sent as "Authorization: Bearer" on every
// request: servers other than a desktop require a token.
var authToken string

// authorize sets the request's token, if there is one.
func authorize(req *http.Request) {
	if authToken != "" {
		req.Header.Set("Authorization", "Bearer "+authToken)
	}
}

func main() {
	flag.StringVar(&authToken, "token", os.Getenv("NEBULA_TOKEN"), "API token, the servers' admin token or a tenant's (default env NEBULA_TOKEN)")
	addr := flag.String("addr", "http://127.0.0.1:8787", "Nebula API address, or several separated by commas: clients are spread over them")
	clients := flag.Int("clients", 32, "concurrent clients")
	count := flag.Int("count", 1000, "executions to start")
	wait := flag.Duration("wait", 30*time.Second, "how long each request waits for its execution")
	name := flag.String("workload", "chain", "chain, set, wasm, fanout, http, delay or bomb")
	module := flag.String("module", "", "wasm workload: the wordcount module to register (GOOS=wasip1 GOARCH=wasm go build ./examples/actions/wordcount)")
	delay := flag.Duration("delay", 30*time.Second, "delay workload: the builtin.delay duration")
	pid := flag.Int("pid", 0, "the server's process id, to print its RSS after the run (default: look for a nebula process with -addr's port in its arguments)")
	pad := flag.Int("pad", 0, "bytes of padding added to every execution's input (to grow the state)")
	duration := flag.Duration("duration", 0, "run for this long instead of -count executions")
	bombNodes := flag.Int("bomb-nodes", 1000, "bomb workload: parallel costly nodes of the bomb")
	bombSize := flag.Int("bomb-size", 59, "bomb workload: elements of the lists each node maps")
	flag.Parse()
	if *name == "bomb" {
		if err := runBomb(strings.Split(*addr, ",")[0], *bombNodes, *bombSize); err != nil {
			fmt.Fprintln(os.Stderr, "nebula-bench:", err)
			os.Exit(1)
		}
		return
	}
	w, ok := workloads[*name]
	switch *name {
	case "delay":
		ok = true
	case "http":
		url, stop, err := echoServer()
		if err != nil {
			fmt.Fprintln(os.Stderr, "nebula-bench:", err)
			os.Exit(1)
		}
		defer stop()
		w, ok = httpWorkload(url), true
	}
	if *clients < 1 || *count < 1 || !ok || (*name == "wasm" && *module == "") || *delay <= 0 || *pad < 0 || *duration < 0 {
		fmt.Fprintln(os.Stderr, "nebula-bench: -clients, -count and -delay must be positive, -workload chain, set, wasm, fanout, http or delay, and wasm needs -module")
		os.Exit(2)
	}
	addrs := strings.Split(*addr, ",")
	// Whatever happens, say how much memory the server holds afterwards.
	defer printRSS(*pid, addrs[0])
	if *name == "delay" {
		if err := runDelay(addrs, *clients, *count, *delay); err != nil {
			fmt.Fprintln(os.Stderr, "nebula-bench:", err)
			printRSS(*pid, addrs[0])
			os.Exit(1)
		}
		return
	}
	if *module != "" {
		if err := register(addrs[0], *module); err != nil {
			fmt.Fprintln(os.Stderr, "nebula-bench:", err)
			os.Exit(1)
		}
	}
	if *pad > 0 {
		w.input = padded(w.input, *pad)
	}
	if *duration > 0 {
		*count = int(^uint(0) >> 1)
	}
	if err := run(addrs, w, *clients, *count, *wait, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "nebula-bench:", err)
		printRSS(*pid, addrs[0]) // os.Exit skips the deferred call
		os.Exit(1)
	}
}

// register registers the wordcount module as community.wordcount@1.0.0
// (again is fine: the same module is accepted as it stands).
func register(addr, file string) error {
	module, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"id": "community.wordcount", "version": "1.0.0", "module": module})
	req, err := http.NewRequest(http.MethodPost, addr+"/v1/actions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registering %s: %d %s", file, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// padded wraps input so that each execution's input carries n more bytes.
func padded(input func(int64) string, n int) func(int64) string {
	pad := strings.Repeat("x", n)
	return func(i int64) string {
		var body map[string]map[string]any
		if err := json.Unmarshal([]byte(input(i)), &body); err != nil {
			panic(err) // the workloads' own inputs
		}
		body["input"]["pad"] = pad
		b, _ := json.Marshal(body)
		return string(b)
	}
}

// run starts count executions (or as many as fit in duration, when it is
// positive) over clients and prints what it measured.
func run(addrs []string, w workload, clients, count int, wait, duration time.Duration) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: wait + 30*time.Second}
	ctx := context.Background()
	if err := do(ctx, hc, http.MethodPut, addrs[0]+"/v1/workflows/"+w.id, w.workflow, http.StatusOK, nil); err != nil {
		return fmt.Errorf("apply workflow: %w", err)
	}

	var next atomic.Int64
	var failed atomic.Int64
	lat := make([][]time.Duration, clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	var deadline time.Time
	if duration > 0 {
		deadline = start.Add(duration)
	}
	for c := range clients {
		wg.Add(1)
		url := fmt.Sprintf("%s/v1/workflows/%s/executions?wait=%s", addrs[c%len(addrs)], w.id, wait)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(count) || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				t0 := time.Now()
				var out struct {
					Status string `json:"status"`
				}
				body := w.input(i)
				err := do(ctx, hc, http.MethodPost, url, body, http.StatusOK, &out)
				if err == nil && out.Status != "succeeded" {
					err = fmt.Errorf("execution ended %q", out.Status)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ok := len(all)
	if duration > 0 {
		fmt.Printf("workload      %s, %d clients over %d node(s), for %s\n", w.what, clients, len(addrs), duration)
	} else {
		fmt.Printf("workload      %s, %d clients over %d node(s), %d executions\n", w.what, clients, len(addrs), count)
	}
	fmt.Printf("succeeded     %d\n", ok)
	fmt.Printf("failed        %d\n", failed.Load())
	fmt.Printf("elapsed       %s\n", elapsed.Round(time.Millisecond))
	fmt.Printf("throughput    %.0f executions/s\n", float64(ok)/elapsed.Seconds())
	if w.id == "bench-fanout" {
		nodes := fanoutWidth + 2
		fmt.Printf("nodes         %.0f node completions/s (%d per execution)\n", float64(ok*nodes)/elapsed.Seconds(), nodes)
	}
	if ok > 0 {
		fmt.Printf("latency       p50 %s  p90 %s  p99 %s  max %s\n",
			pct(all, 0.50), pct(all, 0.90), pct(all, 0.99), all[ok-1].Round(time.Microsecond))
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("%d executions failed; first: %w", failed.Load(), err)
	}
	return nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i].Round(time.Microsecond)
}

func do(ctx context.Context, hc *http.Client, method, url, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// httpWorkload is the chain with three builtin.http nodes instead of
// builtin.set: each is a task that a worker claims, runs and reports.
func httpWorkload(echo string) workload {
	wf := fmt.Sprintf(`{
  "id": "bench-http",
  "name": "3-node builtin.http chain",
  "nodes": [
    {"id": "a", "action": "builtin.http", "params": {"method": "GET", "url": "%[1]s/a?n={{ input.n }}"}},
    {"id": "b", "action": "builtin.http", "params": {"method": "GET", "url": "%[1]s/b?n={{ nodes.a.output.body.n }}"}},
    {"id": "c", "action": "builtin.http", "params": {"method": "GET", "url": "%[1]s/c?n={{ nodes.b.output.body.n }}"}}
  ],
  "connections": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]
}`, echo)
	return workload{"bench-http", wf, "chain (3 x builtin.http to a local echo server)", func(i int64) string {
		return fmt.Sprintf(`{"input": {"n": %d}}`, i)
	}}
}

// echoServer serves {"n": <query n>} on a loopback port, for the http
// workload; the server must allow private targets (the desktop preset
// does).
func echoServer() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("echo server: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n": %q}`, r.URL.Query().Get("n"))
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
