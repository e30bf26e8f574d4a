package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nebula-engine/nebula/sandbox"
	"github.com/nebula-engine/nebula/storage"
)

// MaxOutputBytes bounds one node output carried through the log, when no
// blob store takes larger ones.
const MaxOutputBytes = 4 << 20

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Submitter Submitter
	// Holder names this worker in leases; it must be unique per process
	// (node id plus an incarnation id).
	Holder      string
	Concurrency int
	// LeaseTTL is how long a claimed task stays leased without a result
	// or heartbeat; zero picks 30s. Running attempts renew it every third
	// of it.
	LeaseTTL time.Duration
	// DefaultTimeout bounds attempts of nodes without a timeout; zero
	// means no bound.
	DefaultTimeout time.Duration
	// Runner runs the actions: in-process ones with capability checks,
	// community ones in the WebAssembly sandbox.
	Runner sandbox.Runner
	// Wake is signalled when tasks may be waiting; without it the worker
	// polls every PollInterval.
	Wake         <-chan struct{}
	PollInterval time.Duration
	// Hub, if set, tells the worker which executions ended, so that their
	// running attempts are stopped at once.
	Hub *Hub
	// Blobs, if set, takes outputs over BlobThreshold (zero picks
	// DefaultBlobThreshold); the result reported carries a reference.
	Blobs         storage.BlobStore
	BlobThreshold int
	Logger        *slog.Logger
	// OnAttempt, if set, is told how long each attempt's action ran and
	// how it ended: "succeeded", "failed" or "stopped" (its result was
	// not wanted, or shutdown cut it short). Actions the state machine
	// runs itself (builtin.delay, builtin.subworkflow) are not seen.
	OnAttempt func(action, outcome string, d time.Duration)
}

// Worker claims tasks, runs their actions and reports the results, with at
// most Concurrency attempts running at once.
type Worker struct {
	cfg    WorkerConfig
	logger *slog.Logger

	mu      sync.Mutex
	running map[string]map[string]context.CancelFunc // by execution id, then task id
}

// NewWorker returns a Worker.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.BlobThreshold == 0 {
		cfg.BlobThreshold = DefaultBlobThreshold
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, logger: l, running: make(map[string]map[string]context.CancelFunc)}
}

// Run works until ctx ends, then waits for the attempts it started. Their
// contexts are cancelled, so actions that honour cancellation stop.
func (w *Worker) Run(ctx context.Context) { w.RunDrain(ctx, ctx) }

// RunDrain claims tasks until claimCtx ends, then waits for the attempts it
// started to finish and report: a drain. Attempts run under workCtx; ending
// it stops them (they are not reported and run again elsewhere once their
// lease expires).
func (w *Worker) RunDrain(claimCtx, workCtx context.Context) {
	ctx := claimCtx
	var wg sync.WaitGroup
	defer wg.Wait()
	if w.cfg.Hub != nil {
		finished, stop := w.cfg.Hub.Finished()
		defer stop()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case id := <-finished:
					w.stopExecution(id)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	free := make(chan struct{}, w.cfg.Concurrency)
	for range w.cfg.Concurrency {
		free <- struct{}{}
	}
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	for {
		// Take one slot (waiting if all are busy), then every other free
		// one: a claim asks for as many tasks as can start now.
		select {
		case <-free:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for {
			select {
			case <-free:
				n++
			default:
				break more
			}
		}
		res, err := w.cfg.Submitter.Submit(ctx, &ClaimTasks{Holder: w.cfg.Holder, Max: n, TTL: w.cfg.LeaseTTL})
		if err == nil {
			err = res.Err
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, storage.ErrNoLeader) {
			w.logger.Warn("claim failed", "err", err)
		}
		for _, t := range res.Tasks {
			n--
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { free <- struct{}{} }()
				w.work(ctx, workCtx, t)
			}()
		}
		for range n {
			free <- struct{}{}
		}
		if len(res.Tasks) > 0 {
			continue
		}
		select {
		case <-w.cfg.Wake:
		case <-poll.C:
		case <-ctx.Done():
			return
		}
	}
}

// execute runs one attempt, renewing its lease while it runs, and returns
// the command that reports it; nil when the attempt was stopped because
// its lease or execution is gone (there is no one to report to).
func (w *Worker) execute(ctx context.Context, t *storage.Task) *CompleteTask {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.track(t, func() { cancel(errStopped) })
	defer w.untrack(t)
	if d := w.timeout(t); d > 0 {
		var stop context.CancelFunc
		actx, stop = context.WithTimeoutCause(actx, d, fmt.Errorf("attempt timed out after %s", d))
		defer stop()
	}
	actx = WithAttempt(actx, Attempt{Tenant: t.TenantID, ExecutionID: t.ExecutionID, Node: t.Node, Number: t.Attempt, Key: t.ID, LeaseToken: t.LeaseToken})

	hbDone := make(chan struct{})
	defer close(hbDone)
	go w.heartbeat(actx, t, hbDone, func() { cancel(errStopped) })

	began := time.Now()
	out, err := w.runAction(actx, t)
	stopped := errors.Is(context.Cause(actx), errStopped) || (err != nil && ctx.Err() != nil)
	if w.cfg.OnAttempt != nil {
		outcome := "succeeded"
		switch {
		case stopped:
			outcome = "stopped"
		case err != nil:
			outcome = "failed"
		}
		w.cfg.OnAttempt(t.Action, outcome, time.Since(began))
	}
	if stopped {
		// Stopped because nobody wants the result, or cut short by
		// shutdown: report nothing. In the second case the lease expires
		// (or the restarted node takes it back) and the attempt runs again.
		return nil
	}
	cmd := &CompleteTask{TaskID: t.ID, Token: t.LeaseToken, Output: out}
	if err != nil {
		if cause := context.Cause(actx); cause != nil && actx.Err() != nil {
			// The attempt's own time limit: report that, not the
			// action's view of the cancelled context.
			err = Retryable(cause)
		}
		cmd.Output, cmd.Error = nil, err.Error()
		cmd.Retryable = errors.Is(err, ErrRetryable)
		cmd.Jitter = rand.Uint32()
	}
	return cmd
}

// errStopped cancels an attempt whose result nobody wants any more.
var errStopped = errors.New("attempt stopped: its execution ended or its lease was lost")

func (w *Worker) timeout(t *storage.Task) time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return w.cfg.DefaultTimeout
}

// heartbeat renews the task's lease every third of its TTL until done; a
// refused renewal means the lease is gone, and the attempt is stopped.
func (w *Worker) heartbeat(ctx context.Context, t *storage.Task, done <-chan struct{}, stop func()) {
	tick := time.NewTicker(w.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := w.cfg.Submitter.Submit(ctx, &RenewLease{TaskID: t.ID, Token: t.LeaseToken, TTL: w.cfg.LeaseTTL})
		if err == nil {
			err = res.Err
		}
		if errors.Is(err, ErrStaleLease) {
			w.logger.Info("lease lost; stopping attempt", "execution", t.ExecutionID, "node", t.Node, "attempt", t.Attempt)
			stop()
			return
		}
		if err != nil && ctx.Err() == nil {
			w.logger.Warn("heartbeat failed", "execution", t.ExecutionID, "node", t.Node, "err", err)
		}
	}
}

func (w *Worker) track(t *storage.Task, cancel context.CancelFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.running[t.ExecutionID]
	if m == nil {
		m = make(map[string]context.CancelFunc)
		w.running[t.ExecutionID] = m
	}
	m[t.ID] = cancel
}

func (w *Worker) untrack(t *storage.Task) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.running[t.ExecutionID], t.ID)
	if len(w.running[t.ExecutionID]) == 0 {
		delete(w.running, t.ExecutionID)
	}
}

// stopExecution cancels the running attempts of an execution that ended.
func (w *Worker) stopExecution(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cancel := range w.running[id] {
		cancel()
	}
}

// work runs t in the slot its caller holds, then reports it. While claimCtx
// lasts the report also asks for the next ready task (CompleteTask.Claim),
// which the same slot then runs: a chain of tasks moves one log entry per
// node instead of two, with no wait for a wake-up and a claim in between.
func (w *Worker) work(claimCtx, workCtx context.Context, t *storage.Task) {
	for t != nil {
		cmd := w.execute(workCtx, t)
		if cmd == nil {
			return
		}
		if claimCtx.Err() == nil {
			cmd.Claim = &ClaimTasks{Holder: w.cfg.Holder, Max: 1, TTL: w.cfg.LeaseTTL}
		}
		t = w.report(workCtx, t, cmd)
	}
}

// report sends an attempt's result and returns the task leased with it,
// if any. A result that cannot be reported (no leader, shutting down) is
// dropped: the lease expires and the attempt is reclaimed and run again,
// which is why attempts carry an idempotency key.
func (w *Worker) report(ctx context.Context, t *storage.Task, cmd *CompleteTask) *storage.Task {
	// The result is reported even while shutting down: the work is done.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res, serr := w.cfg.Submitter.Submit(rctx, cmd)
	if serr == nil {
		serr = res.Err
	}
	switch {
	case errors.Is(serr, ErrStaleLease):
		w.logger.Info("result refused: lease lost", "execution", t.ExecutionID, "node", t.Node, "attempt", t.Attempt)
	case serr != nil:
		w.logger.Warn("cannot report result", "execution", t.ExecutionID, "node", t.Node, "attempt", t.Attempt, "err", serr)
	case len(res.Tasks) > 0:
		return res.Tasks[0]
	}
	return nil
}

func (w *Worker) runAction(ctx context.Context, t *storage.Task) (out json.RawMessage, err error) {
	defer func() {
		// An action's bug fails its attempt, not the worker.
		if r := recover(); r != nil {
			w.logger.Error("action panicked", "action", t.Action, "execution", t.ExecutionID, "node", t.Node, "panic", r)
			out, err = nil, fmt.Errorf("action %s panicked: %v", t.Action, r)
		}
	}()
	out, err = w.cfg.Runner.Run(ctx, sandbox.Request{Tenant: t.TenantID, Action: t.Action, Params: t.Params})
	if errors.Is(err, sandbox.ErrUnknownAction) {
		return nil, fmt.Errorf("action %s is not available on worker %s", t.Action, w.cfg.Holder)
	}
	if err != nil {
		return nil, err
	}
	limit := MaxOutputBytes
	if w.cfg.Blobs != nil {
		limit = MaxBlobOutputBytes
	}
	if len(out) > limit {
		return nil, fmt.Errorf("output of %d bytes exceeds the limit of %d bytes", len(out), limit)
	}
	// The runner checked that out is JSON.
	if _, marker := markerRef(out); marker {
		return nil, fmt.Errorf("action %s returned an object with the reserved key $nebula_blob", t.Action)
	}
	if w.cfg.Blobs != nil && len(out) > w.cfg.BlobThreshold {
		if out, err = storeOutput(ctx, w.cfg.Blobs, out); err != nil {
			return nil, Retryable(err)
		}
	}
	return out, nil
}
