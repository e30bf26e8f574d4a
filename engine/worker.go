package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// MaxOutputBytes bounds one node output carried through the log.
const MaxOutputBytes = 4 << 20

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Submitter Submitter
	// Holder names this worker in leases; it must be unique per process
	// (node id plus an incarnation id).
	Holder      string
	Concurrency int
	// LeaseTTL is how long a claimed task stays leased without a result;
	// zero picks 30s.
	LeaseTTL time.Duration
	Actions  Actions
	// Wake is signalled when tasks may be waiting; without it the worker
	// polls every PollInterval.
	Wake         <-chan struct{}
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Worker claims tasks, runs their actions and reports the results, with at
// most Concurrency attempts running at once.
type Worker struct {
	cfg    WorkerConfig
	logger *slog.Logger
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
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, logger: l}
}

// Run works until ctx ends, then waits for the attempts it started.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
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
				// The slot is for running actions: it frees as soon as
				// the action returns, while the result is still being
				// reported, so reporting overlaps with the next claim.
				cmd := w.execute(ctx, t)
				free <- struct{}{}
				w.report(ctx, t, cmd)
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

// execute runs one attempt and returns the command that reports it.
func (w *Worker) execute(ctx context.Context, t *storage.Task) *CompleteTask {
	out, err := w.runAction(ctx, t)
	cmd := &CompleteTask{TaskID: t.ID, Token: t.LeaseToken, Output: out}
	if err != nil {
		cmd.Output, cmd.Error = nil, err.Error()
	}
	return cmd
}

// report sends an attempt's result. A result that cannot be reported (no
// leader, shutting down) is dropped: the lease expires and the attempt is
// reclaimed and run again, which is why attempts carry an idempotency key.
func (w *Worker) report(ctx context.Context, t *storage.Task, cmd *CompleteTask) {
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
	}
}

func (w *Worker) runAction(ctx context.Context, t *storage.Task) (out json.RawMessage, err error) {
	defer func() {
		// An action's bug fails its attempt, not the worker.
		if r := recover(); r != nil {
			w.logger.Error("action panicked", "action", t.Action, "execution", t.ExecutionID, "node", t.Node, "panic", r)
			out, err = nil, fmt.Errorf("action %s panicked: %v", t.Action, r)
		}
	}()
	a, ok := w.cfg.Actions[t.Action]
	if !ok {
		return nil, fmt.Errorf("action %s is not available on worker %s", t.Action, w.cfg.Holder)
	}
	out, err = a.Run(ctx, t.Params)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxOutputBytes {
		return nil, fmt.Errorf("output of %d bytes exceeds the limit of %d bytes", len(out), MaxOutputBytes)
	}
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("action %s returned invalid JSON", t.Action)
	}
	return out, nil
}
