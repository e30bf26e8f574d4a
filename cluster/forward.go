package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/fsm"
	"github.com/nebula-engine/nebula/storage"
)

// Writes reach the leader from any node: a follower forwards the encoded
// command to the leader's internal endpoint, which proposes it there and
// sends back what applying it produced. The caller sees no difference but
// latency. Internal calls travel on the peer transport, to the leader's
// Raft address.

const (
	internalSubmitPath = "/internal/v1/submit"
	internalReadPath   = "/internal/v1/read-index"
	internalStatusPath = "/internal/v1/status"
	maxCommandBytes    = 64 << 20
)

// Submit proposes cmd and waits until it is applied, returning what
// applying it produced. On a follower the command is forwarded to the
// leader. With no leader it waits up to Config.LeaderWait for one, then
// fails with ErrNoLeader.
func (n *Node) Submit(ctx context.Context, cmd engine.Command) (engine.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.LeaderWait+n.cfg.ApplyTimeout)
	defer cancel()
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for {
		if n.raft.State() == raft.Leader {
			res, err := n.submitLocal(ctx, cmd)
			if !errors.Is(err, ErrNoLeader) {
				return res, err
			}
		} else if addr, ok := n.leaderAddr(); ok {
			res, err := n.forward(ctx, addr, cmd)
			if !errors.Is(err, ErrNoLeader) {
				return res, err
			}
		}
		// No leader, or the one we knew stepped down: an election is
		// under way. Wait for it, boundedly.
		if time.Now().After(deadline) {
			return engine.Result{}, ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return engine.Result{}, ErrNoLeader
		case <-n.stop:
			return engine.Result{}, ErrShutdown
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// leaderAddr returns the peer address of the current leader, if it is
// known and another node.
func (n *Node) leaderAddr() (string, bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" || id == raft.ServerID(n.cfg.NodeID) || n.peers == nil || addr == "" {
		return "", false
	}
	return string(addr), true
}

// forward sends cmd to the leader at addr.
func (n *Node) forward(ctx context.Context, addr string, cmd engine.Command) (engine.Result, error) {
	body, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return engine.Result{}, err
	}
	var wr wireResult
	if err := n.internalCall(ctx, addr, internalSubmitPath, body, &wr); err != nil {
		return engine.Result{}, err
	}
	if wr.Execution != nil {
		// The answer carries everything the caller needs (the execution
		// ended within the command), so it goes back at once: this node
		// learns that the entry committed only from the leader's next
		// message, up to Raft's CommitTimeout later. Its local reads wait
		// for the entry instead (WaitAcknowledged), so they still see it.
		for {
			cur := n.acked.Load()
			if wr.Index <= cur || n.acked.CompareAndSwap(cur, wr.Index) {
				break
			}
		}
		return wr.result(), nil
	}
	// Read your writes: answer once this node has applied the entry, so
	// that the caller's next local read sees what the command wrote.
	if err := n.waitApplied(ctx, wr.Index); err != nil {
		return engine.Result{}, err
	}
	return wr.result(), nil
}

// WaitAcknowledged returns once this node has applied every write it
// acknowledged, so that a local read sees them all: read your writes on
// the node that answered.
func (n *Node) WaitAcknowledged(ctx context.Context) error {
	idx := n.acked.Load()
	if n.fsm.AppliedIndex() >= idx {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	return n.waitApplied(ctx, idx)
}

// internalCall posts body to a peer's internal endpoint and decodes the
// JSON answer. Network failures mean the peer may be gone: ErrNoLeader, so
// that the caller waits for the next leader.
func (n *Node) internalCall(ctx context.Context, addr, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout+5*time.Second)
	defer cancel()
	resp, err := n.peers.request(ctx, http.MethodPost, addr, path, body)
	if err != nil {
		n.logger.Debug("internal call failed", "peer", addr, "path", path, "err", err)
		return fmt.Errorf("%w: leader %s unreachable", ErrNoLeader, addr)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCommandBytes))
	if err != nil {
		return fmt.Errorf("%w: reading answer of %s: %v", ErrNoLeader, addr, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return json.Unmarshal(b, out)
	case http.StatusServiceUnavailable:
		// The peer is not (or no longer) the leader.
		return ErrNoLeader
	case http.StatusUnauthorized:
		n.logger.Error("a peer refused this node's cluster secret: do all nodes hold the same master key?", "peer", addr)
		return fmt.Errorf("%w: %s refused this node's cluster secret", ErrNoLeader, addr)
	default:
		return fmt.Errorf("cluster: %s%s answered %d: %s", addr, path, resp.StatusCode, bytes.TrimSpace(b))
	}
}

// internalHandler serves the internal endpoints other nodes call, on the
// peer transport.
func (n *Node) internalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+internalSubmitPath, n.serveSubmit)
	mux.HandleFunc("POST "+internalReadPath, n.serveReadIndex)
	mux.HandleFunc("POST "+internalStatusPath, n.serveStatus)
	if n.cfg.Blobs != nil {
		mux.Handle(internalBlobsPath, blobHandler(n.cfg.Blobs))
	}
	return mux
}

func (n *Node) serveSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCommandBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd, err := fsm.DecodeCommand(body)
	if err != nil || cmd == nil {
		http.Error(w, fmt.Sprintf("bad command: %v", err), http.StatusBadRequest)
		return
	}
	// Only the leader proposes: forwarding twice could loop.
	res, err := n.submitLocal(r.Context(), cmd)
	if errors.Is(err, ErrNoLeader) {
		http.Error(w, "not the leader", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		res = engine.Result{Err: err}
	}
	writeWire(w, newWireResult(res))
}

// submitLocal proposes on this node, which must lead.
func (n *Node) submitLocal(ctx context.Context, cmd engine.Command) (engine.Result, error) {
	if n.raft.State() != raft.Leader {
		return engine.Result{}, ErrNoLeader
	}
	p := &proposal{cmd: cmd, done: make(chan outcome, 1)}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return engine.Result{}, ctx.Err()
	case <-n.stop:
		return engine.Result{}, ErrShutdown
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return engine.Result{}, ctx.Err()
	}
}

// ReadBarrier returns once this node's state holds every write that was
// acknowledged before the call: a read after it is linearizable. The
// leader proves it still leads by committing a barrier through a quorum
// (a deposed leader cannot); a follower asks the leader for that index and
// waits until it has applied it.
func (n *Node) ReadBarrier(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for {
		var idx uint64
		var err error
		if n.raft.State() == raft.Leader {
			idx, err = n.leaderReadIndex()
		} else if addr, ok := n.leaderAddr(); ok {
			var ans struct {
				Index uint64 `json:"index"`
			}
			err = n.internalCall(ctx, addr, internalReadPath, nil, &ans)
			idx = ans.Index
		} else {
			err = ErrNoLeader
		}
		if err == nil {
			return n.waitApplied(ctx, idx)
		}
		if !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ErrNoLeader
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *Node) leaderReadIndex() (uint64, error) {
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		err = translate(err)
		if errors.Is(err, ErrUnknownOutcome) {
			// A barrier changes nothing: losing leadership during one
			// leaves no outcome to be unsure of, only a leader to wait for.
			return 0, ErrNoLeader
		}
		return 0, err
	}
	return n.fsm.AppliedIndex(), nil
}

func (n *Node) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	if n.raft.State() != raft.Leader {
		http.Error(w, "not the leader", http.StatusServiceUnavailable)
		return
	}
	idx, err := n.leaderReadIndex()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"index":` + strconv.FormatUint(idx, 10) + `}`))
}

func (n *Node) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]uint64{"applied": n.raft.AppliedIndex()})
}

// maxPromoteLag is how many committed entries a non-voter may still miss
// when it is promoted.
const maxPromoteLag = 256

// CaughtUp reports whether the member has applied about everything this
// leader committed (within maxPromoteLag entries); it asks the member's
// internal endpoint. Unreachable means no.
func (n *Node) CaughtUp(ctx context.Context, m Member) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var st struct {
		Applied uint64 `json:"applied"`
	}
	if m.Meta.RaftAddr == "" || n.peers == nil || n.internalCall(ctx, m.Meta.RaftAddr, internalStatusPath, nil, &st) != nil {
		return false
	}
	return st.Applied+maxPromoteLag >= n.raft.CommitIndex()
}

// waitApplied waits until the local state has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for n.fsm.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: state did not catch up to index %d", storage.ErrUnavailable, index)
		case <-t.C:
		}
	}
	return nil
}

// wireResult is engine.Result as it crosses between nodes.
type wireResult struct {
	Err         *wireError         `json:"err,omitempty"`
	Index       uint64             `json:"index"`
	Version     int                `json:"version,omitempty"`
	ExecutionID string             `json:"execution_id,omitempty"`
	Execution   *storage.Execution `json:"execution,omitempty"`
	Created     bool               `json:"created,omitempty"`
	Tasks       []*storage.Task    `json:"tasks,omitempty"`
	Accepted    bool               `json:"accepted,omitempty"`
	Reclaimed   int                `json:"reclaimed,omitempty"`
	Fired       int                `json:"fired,omitempty"`
	Continued   int                `json:"continued,omitempty"`
	Deferred    int                `json:"deferred,omitempty"`
}

type wireError struct {
	Kind string `json:"kind"`
	Msg  string `json:"msg"`
}

// errorKinds are the refusals that keep their identity across nodes.
var errorKinds = []struct {
	kind string
	err  error
}{
	{"not_found", storage.ErrNotFound},
	{"conflict", storage.ErrConflict},
	{"no_leader", storage.ErrNoLeader},
	{"unavailable", storage.ErrUnavailable},
	{"stale_lease", engine.ErrStaleLease},
	{"invalid_workflow", engine.ErrInvalidWorkflow},
	{"invalid_action", engine.ErrInvalidAction},
	{"quota_exceeded", engine.ErrQuotaExceeded},
}

func newWireResult(r engine.Result) *wireResult {
	w := &wireResult{Index: r.Index, Version: r.Version, ExecutionID: r.ExecutionID, Execution: r.Execution, Created: r.Created, Tasks: r.Tasks, Accepted: r.Accepted, Reclaimed: r.Reclaimed,
		Fired: r.Fired, Continued: r.Continued, Deferred: r.Deferred}
	if r.Err != nil {
		w.Err = &wireError{Kind: "error", Msg: r.Err.Error()}
		for _, k := range errorKinds {
			if errors.Is(r.Err, k.err) {
				w.Err.Kind = k.kind
				break
			}
		}
	}
	return w
}

func (w *wireResult) result() engine.Result {
	r := engine.Result{Index: w.Index, Version: w.Version, ExecutionID: w.ExecutionID, Execution: w.Execution, Created: w.Created, Tasks: w.Tasks, Accepted: w.Accepted, Reclaimed: w.Reclaimed,
		Fired: w.Fired, Continued: w.Continued, Deferred: w.Deferred}
	if w.Err != nil {
		r.Err = &remoteError{msg: w.Err.Msg}
		for _, k := range errorKinds {
			if k.kind == w.Err.Kind {
				r.Err = &remoteError{msg: w.Err.Msg, kind: k.err}
			}
		}
	}
	return r
}

// remoteError is a refusal that happened on the leader.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func writeWire(w http.ResponseWriter, v *wireResult) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
