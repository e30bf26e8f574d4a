package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"time"
)

// workflowID is the workflow the clients start.
const workflowID = "chaos"

// chaosWorkflow keeps executions in flight across faults: a pure node run
// inside the state machine, a durable 200 ms timer, a node a worker runs
// under a lease (builtin.log is not pure), and a last pure node whose
// output, n+1, lets the checker tell each execution's result.
const chaosWorkflow = `{
  "id": "chaos",
  "nodes": [
    {"id": "a", "action": "builtin.set", "params": {"value": {"n": "{{ input.n }}"}}},
    {"id": "b", "action": "builtin.delay", "params": {"duration": "200ms"}},
    {"id": "c", "action": "builtin.log", "params": {"message": "chaos n={{ nodes.a.output.n }}"}},
    {"id": "d", "action": "builtin.set", "params": {"value": "{{ nodes.a.output.n + 1 }}"}}
  ],
  "connections": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}]
}`

// OpKind is what a client asked.
type OpKind string

// Operation kinds.
const (
	OpStart  OpKind = "start"  // POST /v1/workflows/{id}/executions with a key
	OpRead   OpKind = "read"   // GET /v1/executions/{id}, local or consistent
	OpCancel OpKind = "cancel" // POST /v1/executions/{id}/cancel
)

// Outcome is what became of an operation.
type Outcome string

// Outcomes. A failed operation had no effect; an unknown one (a timeout,
// a cut answer, a 5xx) may or may not have taken effect.
const (
	OutOK      Outcome = "ok"
	OutFail    Outcome = "fail"
	OutUnknown Outcome = "unknown"
)

// notFound is the status recorded for a read answered 404.
const notFound = "not_found"

// Op is one recorded operation. Times are nanoseconds since the run began.
type Op struct {
	Client     int     `json:"client"`
	Kind       OpKind  `json:"kind"`
	Node       string  `json:"node"`
	Key        string  `json:"key,omitempty"`
	Exec       string  `json:"exec,omitempty"`
	Input      int     `json:"input,omitempty"`
	Consistent bool    `json:"consistent,omitempty"`
	Call       int64   `json:"call"`
	Return     int64   `json:"return"`
	Outcome    Outcome `json:"outcome"`
	Status     string  `json:"status,omitempty"` // the execution's status in the answer, or not_found
	HTTP       int     `json:"http,omitempty"`
	Err        string  `json:"err,omitempty"`
}

// recorder is the history: every operation, in the order they completed.
type recorder struct {
	t0  time.Time
	mu  sync.Mutex
	ops []Op
}

func (r *recorder) now() int64 { return int64(time.Since(r.t0)) }

func (r *recorder) add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) history() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// pool holds the most recently acknowledged executions, so that clients
// also read and cancel each other's: reads of one execution by several
// clients are what makes the linearizability check bite.
type pool struct {
	mu  sync.Mutex
	ids []string
}

func (p *pool) add(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, id)
	if len(p.ids) > 64 {
		p.ids = p.ids[len(p.ids)-64:]
	}
}

func (p *pool) pick(rng *rand.Rand) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return ""
	}
	return p.ids[rng.IntN(len(p.ids))]
}

// workload drives the cluster and records what it saw.
type workload struct {
	c       *cluster
	rec     *recorder
	runID   string        // prefixes idempotency keys
	timeout time.Duration // per request
	think   time.Duration // pause between a client's operations
	shared  pool
}

// execView is the part of an execution the harness reads.
type execView struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	IdempotencyKey string `json:"idempotency_key"`
}

// request sends one operation to n, records it, and returns it.
func (w *workload) request(ctx context.Context, op Op, n *node, method, path string, body any) Op {
	op.Node = n.id
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	var ev execView
	op.Call = w.rec.now()
	status, code, err := w.c.call(rctx, n, method, path, body, &ev)
	op.Return = w.rec.now()
	op.HTTP = status
	switch {
	case err == nil:
		op.Outcome, op.Status = OutOK, ev.Status
		if op.Exec == "" {
			op.Exec = ev.ID
		}
	case status == http.StatusNotFound && code == "not_found" && op.Kind != OpStart:
		// An answer: this node does not know the execution.
		op.Outcome, op.Status = OutOK, notFound
	default:
		op.Outcome, op.Err = classify(status, err), err.Error()
	}
	w.rec.add(op)
	return op
}

// classify tells a failed request that certainly had no effect (refused
// with a 4xx, or never connected) from one that may have.
func classify(status int, err error) Outcome {
	if status >= 400 && status < 500 {
		return OutFail
	}
	var op *net.OpError
	if status == 0 && (errors.As(err, &op) && op.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED)) {
		return OutFail
	}
	return OutUnknown
}

// start starts the execution of key, retrying on the next node with the
// same key until one acknowledges it: that is how a user gets exactly one
// execution. It gives up after maxTries or 30 s and returns "".
func (w *workload) start(ctx context.Context, client, home int, key string, input int) string {
	const maxTries = 20
	body := map[string]any{"input": map[string]any{"n": input}, "idempotency_key": key}
	first := time.Now()
	for try := 0; try < maxTries && time.Since(first) < 30*time.Second; try++ {
		n := w.c.nodes[(home+try)%len(w.c.nodes)]
		op := w.request(ctx, Op{Client: client, Kind: OpStart, Key: key, Input: input}, n, http.MethodPost, "/v1/workflows/"+workflowID+"/executions", body)
		if op.Outcome == OutOK {
			return op.Exec
		}
		if ctx.Err() != nil {
			return ""
		}
		// Back off a little: an election takes a second or so.
		sleep(ctx, min(time.Duration(50<<min(try, 5))*time.Millisecond, time.Second))
	}
	return ""
}

// client runs one client until ctx ends: start an execution, then a few
// reads (local or consistent, on any node) and now and then a cancel, of
// its own recent executions or others'. stop ends the key being started
// only when the harness gives up entirely.
func (w *workload) client(ctx, stop context.Context, id int, rng *rand.Rand) (started, acked int) {
	home := id % len(w.c.nodes)
	var mine []string
	for i := 1; ctx.Err() == nil; i++ {
		key := fmt.Sprintf("%s-c%d-%d", w.runID, id, i)
		started++
		// A start begun is seen through even after the load ends, so
		// that every key is settled.
		if eid := w.start(stop, id, home, key, id*1_000_000+i); eid != "" {
			acked++
			mine = append(mine, eid)
			if len(mine) > 4 {
				mine = mine[1:]
			}
			w.shared.add(eid)
		}
		for range 3 {
			if ctx.Err() != nil {
				break
			}
			sleep(ctx, w.think)
			target := w.shared.pick(rng)
			if len(mine) > 0 && (target == "" || rng.IntN(10) < 6) {
				target = mine[rng.IntN(len(mine))]
			}
			if target == "" {
				continue
			}
			n := w.c.nodes[rng.IntN(len(w.c.nodes))]
			switch r := rng.IntN(100); {
			case r < 8:
				w.request(ctx, Op{Client: id, Kind: OpCancel, Exec: target}, n, http.MethodPost, "/v1/executions/"+target+"/cancel", nil)
			case r < 54:
				w.request(ctx, Op{Client: id, Kind: OpRead, Exec: target, Consistent: true}, n, http.MethodGet, "/v1/executions/"+target+"?consistent=true", nil)
			default:
				w.request(ctx, Op{Client: id, Kind: OpRead, Exec: target}, n, http.MethodGet, "/v1/executions/"+target, nil)
			}
		}
		sleep(ctx, w.think)
	}
	return started, acked
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// fullExec is an execution as GET /v1/executions/{id} answers it.
type fullExec struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	IdempotencyKey string `json:"idempotency_key"`
	Input          struct {
		N *int `json:"n"`
	} `json:"input"`
	Output json.RawMessage     `json:"output"`
	Nodes  map[string]NodeView `json:"nodes"`
}

// settle waits, up to timeout in all, until every id is terminal as some
// node reads it. It returns how many are not.
func (w *workload) settle(ctx context.Context, ids []string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	var mu sync.Mutex
	pending := 0
	forEach(ids, 8, func(_, i int, id string) {
		for try := 0; time.Now().Before(deadline) && ctx.Err() == nil; try++ {
			n := w.c.nodes[(i+try)%len(w.c.nodes)]
			wait := min(time.Until(deadline), 10*time.Second).Round(time.Second)
			if wait <= 0 {
				break
			}
			rctx, cancel := context.WithTimeout(ctx, wait+5*time.Second)
			var e execView
			_, _, err := w.c.call(rctx, n, http.MethodGet, fmt.Sprintf("/v1/executions/%s?wait=%s", id, wait), nil, &e)
			cancel()
			if err == nil && terminal(e.Status) {
				return
			}
			if err != nil {
				sleep(ctx, 200*time.Millisecond)
			}
		}
		mu.Lock()
		pending++
		mu.Unlock()
	})
	return pending
}

// collect reads, from every node and with a read barrier, the list of
// the workflow's executions and each execution of ids or of the lists with
// its journal. The reads of executions are recorded in the history too,
// by clients numbered from firstClient, one per reader.
func (w *workload) collect(ctx context.Context, ids []string, firstClient int) *Final {
	f := &Final{Listed: map[string]map[string]Listed{}, Execs: map[string]*FinalExec{}, Errors: map[string]string{}}
	all := slices.Clone(ids)
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
	}
	for _, n := range w.c.nodes {
		f.Nodes = append(f.Nodes, n.id)
		var listed map[string]Listed
		var err error
		for try := 0; try < 3; try++ {
			if listed, err = w.list(ctx, n); err == nil {
				break
			}
			sleep(ctx, time.Second)
		}
		if err != nil {
			f.Errors[n.id] = err.Error()
			continue
		}
		f.Listed[n.id] = listed
		for id := range listed {
			if !known[id] {
				known[id] = true
				all = append(all, id)
			}
		}
	}
	for _, id := range all {
		f.Execs[id] = &FinalExec{ID: id, Status: map[string]string{}, Errors: map[string]string{}, Journals: map[string][]Entry{}}
	}
	const readers = 8
	var mu sync.Mutex
	forEach(all, readers, func(reader, _ int, id string) {
		fe := f.Execs[id]
		for _, n := range w.c.nodes {
			w.readFinal(ctx, n, fe, firstClient+reader, &mu)
		}
	})
	return f
}

// readFinal reads execution fe and its journal from n, with a barrier,
// into fe. The cluster is whole by now, but a read may still be slow (a
// snapshot under way): each is given a generous timeout and three tries.
func (w *workload) readFinal(ctx context.Context, n *node, fe *FinalExec, client int, mu *sync.Mutex) {
	const tries = 3
	timeout := max(w.timeout, 10*time.Second)
	for try := 1; try <= tries; try++ {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		var e fullExec
		op := Op{Client: client, Kind: OpRead, Node: n.id, Exec: fe.ID, Consistent: true, Call: w.rec.now()}
		status, code, err := w.c.call(rctx, n, http.MethodGet, "/v1/executions/"+fe.ID+"?consistent=true", nil, &e)
		cancel()
		op.Return, op.HTTP = w.rec.now(), status
		mu.Lock()
		switch {
		case err == nil:
			op.Outcome, op.Status = OutOK, e.Status
			fe.Status[n.id] = e.Status
			delete(fe.Errors, n.id)
			if fe.Nodes == nil {
				fe.Key, fe.Input, fe.Output, fe.Nodes = e.IdempotencyKey, e.Input.N, e.Output, e.Nodes
			}
		case status == http.StatusNotFound && code == "not_found":
			op.Outcome, op.Status = OutOK, notFound
			fe.Status[n.id] = notFound
		default:
			op.Outcome, op.Err = classify(status, err), err.Error()
			fe.Errors[n.id] = fmt.Sprintf("%v (try %d of %d)", err, try, tries)
		}
		mu.Unlock()
		w.rec.add(op)
		if op.Outcome == OutOK {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	if fe.Status[n.id] == "" || fe.Status[n.id] == notFound {
		return
	}
	for try := 1; try <= tries; try++ {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		var j struct {
			Items []Entry `json:"items"`
		}
		_, _, err := w.c.call(rctx, n, http.MethodGet, "/v1/executions/"+fe.ID+"/journal?consistent=true", nil, &j)
		cancel()
		mu.Lock()
		if err == nil {
			fe.Journals[n.id] = j.Items
			delete(fe.Errors, n.id)
		} else {
			fe.Errors[n.id] = fmt.Sprintf("journal: %v (try %d of %d)", err, try, tries)
		}
		mu.Unlock()
		if err == nil {
			return
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// list pages through a node's executions of the workflow, with a barrier.
func (w *workload) list(ctx context.Context, n *node) (map[string]Listed, error) {
	m := map[string]Listed{}
	cursor := ""
	for {
		var page struct {
			Items      []execView `json:"items"`
			NextCursor string     `json:"next_cursor"`
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, _, err := w.c.call(rctx, n, http.MethodGet, "/v1/executions?workflow="+workflowID+"&limit=1000&consistent=true&cursor="+url.QueryEscape(cursor), nil, &page)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, e := range page.Items {
			m[e.ID] = Listed{Key: e.IdempotencyKey, Status: e.Status}
		}
		if page.NextCursor == "" {
			return m, nil
		}
		cursor = page.NextCursor
	}
}

// forEach calls fn on every item (with its index) from par goroutines
// (numbered, so that each can record as a client of its own).
func forEach(items []string, par int, fn func(worker, i int, item string)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(w, i, items[i])
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
}
