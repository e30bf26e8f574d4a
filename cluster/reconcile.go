package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ReconcileConfig configures Bootstrap, Reconcile and GracefulLeave.
type ReconcileConfig struct {
	Raft *raft.Raft
	// Members is required except by Bootstrap with BootstrapExpect 1.
	Members *Membership
	// Self is this node as it gossips itself; Bootstrap with
	// BootstrapExpect 1 takes its Raft address from here.
	Self MemberMeta
	// BootstrapExpect is how many coordinators form the first group. 1
	// bootstraps alone at once, without gossip; N waits until N are seen;
	// 0 never bootstraps and only waits to be added to an existing group.
	BootstrapExpect int
	// DeadGrace is how long a member may be dead, or a server unknown to
	// gossip, before it is removed from Raft; zero picks 60s. A restart
	// within the grace keeps the server's place.
	DeadGrace time.Duration
	// PromoteAfter is how long a server stays a non-voter, with the
	// leader's heartbeats reaching it, before it gets a vote; zero picks
	// 10s. A voter that cannot keep up would slow every commit.
	PromoteAfter time.Duration
	// CaughtUp, if set, must also hold before a non-voter is promoted:
	// it reports whether the member has applied about everything the
	// leader committed, so that it does not join the quorum far behind.
	CaughtUp func(ctx context.Context, m Member) bool
	// Interval is the period of the full reconcile, which also runs on
	// every membership change; zero picks 2s.
	Interval time.Duration
	Logger   *slog.Logger
}

func (c ReconcileConfig) withDefaults() ReconcileConfig {
	if c.DeadGrace == 0 {
		c.DeadGrace = 60 * time.Second
	}
	if c.PromoteAfter == 0 {
		c.PromoteAfter = 10 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

const (
	// changeTimeout bounds how long a configuration change or barrier
	// waits to enter the Raft log.
	changeTimeout = 10 * time.Second
	// bootstrapPoll is how often Bootstrap looks at the Raft
	// configuration: being added by a leader is not a gossip event.
	bootstrapPoll = 100 * time.Millisecond
)

// Bootstrap returns once this node belongs to a Raft group.
//
// A node with a Raft configuration returns at once. Otherwise it waits
// until BootstrapExpect alive coordinators (itself included) are seen, none
// of which has state, and bootstraps them all as voters: the N smallest
// IDs, so that every node computes the same configuration and nodes
// started together, or some late, form one group. If any seen coordinator
// has state, a group exists: the node waits for its leader to add it.
//
// As with any expect-style bootstrap, BootstrapExpect must match the
// number of coordinators first started together: a larger set seen in
// different orders could pick different N.
func Bootstrap(ctx context.Context, cfg ReconcileConfig) error {
	cfg = cfg.withDefaults()
	if cfg.Self.ID == "" {
		return errors.New("cluster: bootstrap: self id is required")
	}
	joined, err := hasConfiguration(cfg.Raft)
	if err != nil {
		return err
	}
	if joined {
		markHasState(cfg)
		return nil
	}
	if cfg.BootstrapExpect == 1 {
		if cfg.Self.RaftAddr == "" {
			return errors.New("cluster: bootstrap: self raft address is required")
		}
		servers := []raft.Server{{ID: raft.ServerID(cfg.Self.ID), Address: raft.ServerAddress(cfg.Self.RaftAddr), Suffrage: raft.Voter}}
		if err := bootstrap(ctx, cfg, servers); err != nil {
			return err
		}
		markHasState(cfg)
		return nil
	}
	if cfg.Members == nil {
		return errors.New("cluster: bootstrap: membership is required unless BootstrapExpect is 1")
	}

	tick := time.NewTicker(bootstrapPoll)
	defer tick.Stop()
	var waitingFor string
	for {
		joined, err := hasConfiguration(cfg.Raft)
		if err != nil {
			return err
		}
		if joined {
			cfg.Logger.Info("added to a raft group")
			markHasState(cfg)
			return nil
		}
		servers, reason := bootstrapServers(cfg.Members.Members(), cfg.BootstrapExpect, cfg.Self.ID)
		if servers != nil {
			if err := bootstrap(ctx, cfg, servers); err != nil {
				return err
			}
			markHasState(cfg)
			return nil
		}
		if reason != waitingFor {
			waitingFor = reason
			cfg.Logger.Info("waiting to bootstrap", "reason", reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: bootstrap: %w", ctx.Err())
		case <-cfg.Members.Changes():
		case <-tick.C:
		}
	}
}

// bootstrapServers picks the first configuration from gossip, or returns
// nil and why not yet.
func bootstrapServers(members []Member, expect int, self string) ([]raft.Server, string) {
	if expect < 1 {
		return nil, "bootstrap disabled; waiting to be added"
	}
	var seen []MemberMeta
	for _, m := range members {
		if m.Status != StatusAlive || m.Meta.Role != RoleCoordinator {
			continue
		}
		if m.Meta.HasState {
			return nil, fmt.Sprintf("%s already has raft state; waiting to be added", m.Meta.ID)
		}
		if m.Meta.RaftAddr == "" {
			continue
		}
		seen = append(seen, m.Meta)
	}
	if len(seen) < expect {
		return nil, fmt.Sprintf("seen %d of %d coordinators", len(seen), expect)
	}
	slices.SortFunc(seen, func(a, b MemberMeta) int { return strings.Compare(a.ID, b.ID) })
	seen = seen[:expect]
	if !slices.ContainsFunc(seen, func(m MemberMeta) bool { return m.ID == self }) {
		return nil, fmt.Sprintf("not among the first %d coordinators; waiting to be added", expect)
	}
	servers := make([]raft.Server, len(seen))
	for i, m := range seen {
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr)}
	}
	return servers, ""
}

func bootstrap(ctx context.Context, cfg ReconcileConfig, servers []raft.Server) error {
	err := waitFuture(ctx, cfg.Raft.BootstrapCluster(raft.Configuration{Servers: servers}))
	// ErrCantBootstrap means state appeared since we looked: a leader
	// added us in the meantime, which is what bootstrapping was for.
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	ids := make([]raft.ServerID, len(servers))
	for i, s := range servers {
		ids[i] = s.ID
	}
	cfg.Logger.Info("bootstrapped raft group", "voters", ids)
	return nil
}

// markHasState gossips that this node has a group, so a late coordinator
// waits to be added instead of bootstrapping another.
func markHasState(cfg ReconcileConfig) {
	if cfg.Members != nil {
		cfg.Members.SetHasState(true)
	}
}

func hasConfiguration(r *raft.Raft) (bool, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, fmt.Errorf("cluster: raft configuration: %w", err)
	}
	return len(f.Configuration().Servers) > 0, nil
}

// waitFuture waits for f or ctx. Raft futures cannot be cancelled, but
// every one resolves, at the latest when Raft shuts down, so the waiting
// goroutine does not outlive the node.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconcile makes the Raft configuration follow gossip until ctx ends. It
// acts only while this node leads (checked each round by polling, since
// the node's LeaderCh has its own reader), and only after a barrier, so it
// reasons about a configuration no older than its own term:
//
//   - an alive coordinator not in the configuration is added as non-voter;
//   - a non-voter alive for PromoteAfter, and reached by heartbeats, is
//     promoted to voter;
//   - a server whose member left gracefully is removed at once;
//   - a server whose member has been dead for DeadGrace, or that gossip has
//     not known for DeadGrace, is removed;
//   - a server whose member now gossips another Raft address is updated.
//
// It never removes this node, and removes at most one voter per round.
func Reconcile(ctx context.Context, cfg ReconcileConfig) {
	cfg = cfg.withDefaults()
	r := &reconciler{
		cfg:           cfg,
		self:          raft.ServerID(cfg.Self.ID),
		nonvoterSince: make(map[raft.ServerID]time.Time),
		unknownSince:  make(map[raft.ServerID]time.Time),
		hb:            newHeartbeats(),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.hb.watch(ctx, cfg.Raft)
	}()
	defer wg.Wait()

	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		r.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-cfg.Members.Changes():
		case <-tick.C:
		}
	}
}

type reconciler struct {
	cfg  ReconcileConfig
	self raft.ServerID

	leading bool
	term    uint64
	// Both are measured from when this leader first saw the server so,
	// and restart with each term: a new leader waits a full period.
	nonvoterSince map[raft.ServerID]time.Time
	unknownSince  map[raft.ServerID]time.Time
	hb            *heartbeats
}

type action string

const (
	actionAddNonvoter action = "add_nonvoter"
	actionPromote     action = "promote"
	actionRemove      action = "remove"
	actionUpdateAddr  action = "update_address"
)

type change struct {
	action   action
	id       raft.ServerID
	addr     raft.ServerAddress
	suffrage raft.ServerSuffrage // for actionUpdateAddr
	reason   string
}

func (r *reconciler) round(ctx context.Context) {
	rf := r.cfg.Raft
	if rf.State() != raft.Leader {
		r.leading = false
		return
	}
	term := rf.CurrentTerm()
	if !r.leading || term != r.term {
		r.leading = false
		if err := waitFuture(ctx, rf.Barrier(changeTimeout)); err != nil {
			if ctx.Err() == nil {
				r.cfg.Logger.Warn("barrier before reconcile failed", "term", term, "err", err)
			}
			return
		}
		clear(r.nonvoterSince)
		clear(r.unknownSince)
		r.hb.reset()
		r.leading, r.term = true, term
		r.cfg.Logger.Info("reconciling membership", "term", term)
	}

	f := rf.GetConfiguration()
	if err := f.Error(); err != nil {
		r.cfg.Logger.Warn("reading raft configuration", "err", err)
		return
	}
	index := f.Index()
	members := r.cfg.Members.Members()
	for _, c := range r.plan(time.Now(), f.Configuration().Servers, members) {
		if c.action == actionPromote && r.cfg.CaughtUp != nil && !r.caughtUp(ctx, c.id, members) {
			r.cfg.Logger.Info("promotion waits: member still catching up", "member", c.id, "term", term)
			continue
		}
		next, err := r.apply(ctx, c, index)
		if err != nil {
			if ctx.Err() == nil {
				r.cfg.Logger.Warn("membership change failed", "member", c.id, "action", c.action, "term", term, "err", err)
			}
			// The configuration moved or leadership went; the next
			// round starts from whatever it is now.
			return
		}
		r.cfg.Logger.Info("membership changed", "member", c.id, "action", c.action, "reason", c.reason, "addr", c.addr, "term", term, "index", next)
		index = next
	}
}

func (r *reconciler) caughtUp(ctx context.Context, id raft.ServerID, members []Member) bool {
	for _, m := range members {
		if raft.ServerID(m.Meta.ID) == id {
			return r.cfg.CaughtUp(ctx, m)
		}
	}
	return false
}

// plan decides the changes that bring the configuration in line with
// gossip, removals first. It also keeps the timers plan depends on.
func (r *reconciler) plan(now time.Time, servers []raft.Server, members []Member) []change {
	byID := make(map[raft.ServerID]Member, len(members))
	for _, m := range members {
		byID[raft.ServerID(m.Meta.ID)] = m
	}
	r.track(now, servers, byID)

	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	var removals, updates []change
	removedVoter := false
	for _, s := range servers {
		if s.ID == r.self {
			continue
		}
		m, known := byID[s.ID]
		var reason string
		switch {
		case !known:
			if now.Sub(r.unknownSince[s.ID]) >= r.cfg.DeadGrace {
				reason = "unknown to gossip"
			}
		case m.Status == StatusLeft:
			reason = "left"
		case m.Status == StatusDead && now.Sub(m.Since) >= r.cfg.DeadGrace:
			reason = "dead"
		}
		if reason != "" {
			if s.Suffrage == raft.Voter {
				// One voter at a time: each removal shrinks the quorum
				// the next one is judged against.
				if removedVoter || voters-1 < 1 {
					continue
				}
				removedVoter = true
				voters--
			}
			removals = append(removals, change{action: actionRemove, id: s.ID, addr: s.Address, reason: reason})
			continue
		}
		if !known || m.Status != StatusAlive {
			continue
		}
		addr := raft.ServerAddress(m.Meta.RaftAddr)
		if addr == "" {
			addr = s.Address
		}
		if s.Suffrage == raft.Nonvoter && m.Meta.Role == RoleCoordinator &&
			now.Sub(r.nonvoterSince[s.ID]) >= r.cfg.PromoteAfter && !r.hb.failing(s.ID) {
			updates = append(updates, change{action: actionPromote, id: s.ID, addr: addr, reason: "stable"})
			continue
		}
		if addr != s.Address {
			updates = append(updates, change{action: actionUpdateAddr, id: s.ID, addr: addr, suffrage: s.Suffrage, reason: "address changed"})
		}
	}
	for _, m := range members {
		id := raft.ServerID(m.Meta.ID)
		if m.Status != StatusAlive || m.Meta.Role != RoleCoordinator || m.Meta.RaftAddr == "" {
			continue
		}
		if slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == id }) {
			continue
		}
		updates = append(updates, change{action: actionAddNonvoter, id: id, addr: raft.ServerAddress(m.Meta.RaftAddr), reason: "alive coordinator"})
	}
	return append(removals, updates...)
}

// track starts and stops the per-server timers: time as a non-voter, and
// time unknown to gossip.
func (r *reconciler) track(now time.Time, servers []raft.Server, members map[raft.ServerID]Member) {
	inConf := make(map[raft.ServerID]bool, len(servers))
	for _, s := range servers {
		inConf[s.ID] = true
		setSince(r.nonvoterSince, s.ID, now, s.Suffrage == raft.Nonvoter)
		_, known := members[s.ID]
		setSince(r.unknownSince, s.ID, now, !known)
	}
	for _, m := range []map[raft.ServerID]time.Time{r.nonvoterSince, r.unknownSince} {
		for id := range m {
			if !inConf[id] {
				delete(m, id)
			}
		}
	}
}

func setSince(m map[raft.ServerID]time.Time, id raft.ServerID, now time.Time, holds bool) {
	if !holds {
		delete(m, id)
		return
	}
	if _, ok := m[id]; !ok {
		m[id] = now
	}
}

func (r *reconciler) apply(ctx context.Context, c change, prevIndex uint64) (uint64, error) {
	rf := r.cfg.Raft
	var f raft.IndexFuture
	switch {
	case c.action == actionAddNonvoter, c.action == actionUpdateAddr && c.suffrage == raft.Nonvoter:
		f = rf.AddNonvoter(c.id, c.addr, prevIndex, changeTimeout)
	case c.action == actionPromote, c.action == actionUpdateAddr:
		f = rf.AddVoter(c.id, c.addr, prevIndex, changeTimeout)
	case c.action == actionRemove:
		f = rf.RemoveServer(c.id, prevIndex, changeTimeout)
	default:
		panic("cluster: unknown membership action " + string(c.action))
	}
	if err := waitFuture(ctx, f); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

// heartbeats follows the leader's heartbeat failures, which is how Raft
// exposes a follower's last contact: a server is failing from its first
// failed heartbeat until one succeeds again.
type heartbeats struct {
	mu   sync.Mutex
	fail map[raft.ServerID]bool
}

func newHeartbeats() *heartbeats {
	return &heartbeats{fail: make(map[raft.ServerID]bool)}
}

// watch records observations until ctx ends.
func (h *heartbeats) watch(ctx context.Context, r *raft.Raft) {
	// Raft drops observations when the channel is full rather than block
	// replication; the buffer and a reader doing nothing else keep a
	// dropped "resumed" (which would bar a promotion) unlikely.
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-ch:
			h.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				h.fail[d.PeerID] = true
			case raft.ResumedHeartbeatObservation:
				delete(h.fail, d.PeerID)
			}
			h.mu.Unlock()
		}
	}
}

func (h *heartbeats) failing(id raft.ServerID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fail[id]
}

// reset forgets failures of an earlier term, whose replication is gone.
func (h *heartbeats) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.fail)
}

// GracefulLeave is a coordinator's graceful exit, bounded by ctx. A leader
// first hands leadership to another voter, so the group does not wait out
// an election timeout; then the node leaves gossip, which makes the
// (new) leader remove it from Raft at once instead of after DeadGrace.
func GracefulLeave(ctx context.Context, cfg ReconcileConfig) error {
	cfg = cfg.withDefaults()
	if cfg.Raft.State() == raft.Leader {
		switch err := waitFuture(ctx, cfg.Raft.LeadershipTransfer()); {
		case err == nil:
			_, leader := cfg.Raft.LeaderWithID()
			cfg.Logger.Info("leadership transferred before leaving", "leader", leader)
		case errors.Is(err, raft.ErrUnsupportedProtocol):
		default:
			// A group of one has no one to hand over to; leaving is
			// still right, the others will elect after a timeout.
			cfg.Logger.Info("leadership transfer before leaving failed", "err", err)
		}
	}
	if cfg.Members == nil {
		return nil
	}
	if err := cfg.Members.Leave(ctx); err != nil {
		return err
	}
	cfg.Logger.Info("left membership")
	return nil
}
