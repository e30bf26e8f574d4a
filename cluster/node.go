// Package cluster runs Nebula's replicated log: a hashicorp/raft node over
// raft-boltdb storage, feeding the fsm package, with group commit of
// concurrent proposals into shared log entries.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/fsm"
	"github.com/nebula-engine/nebula/storage"
)

// Errors a proposal may meet before or after it reaches the log.
var (
	// ErrNoLeader: this node is not the leader and knows of none that
	// could take the write.
	ErrNoLeader = storage.ErrNoLeader
	// ErrUnknownOutcome: leadership was lost while the write was in
	// flight; it may or may not have been applied.
	ErrUnknownOutcome = fmt.Errorf("%w: leadership lost, outcome unknown", storage.ErrUnavailable)
	// ErrShutdown: the node is stopping.
	ErrShutdown = fmt.Errorf("%w: node is shutting down", storage.ErrUnavailable)
)

// Config configures a Node.
type Config struct {
	NodeID string
	// Dir holds the Raft log, stable store and snapshots.
	Dir string
	// Transport carries Raft and the internal endpoints between peers
	// (see Listen); the node closes it when it closes. Nil means a group
	// of one that never talks to peers: an in-memory transport, no port
	// opened.
	Transport *Transport
	// Blobs, when set, is the local blob store served to peers for blob
	// copies (see ReplicatedBlobs).
	Blobs storage.BlobStore
	// Bootstrap makes a node with no Raft state start a group of one.
	Bootstrap bool
	FSM       *fsm.FSM
	Logger    *slog.Logger

	// HeartbeatTimeout also sets the election and leader lease timeouts;
	// zero picks 1s (or 100ms for a group of one, where nothing can be
	// lost by electing fast).
	HeartbeatTimeout time.Duration
	// SnapshotThreshold is the number of entries after which a snapshot
	// is taken and the log trimmed; zero picks 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked; zero picks
	// 30s.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log, so
	// that a follower a little behind catches up from the log rather
	// than a snapshot; zero picks SnapshotThreshold.
	TrailingLogs uint64
	// MaxBatch caps the commands sharing one log entry; zero picks 1024.
	MaxBatch int
	// ApplyTimeout bounds how long a proposal waits to enter the log;
	// zero picks 10s.
	ApplyTimeout time.Duration
	// LeaderWait bounds how long a write waits for a leader to exist
	// before it fails with ErrNoLeader; zero picks 5s.
	LeaderWait time.Duration
	// OnApply, if set, is told how long each batch of committed entries
	// took to apply to the state store. It runs on the apply path and
	// must not block.
	OnApply func(d time.Duration, entries int)
	// OnLeaderChange, if set, is called each time this node sees a new
	// leader (itself included).
	OnLeaderChange func()
}

// Node is one member of the Raft group.
type Node struct {
	cfg    Config
	logger *slog.Logger
	raft   *raft.Raft
	fsm    *fsm.FSM
	stores io.Closer

	proposals chan *proposal
	inflight  chan struct{}
	peers     *Transport             // nil for a group of one
	transport *raft.NetworkTransport // nil for a group of one

	ready     atomic.Bool // leader with its FSM caught up
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	// leaders carries Raft's leader observations; LeaderCh alone tells
	// only of this node's own leadership, so a follower would never see
	// a change.
	leaders       chan raft.Observation
	leaderChanges atomic.Uint64
	// acked is the highest log index whose command this node acknowledged
	// before applying it (see forward); its local reads wait for it.
	acked atomic.Uint64
}

type proposal struct {
	cmd  engine.Command
	done chan outcome
}

type outcome struct {
	res engine.Result
	err error
}

// Open starts a Raft node.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("cluster: node id is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	single := cfg.Transport == nil
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = time.Second
		if single {
			cfg.HeartbeatTimeout = 100 * time.Millisecond
		}
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 30 * time.Second
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.LeaderWait == 0 {
		cfg.LeaderWait = 5 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}

	hl := hclogFor(logger, "raft")
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	if rc.TrailingLogs == 0 {
		rc.TrailingLogs = cfg.SnapshotThreshold
	}
	rc.BatchApplyCh = true

	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft log: %w", err)
	}
	var tcp *raft.NetworkTransport
	started := false
	defer func() {
		if !started {
			if tcp != nil {
				tcp.Close() // and with it cfg.Transport
			} else if cfg.Transport != nil {
				cfg.Transport.Close()
			}
			bolt.Close()
		}
	}()
	logs, err := raft.NewLogCache(1024, bolt)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	snaps, err := newSnapshotStore(cfg.Dir, hl, logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: open snapshots: %w", err)
	}
	// The state store survives restarts with every entry it applied, so a
	// restart normally replays only the entries after it. Only a store
	// that is behind the newest snapshot (e.g. a fresh data dir under an
	// old raft dir) must be restored from that snapshot first.
	restore, err := needsRestore(snaps, cfg.FSM.AppliedIndex())
	if err != nil {
		return nil, err
	}
	rc.NoSnapshotRestoreOnStart = !restore

	var trans raft.Transport
	var addr raft.ServerAddress
	if single {
		addr, trans = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	} else {
		tcp = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  &raftStream{chanListener{t: cfg.Transport, conns: cfg.Transport.raftConns}},
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  hl,
		})
		addr, trans = tcp.LocalAddr(), tcp
	}

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, bolt, snaps)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: addr}}}
			if err := raft.BootstrapCluster(rc, logs, bolt, snaps, trans, conf); err != nil {
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}

	n := &Node{
		cfg:       cfg,
		logger:    logger,
		fsm:       cfg.FSM,
		stores:    bolt,
		proposals: make(chan *proposal, 4*cfg.MaxBatch),
		// Two entries in flight: one being written while the previous
		// one applies. More would shrink batches without adding speed.
		inflight:  make(chan struct{}, 2),
		stop:      make(chan struct{}),
		peers:     cfg.Transport,
		transport: tcp,
		leaders:   make(chan raft.Observation, 16),
	}
	r, err := raft.NewRaft(rc, &raftFSM{f: cfg.FSM, logger: logger, onApply: cfg.OnApply, dir: cfg.Dir}, logs, bolt, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	started = true
	n.raft = r
	// Registered right after the start: an election takes at least a
	// heartbeat timeout, so the first leader is almost always seen. Not
	// blocking: Raft must never wait for a counter; a full channel drops
	// an observation.
	r.RegisterObserver(raft.NewObserver(n.leaders, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	if n.peers != nil {
		n.peers.serve(n.internalHandler())
	}
	n.wg.Add(2)
	go n.batchLoop()
	go n.leadershipLoop()
	return n, nil
}

func needsRestore(snaps raft.SnapshotStore, applied uint64) (bool, error) {
	list, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("cluster: list snapshots: %w", err)
	}
	return len(list) > 0 && list[0].Index > applied, nil
}

// batchLoop is the group commit: it waits for a free in-flight slot, then
// cuts one log entry from every proposal waiting at that moment. Under load
// proposals pile up while earlier entries are written, so one fsync
// carries many commands; when idle a lone proposal goes out at once.
func (n *Node) batchLoop() {
	defer n.wg.Done()
	batch := make([]*proposal, 0, n.cfg.MaxBatch)
	for {
		select {
		case n.inflight <- struct{}{}:
		case <-n.stop:
			return
		}
		var first *proposal
		select {
		case first = <-n.proposals:
		case <-n.stop:
			return
		}
		batch = append(batch[:0], first)
	drain:
		for len(batch) < n.cfg.MaxBatch {
			select {
			case p := <-n.proposals:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		n.propose(fairOrder(batch))
		batch = make([]*proposal, 0, n.cfg.MaxBatch)
	}
}

// fairOrder orders a batch so that tenants take turns: the first command
// of each tenant, in the order they arrived, then the second of each, and
// so on; one tenant's commands keep their order. A burst from one tenant
// then shares the entry's budget of inline work (engine.Budget) with the
// others rather than spending it before them. The system's own commands
// (claims, reports, timers) count as one more tenant.
func fairOrder(batch []*proposal) []*proposal {
	if len(batch) < 3 {
		return batch
	}
	var order []string
	groups := make(map[string][]*proposal)
	for _, p := range batch {
		t := engine.TenantOf(p.cmd)
		if _, ok := groups[t]; !ok {
			order = append(order, t)
		}
		groups[t] = append(groups[t], p)
	}
	if len(order) == 1 {
		return batch
	}
	out := make([]*proposal, 0, len(batch))
	for turn := 0; len(out) < len(batch); turn++ {
		for _, t := range order {
			if g := groups[t]; turn < len(g) {
				out = append(out, g[turn])
			}
		}
	}
	return out
}

// propose writes one entry and answers its proposals when it is applied.
func (n *Node) propose(batch []*proposal) {
	cmds := make([]engine.Command, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	data, err := fsm.EncodeBatch(time.Now(), cmds)
	if err != nil {
		n.answer(batch, nil, err)
		<-n.inflight
		return
	}
	fut := n.raft.Apply(data, n.cfg.ApplyTimeout)
	go func() {
		err := fut.Error()
		// The slot is free before the answers go out: the next entry is
		// proposed before the woken handlers crowd the scheduler.
		<-n.inflight
		if err != nil {
			n.answer(batch, nil, translate(err))
			return
		}
		res, _ := fut.Response().([]engine.Result)
		for i := range res {
			res[i].Index = fut.Index()
		}
		n.answer(batch, res, nil)
	}()
}

func (n *Node) answer(batch []*proposal, res []engine.Result, err error) {
	for i, p := range batch {
		o := outcome{err: err}
		if err == nil {
			if i < len(res) {
				o.res = res[i]
			} else {
				o.err = errors.New("cluster: entry applied without a result")
			}
		}
		p.done <- o
	}
}

func translate(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNoLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrUnknownOutcome
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// leadershipLoop tracks whether this node leads with an FSM that has
// applied everything committed before: only then may it answer as the
// source of truth.
func (n *Node) leadershipLoop() {
	defer n.wg.Done()
	for {
		select {
		case leader := <-n.raft.LeaderCh():
			n.ready.Store(false)
			if !leader {
				n.logger.Info("lost leadership")
				continue
			}
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.logger.Warn("barrier after election failed", "err", err)
				continue
			}
			n.ready.Store(true)
			n.logger.Info("leading", "term", n.raft.CurrentTerm(), "applied", n.fsm.AppliedIndex())
		case o := <-n.leaders:
			// Losing a leader (an empty id) is not a change until a new
			// one is known.
			if lo, _ := o.Data.(raft.LeaderObservation); lo.LeaderID != "" {
				n.leaderChanges.Add(1)
				if n.cfg.OnLeaderChange != nil {
					n.cfg.OnLeaderChange()
				}
			}
		case <-n.stop:
			return
		}
	}
}

// Ready reports whether this node can serve: it leads with its state
// caught up with everything committed before its election, or it follows
// a leader it heard from recently and has applied what that leader
// committed (within a small lag).
func (n *Node) Ready() bool {
	if n.ready.Load() {
		return true
	}
	if n.raft.State() != raft.Follower || n.Leader() == "" {
		return false
	}
	if time.Since(n.raft.LastContact()) > 5*n.cfg.HeartbeatTimeout {
		return false
	}
	// A restarted follower learns the commit index from its first
	// successful append; until then it cannot know how far behind it is.
	commit := n.raft.CommitIndex()
	const maxLag = 64
	return commit > 0 && n.raft.AppliedIndex()+maxLag >= commit
}

// WaitReady blocks until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !n.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// IsLeader reports whether this node leads the group now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the id of the current leader, "" when none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Raft returns the underlying Raft node, for membership management.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Server is one member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Stats returns Raft's view of the node, for diagnostics.
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// RaftMetrics is Raft's view of the node, for monitoring.
type RaftMetrics struct {
	State        raft.RaftState
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// LastContact is when a follower last heard from the leader; zero
	// when it never did. A leader does not update it.
	LastContact time.Time
	// LeaderChanges counts the leaders this node has seen, itself
	// included, since it started.
	LeaderChanges uint64
}

// Metrics returns Raft's view of the node. Unlike Stats it builds no
// strings and takes no configuration lock, so it is cheap to call at each
// scrape.
func (n *Node) Metrics() RaftMetrics {
	return RaftMetrics{
		State:         n.raft.State(),
		Term:          n.raft.CurrentTerm(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.raft.AppliedIndex(),
		LastContact:   n.raft.LastContact(),
		LeaderChanges: n.leaderChanges.Load(),
	}
}

// Snapshot forces a snapshot now (and trims the log).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops the node. Proposals not yet in the log fail with
// ErrShutdown.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.stop)
		err = n.raft.Shutdown().Error()
		if n.transport != nil {
			// Raft does not close its transport; its listener would
			// outlive the node.
			n.transport.CloseStreams()
			n.transport.Close()
		}
		n.wg.Wait()
		for {
			select {
			case p := <-n.proposals:
				p.done <- outcome{err: ErrShutdown}
				continue
			default:
			}
			break
		}
		if cerr := n.stores.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// slowApply is the time to apply a batch of entries, commit included,
// above which it is logged.
const slowApply = 100 * time.Millisecond

// raftFSM adapts fsm.FSM to hashicorp/raft.
type raftFSM struct {
	f       *fsm.FSM
	logger  *slog.Logger
	onApply func(d time.Duration, entries int)
	dir     string // of the FileSnapshotStore
}

var _ raft.BatchingFSM = (*raftFSM)(nil)

func (r *raftFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	entries := make([]fsm.Entry, len(logs))
	for i, l := range logs {
		entries[i].Index = l.Index
		if l.Type == raft.LogCommand {
			entries[i].Data = l.Data
		}
	}
	began := time.Now()
	res := r.f.Apply(entries)
	took := time.Since(began)
	if r.onApply != nil {
		r.onApply(took, len(entries))
	}
	if took >= slowApply {
		// Entries slow on their own are logged by the FSM with what
		// they did; this also catches a slow commit.
		r.logger.Warn("slow apply", "entries", len(entries), "first", entries[0].Index, "took", took.Round(time.Microsecond))
	}
	out := make([]interface{}, len(res))
	for i, r := range res {
		if r != nil {
			out[i] = r
		}
	}
	return out
}

func (r *raftFSM) Apply(l *raft.Log) interface{} { return r.ApplyBatch([]*raft.Log{l})[0] }

// Snapshot runs on the apply goroutine, so it only pins the state (see
// fsm.Capture); Persist copies it on Raft's snapshot goroutine.
func (r *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	began := time.Now()
	s, err := r.f.Capture(context.Background())
	if err != nil {
		return nil, err
	}
	r.logger.Info("snapshot pinned", "index", r.f.AppliedIndex(), "apply_paused", time.Since(began).Round(time.Microsecond))
	return &raftSnapshot{s: s, logger: r.logger, dir: r.dir}, nil
}

func (r *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return r.f.Restore(context.Background(), rc)
}

type raftSnapshot struct {
	s      *fsm.Snapshot
	logger *slog.Logger
	dir    string
}

func (s *raftSnapshot) Persist(sink raft.SnapshotSink) error {
	began := time.Now()
	var w io.Writer = sink
	// FileSnapshotStore writes the snapshot to snapshots/<id>.tmp/state.bin
	// (its layout since v1.0); flushing that file as it grows spreads the
	// disk writes over the copy.
	if f, err := os.Open(filepath.Join(s.dir, "snapshots", sink.ID()+".tmp", "state.bin")); err == nil {
		defer f.Close()
		w = &syncingWriter{w: sink, f: f}
	} else {
		s.logger.Debug("snapshot written without intermediate flushes", "err", err)
	}
	n, err := s.s.WriteTo(w)
	if err != nil {
		sink.Cancel()
		return err
	}
	s.logger.Info("snapshot written", "bytes", n, "took", time.Since(began).Round(time.Millisecond))
	return sink.Close()
}

func (s *raftSnapshot) Release() { s.s.Release() }
