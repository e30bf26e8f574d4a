// Command nebula-chaos runs a three-node Nebula cluster of real `nebula
// server` processes, drives a workload against it while injecting faults
// (kill -9 of the leader or a follower, SIGSTOP, network partitions),
// records every operation, and then checks the history: no acknowledged
// execution lost, exactly one execution per idempotency key, no node
// attempt recorded twice, statuses only moving forward, and consistent
// reads linearizable (porcupine). It exits 1 when a check fails.
//
//	go build -o nebula ./cmd/nebula && go run ./cmd/nebula-chaos -nebula ./nebula -duration 60s
//
// Partitions need root and iproute2: the nodes then run in network
// namespaces of their own (see netLab); elsewhere they run on 127.0.0.1-3
// and partition faults are skipped.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
)

// options are the command's flags.
type options struct {
	nebula     string
	duration   time.Duration
	clients    int
	faults     string
	interval   time.Duration
	hold       time.Duration
	timeout    time.Duration
	think      time.Duration
	settle     time.Duration
	linTimeout time.Duration
	out        string
	keep       bool
	seed       uint64
	quiet      bool
	maxRunning int
	insecure   bool
}

func main() {
	var o options
	flag.StringVar(&o.nebula, "nebula", "", "the nebula binary to run (required)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the clients drive load")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients, spread over the three nodes")
	flag.StringVar(&o.faults, "faults", "all", "faults to inject in turn, comma-separated: "+strings.Join(allFaults, ", ")+"; all; or none")
	flag.DurationVar(&o.interval, "interval", 5*time.Second, "time between the starts of two faults")
	flag.DurationVar(&o.hold, "hold", 3*time.Second, "how long a fault lasts before it is healed")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Second, "per-request timeout: a request timed out has an unknown outcome, and a start is then retried on another node with the same key")
	flag.DurationVar(&o.think, "think", 10*time.Millisecond, "pause between two operations of a client")
	flag.DurationVar(&o.settle, "settle", 60*time.Second, "how long to wait, after the load, for acknowledged executions to end")
	flag.DurationVar(&o.linTimeout, "lin-timeout", 60*time.Second, "bound on porcupine's search")
	flag.StringVar(&o.out, "out", "", "directory for the report, the history and any visualization (default: a new temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the nodes' data directories and logs (they are kept anyway when a check fails)")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the clients' and the faults' random choices (0: random)")
	flag.BoolVar(&o.quiet, "q", false, "print only the report")
	flag.IntVar(&o.maxRunning, "max-running", 0, "engine.max_concurrent_executions of the servers, so that executions queue as pending (0: the preset's)")
	flag.BoolVar(&o.insecure, "insecure-transport", false, "run the peers in plain text (cluster.insecure_transport) instead of mutual TLS")
	flag.Parse()
	if o.nebula == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: nebula-chaos -nebula PATH [flags]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := runChaos(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nebula-chaos:", err)
	}
	stop()
	os.Exit(code)
}

// parseFaults turns the -faults flag into fault kinds.
func parseFaults(s string) ([]string, error) {
	switch strings.TrimSpace(s) {
	case "all":
		return allFaults, nil
	case "none", "":
		return nil, nil
	}
	var kinds []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		found := false
		for _, a := range allFaults {
			found = found || a == k
		}
		if !found {
			return nil, fmt.Errorf("unknown fault %q (want %s)", k, strings.Join(allFaults, ", "))
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}

// runChaos runs the whole experiment and writes the report to w. It
// returns the exit code: 0 when every check passed, 1 when one failed, 2
// when the experiment could not be run.
func runChaos(ctx context.Context, o options, w io.Writer) (int, error) {
	began := time.Now()
	kinds, err := parseFaults(o.faults)
	if err != nil {
		return 2, err
	}
	bin, err := filepath.Abs(o.nebula)
	if err != nil {
		return 2, err
	}
	if _, err := os.Stat(bin); err != nil {
		return 2, fmt.Errorf("-nebula: %w", err)
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
		}
	}
	seed := o.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, 0))

	// Partitions need the namespaces; without them the other faults still
	// run, on loopback.
	var lab *netLab
	var skipped []string
	wantNet := false
	for _, k := range kinds {
		wantNet = wantNet || needsNetwork(k)
	}
	if wantNet {
		if lab, err = newNetLab(); err != nil {
			var kept []string
			for _, k := range kinds {
				if needsNetwork(k) {
					skipped = append(skipped, k)
				} else {
					kept = append(kept, k)
				}
			}
			kinds = kept
			logf("skipping %s: %v", strings.Join(skipped, ", "), err)
			skipped = append(skipped, "("+err.Error()+")")
		} else {
			defer lab.destroy()
		}
	}

	dataDir, err := os.MkdirTemp("", "nebula-chaos-data-")
	if err != nil {
		return 2, err
	}
	outDir := o.out
	if outDir == "" {
		if outDir, err = os.MkdirTemp("", "nebula-chaos-"); err != nil {
			return 2, err
		}
	} else if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 2, err
	}
	keepData := o.keep
	defer func() {
		if keepData {
			logf("node data and logs kept in %s", dataDir)
		} else {
			os.RemoveAll(dataDir)
		}
	}()

	c, err := newCluster(bin, dataDir, lab, o.maxRunning, o.insecure, logf)
	if err != nil {
		return 2, err
	}
	defer c.stopAll()
	if err := c.startAll(); err != nil {
		return 2, err
	}
	where := "127.0.0.1-3 (loopback)"
	if lab != nil {
		where = "network namespaces " + strings.Join(lab.ips, ", ")
	}
	logf("cluster starting on %s, data in %s", where, dataDir)
	leader, err := c.waitAgreement(ctx, 60*time.Second)
	if err != nil {
		keepData = true
		return 2, fmt.Errorf("the cluster did not form: %w", err)
	}
	logf("cluster formed; %s leads", leader.id)
	if err := putWorkflow(ctx, c); err != nil {
		keepData = true
		return 2, err
	}

	// The load, and the faults beside it.
	rec := &recorder{t0: time.Now()}
	wl := &workload{c: c, rec: rec, runID: randomHex(4), timeout: o.timeout, think: o.think}
	loadCtx, endLoad := context.WithTimeout(ctx, o.duration)
	defer endLoad()
	var faults []faultRecord
	faultsDone := make(chan struct{})
	f := &faulter{c: c, stop: ctx, t0: rec.t0, hold: o.hold, pick: func(n int) int { return rng.IntN(n) }}
	go func() {
		faults = f.run(loadCtx, kinds, o.interval, rec.t0.Add(o.duration))
		close(faultsDone)
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	keysStarted, keysAcked := 0, 0
	for i := range o.clients {
		crng := rand.New(rand.NewPCG(seed, uint64(i+1)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, a := wl.client(loadCtx, ctx, i, crng)
			mu.Lock()
			keysStarted += s
			keysAcked += a
			mu.Unlock()
		}()
	}
	logf("load: %d clients for %s; faults %v every %s", o.clients, o.duration, kinds, o.interval)
	wg.Wait()
	loadTime := time.Since(rec.t0)
	<-faultsDone
	if ctx.Err() != nil {
		keepData = true
		return 2, errors.New("interrupted")
	}

	// Heal, settle, collect, check.
	logf("load stopped after %s; waiting for the cluster to be whole", loadTime.Round(time.Millisecond))
	if _, err := c.waitAgreement(ctx, 60*time.Second); err != nil {
		keepData = true
		return 2, fmt.Errorf("after the faults: %w", err)
	}
	_, ids := acked(rec.history())
	settleStart := time.Now()
	notDone := wl.settle(ctx, ids, o.settle)
	logf("%d acknowledged executions, %d not terminal after %s", len(ids), notDone, time.Since(settleStart).Round(time.Millisecond))
	final := wl.collect(ctx, ids, o.clients)
	history := rec.history()
	logf("collected %d executions from every node; checking %d operations", len(final.Execs), len(history))
	res := check(history, final, o.linTimeout)

	rep := report{o: o, seed: seed, where: where, skipped: skipped, kinds: kinds, history: history, final: final, faults: faults,
		res: res, loadTime: loadTime, keysStarted: keysStarted, keysAcked: keysAcked, notDone: notDone}
	var buf bytes.Buffer
	rep.write(&buf)
	if len(res.illegal) > 0 {
		path := filepath.Join(outDir, "linearizability.html")
		if file, err := os.Create(path); err == nil {
			if err := visualize(res, faults, file); err != nil {
				fmt.Fprintf(&buf, "visualization failed: %v\n", err)
			}
			file.Close()
			fmt.Fprintf(&buf, "porcupine visualization: %s\n", path)
		}
	}
	if len(res.Violations) > 0 {
		keepData = true
	}
	fmt.Fprintf(&buf, "time taken: %s (load %s)\n", time.Since(began).Round(time.Second), loadTime.Round(time.Second))
	fmt.Fprintf(&buf, "report, history and violations in %s\n", outDir)
	w.Write(buf.Bytes())
	os.WriteFile(filepath.Join(outDir, "report.txt"), buf.Bytes(), 0o644)
	if err := writeJSON(filepath.Join(outDir, "history.json"), map[string]any{"seed": seed, "ops": history, "faults": faults, "final": final}); err != nil {
		return 2, err
	}
	if err := writeJSON(filepath.Join(outDir, "violations.json"), res.Violations); err != nil {
		return 2, err
	}
	if len(res.Violations) > 0 {
		return 1, nil
	}
	return 0, nil
}

// putWorkflow saves the workflow, retrying while the cluster settles.
func putWorkflow(ctx context.Context, c *cluster) error {
	var def any
	if err := json.Unmarshal([]byte(chaosWorkflow), &def); err != nil {
		return err
	}
	var last error
	for try := 0; try < 60; try++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, err := c.call(rctx, c.nodes[try%len(c.nodes)], http.MethodPut, "/v1/workflows/"+workflowID, def, nil)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		sleep(ctx, 500*time.Millisecond)
	}
	return fmt.Errorf("saving the workflow: %w", last)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// report is what the run found, for people.
type report struct {
	o           options
	seed        uint64
	where       string
	skipped     []string
	kinds       []string
	history     []Op
	final       *Final
	faults      []faultRecord
	res         *Result
	loadTime    time.Duration
	keysStarted int
	keysAcked   int
	notDone     int
}

func (r *report) write(w io.Writer) {
	peers := "mutual TLS"
	if r.o.insecure {
		peers = "plain text"
	}
	fmt.Fprintf(w, "nebula-chaos: 3 nodes on %s, peers over %s; %d clients for %s; seed %d\n", r.where, peers, r.o.clients, r.loadTime.Round(time.Millisecond), r.seed)
	if len(r.skipped) > 0 {
		fmt.Fprintf(w, "skipped faults: %s\n", strings.Join(r.skipped, " "))
	}

	// Operations by kind and outcome.
	type row struct{ ok, fail, unknown int }
	rows := map[string]*row{}
	var names []string
	existing := 0
	for _, op := range r.history {
		name := describeOp(op)
		if op.Client >= r.o.clients {
			name = "final consistent read"
		}
		if rows[name] == nil {
			rows[name] = &row{}
			names = append(names, name)
		}
		switch op.Outcome {
		case OutOK:
			rows[name].ok++
		case OutFail:
			rows[name].fail++
		default:
			rows[name].unknown++
		}
		if op.Kind == OpStart && op.Outcome == OutOK && op.HTTP == http.StatusOK {
			existing++
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\noperations (%d):\n  %-22s %7s %7s %8s\n", len(r.history), "", "ok", "failed", "unknown")
	for _, n := range names {
		fmt.Fprintf(w, "  %-22s %7d %7d %8d\n", n, rows[n].ok, rows[n].fail, rows[n].unknown)
	}
	fmt.Fprintf(w, "  keys started %d, acknowledged %d (%d starts answered with the execution a retry had made), given up %d\n",
		r.keysStarted, r.keysAcked, existing, r.keysStarted-r.keysAcked)
	var statuses []string
	for s, n := range r.res.Statuses {
		statuses = append(statuses, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(statuses)
	fmt.Fprintf(w, "  executions at the end: %d (%s); not terminal after the settle wait: %d\n", len(r.final.Execs), strings.Join(statuses, ", "), r.notDone)
	fmt.Fprintf(w, "  node attempts journaled: %d, of which %d ended without a result and were run again\n", r.res.Attempts, r.res.Rerun)

	fmt.Fprintf(w, "\nfaults (%d, every %s, each held %s):\n", len(r.faults), r.o.interval, r.o.hold)
	for _, f := range r.faults {
		line := fmt.Sprintf("  +%-8s %-16s %-12s healed +%s, cluster whole +%s", f.Start.Round(100*time.Millisecond), f.Kind, f.Node, f.Healed.Round(100*time.Millisecond), f.Recovered.Round(100*time.Millisecond))
		if f.Note != "" {
			line += "; " + f.Note
		}
		if f.Err != "" {
			line += "; ERROR " + f.Err
		}
		fmt.Fprintln(w, line)
	}

	failed := r.res.Failed()
	fmt.Fprintf(w, "\nchecks:\n")
	for _, name := range checkNames {
		verdict := "ok"
		if n := failed[name]; n > 0 {
			verdict = fmt.Sprintf("FAILED (%d)", n)
		}
		fmt.Fprintf(w, "  %-36s %s\n", name, verdict)
	}
	verdict := map[porcupine.CheckResult]string{porcupine.Ok: "linearizable", porcupine.Illegal: "NOT linearizable", porcupine.Unknown: "unknown (timed out)"}[r.res.Porcupine]
	fmt.Fprintf(w, "porcupine: %s (%s) over %d operations in %d partitions (one per execution)\n", r.res.Porcupine, verdict, r.res.LinOps, r.res.LinExecs)
	fmt.Fprintf(w, "\nviolations: %d\n", len(r.res.Violations))
	const shown = 40
	for i, v := range r.res.Violations {
		if i == shown {
			fmt.Fprintf(w, "  … %d more in violations.json\n", len(r.res.Violations)-shown)
			break
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", v.Check, v.Exec, v.Detail)
	}
}
