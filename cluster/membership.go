package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// RoleCoordinator is the role of nodes that hold the replicated log. Only
// coordinators join Raft; other roles gossip but are never added.
const RoleCoordinator = "coordinator"

// MemberMeta is what each node gossips about itself. It travels in every
// memberlist alive message, so it is kept small (memberlist caps it at
// memberlist.MetaMaxSize bytes).
type MemberMeta struct {
	ID       string `json:"id"`
	Role     string `json:"role"`
	APIAddr  string `json:"api"`
	RaftAddr string `json:"raft"`
	Version  string `json:"version"`
	// HasState reports that the node already belongs to a Raft group
	// (bootstrapped or added). A node that sees it on a peer knows a
	// group exists and must not bootstrap another.
	HasState bool `json:"has_state"`
	// Transport is how the node talks to peers (TransportMTLS or
	// TransportPlain; empty reads as plain) and CA the fingerprint of
	// the CA that signed its certificate. Peers check both before
	// admitting it (Transport.Admit), so that a node that could not
	// complete a Raft handshake is refused by gossip too, with a reason.
	// They are claims, not proof: the handshake is the proof.
	Transport string `json:"transport,omitempty"`
	CA        string `json:"ca,omitempty"`
}

// MemberStatus is a member's gossip status.
type MemberStatus string

// Member statuses.
const (
	StatusAlive MemberStatus = "alive"
	// StatusSuspect is reserved: memberlist neither notifies suspicion nor
	// exposes it without racing on its node table, so a suspected member
	// reads alive until it is confirmed dead.
	StatusSuspect MemberStatus = "suspect"
	StatusDead    MemberStatus = "dead"
	StatusLeft    MemberStatus = "left"
)

// Member is one node as this node's gossip sees it.
type Member struct {
	Meta MemberMeta
	// Addr is the member's gossip host:port.
	Addr   string
	Status MemberStatus
	// Since is when the member entered Status, by the local clock. Reap
	// timers run on it, so it is only ever compared with local time.
	Since time.Time
}

// MembershipConfig configures StartMembership.
type MembershipConfig struct {
	Meta MemberMeta
	// BindAddr is the gossip host:port to bind, TCP and UDP. Port 0 picks
	// a free port (see Membership.Addr).
	BindAddr string
	// AdvertiseAddr is the host:port others reach. Empty derives it from
	// BindAddr; if that binds 0.0.0.0, memberlist picks a private IP.
	AdvertiseAddr string
	// Join lists seeds. They are joined in the background, retrying with
	// backoff until one answers, because a seed may start later than us.
	Join   []string
	Logger *slog.Logger
	// Fast uses timings only fit for loopback (tests): failures are
	// detected in about a second instead of several.
	Fast bool
	// Keys (16, 24 or 32 bytes each) encrypt and authenticate gossip: the
	// first encrypts, any decrypts, so that a rolling key change keeps
	// the pool together. None gossips in the clear.
	Keys [][]byte
	// Admit, if set, decides whether a member may join this node's pool
	// (see Transport.Admit); a refused member is ignored and the refusal
	// logged, at most once a minute per member.
	Admit func(MemberMeta) error
}

// Membership is this node's view of the gossip pool.
type Membership struct {
	id       string
	ml       *memberlist.Memberlist
	logger   *slog.Logger
	admit    func(MemberMeta) error
	refusals *rateLog
	changes  chan struct{}
	// joinMin and joinMax bound the wait between join attempts.
	joinMin, joinMax time.Duration

	// lifeMu serializes changes to our own gossiped state (SetHasState,
	// Leave); it is taken before mu.
	lifeMu  sync.Mutex
	mu      sync.Mutex
	meta    MemberMeta
	members map[string]*Member
	// leaving holds members that announced their leave; see NotifyLeave.
	leaving map[string]bool
	left    bool
	closed  bool

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// StartMembership starts gossiping on cfg.BindAddr. It returns once the
// local listeners are up; joining cfg.Join happens in the background and
// keeps being retried while this node knows no other live member, until
// ctx ends or Shutdown is called.
func StartMembership(ctx context.Context, cfg MembershipConfig) (*Membership, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Meta.ID == "" {
		return nil, errors.New("cluster: membership: node id is required")
	}
	raw, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("cluster: membership: encode meta: %w", err)
	}
	if len(raw) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: membership: meta is %d bytes, limit %d", len(raw), memberlist.MetaMaxSize)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var mc *memberlist.Config
	m := &Membership{
		id:       cfg.Meta.ID,
		logger:   logger,
		admit:    cfg.Admit,
		refusals: newRateLog(time.Minute),
		changes:  make(chan struct{}, 1),
		meta:     cfg.Meta,
		members:  make(map[string]*Member),
		leaving:  make(map[string]bool),
		stop:     make(chan struct{}),
	}
	if cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
		// Loopback never drops packets, so probes can be tight; the
		// suspicion window stays a few probe intervals long so a node
		// starved of CPU for a moment can still refute it.
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.SuspicionMaxTimeoutMult = 2
		mc.GossipInterval = 20 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.GossipToTheDeadTime = 2 * time.Second
		mc.TCPTimeout = 500 * time.Millisecond
		m.joinMin, m.joinMax = 50*time.Millisecond, time.Second
	} else {
		mc = memberlist.DefaultLANConfig()
		m.joinMin, m.joinMax = time.Second, 30*time.Second
	}
	if err := setAddrs(mc, cfg.BindAddr, cfg.AdvertiseAddr); err != nil {
		return nil, err
	}
	mc.Name = cfg.Meta.ID
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("cluster: membership: gossip keys: %w", err)
		}
		mc.Keyring = kr
	}
	mc.Delegate = membershipDelegate{m}
	mc.Events = membershipDelegate{m}
	if cfg.Admit != nil {
		mc.Alive = membershipDelegate{m}
		mc.Merge = membershipDelegate{m}
	}
	mc.Logger = log.New(&memberlistLogWriter{l: logger.With("component", "memberlist")}, "", 0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: membership: %w", err)
	}
	m.ml = ml
	if len(cfg.Join) > 0 {
		m.wg.Add(1)
		go m.joinLoop(ctx, slices.Clone(cfg.Join))
	}
	return m, nil
}

func setAddrs(mc *memberlist.Config, bind, advertise string) error {
	host, port, err := splitHostPort(bind)
	if err != nil {
		return fmt.Errorf("cluster: membership: bind address %q: %w", bind, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	// With port 0, memberlist fills in the port it got.
	mc.AdvertisePort = port
	if advertise != "" {
		host, port, err := splitHostPort(advertise)
		if err != nil {
			return fmt.Errorf("cluster: membership: advertise address %q: %w", advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
		return nil
	}
	// memberlist only knows to look for a private IP when bound to
	// 0.0.0.0; bound to "::" it would advertise "::" itself.
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && host != "0.0.0.0" {
		return fmt.Errorf("cluster: membership: bind address %q needs an advertise address", bind)
	}
	return nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, int(port), nil
}

// joinLoop joins the seeds, and joins them again whenever this node finds
// itself alone, so a seed that starts late, or a partition that outlived
// memberlist's memory of the dead, still ends in one pool.
func (m *Membership) joinLoop(ctx context.Context, seeds []string) {
	defer m.wg.Done()
	wait := m.joinMin
	failures := 0
	for {
		if !m.isolated() {
			failures, wait = 0, m.joinMin
		} else {
			n, err := m.ml.Join(seeds)
			switch {
			case err == nil && !m.isolated():
				m.logger.Info("joined gossip", "contacted", n)
				failures, wait = 0, m.joinMin
			default:
				if err == nil {
					// Only ourselves answered: a seed list may name us.
					err = errors.New("no other member reached")
				}
				failures++
				// The first failure is worth a warning; a seed that
				// starts later makes the rest routine.
				lvl := slog.LevelDebug
				if failures == 1 {
					lvl = slog.LevelWarn
				}
				m.logger.Log(ctx, lvl, "join failed, retrying", "seeds", seeds, "in", wait, "err", err)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if failures > 0 {
			wait = min(2*wait, m.joinMax)
		} else {
			// Alone is rare after a join; checking now and then is
			// enough to notice it.
			wait = m.joinMax
		}
	}
}

// isolated reports that no other live member is known and we have not
// left (a node that left stays alone on purpose).
func (m *Membership) isolated() bool {
	m.mu.Lock()
	left := m.left
	m.mu.Unlock()
	return !left && m.ml.NumMembers() <= 1
}

// Addr returns the gossip host:port others reach this node at.
func (m *Membership) Addr() string { return m.ml.LocalNode().Address() }

// Members returns every member this node has heard of, itself included,
// sorted by ID. Dead and departed members stay listed, with the time they
// went, until they come back: removing them from Raft depends on it.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, *mem)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Meta.ID, b.Meta.ID) })
	return out
}

// Changes is signalled after any join, departure, status or metadata
// change. Signals coalesce: a reader learns that something changed and
// then reads Members.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

// SetHasState records whether this node belongs to a Raft group and
// gossips it. It does not wait for the broadcast: gossip, and push/pull
// after it, carry the update on their own. After Leave it only records.
func (m *Membership) SetHasState(has bool) {
	m.update(func(meta *MemberMeta) { meta.HasState = has })
}

// SetCA records the fingerprint of the CA that signed this node's
// certificate, after a reload changed it, and gossips it.
func (m *Membership) SetCA(ca string) {
	m.update(func(meta *MemberMeta) { meta.CA = ca })
}

// update changes this node's gossiped metadata and broadcasts it if it
// changed.
func (m *Membership) update(change func(*MemberMeta)) {
	// lifeMu orders this against Leave: an update gossiped after the
	// leave would announce this node alive again.
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	before := m.meta
	change(&m.meta)
	gossip := m.meta != before && !m.left && !m.closed
	m.mu.Unlock()
	if gossip {
		// UpdateNode waits for the broadcast only as long as its
		// timeout, and the wait is all a timeout error is about.
		_ = m.ml.UpdateNode(time.Nanosecond)
	}
}

// Leave tells the pool this node is going, so peers mark it left rather
// than dead and its Raft leader removes it at once instead of after a
// grace period. It waits until the news has been sent, or ctx ends.
// Gossip keeps running until Shutdown so the news spreads.
func (m *Membership) Leave(ctx context.Context) error {
	m.lifeMu.Lock()
	m.mu.Lock()
	m.left = true
	var peers []Member
	for _, mem := range m.members {
		if mem.Meta.ID != m.id && mem.Status == StatusAlive {
			peers = append(peers, *mem)
		}
	}
	m.mu.Unlock()
	m.lifeMu.Unlock()
	m.announceLeave(ctx, peers)
	return m.await(ctx, "leave", m.ml.Leave)
}

// msgLeaveIntent prefixes the user message announcing a leave; the rest
// is the leaving node's ID.
const msgLeaveIntent byte = 1

// announceLeave tells each peer directly that this node is leaving.
// memberlist marks a gracefully departed node StateLeft internally but
// hands NotifyLeave a copy still saying StateAlive
// (hashicorp/memberlist#293), so without this a leave looks like a death.
// Sent over TCP, it reaches a peer before the leave itself is gossiped,
// and a peer that saw the death first turns it into a leave. Best effort:
// a peer that misses it reaps the node after the dead grace instead.
func (m *Membership) announceLeave(ctx context.Context, peers []Member) {
	msg := append([]byte{msgLeaveIntent}, m.id...)
	errs := make(chan error, len(peers))
	sent := 0
	for _, p := range peers {
		host, port, err := splitHostPort(p.Addr)
		if err != nil {
			continue
		}
		node := &memberlist.Node{Name: p.Meta.ID, Addr: net.ParseIP(host), Port: uint16(port)}
		if !m.goTracked(func() { errs <- m.ml.SendReliable(node, msg) }) {
			return
		}
		sent++
	}
	for range sent {
		select {
		case err := <-errs:
			if err != nil {
				m.logger.Debug("announcing leave", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// goTracked runs f on a goroutine that Shutdown waits for, unless
// Shutdown has begun: memberlist panics on a leave after shutdown.
func (m *Membership) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// defaultBroadcastWait bounds waits for a broadcast when ctx has no
// deadline: memberlist cannot be cancelled, only timed out.
const defaultBroadcastWait = 5 * time.Second

// await runs a memberlist call that waits for a broadcast. The call is
// given ctx's deadline as its timeout, so it cannot outlive it by much;
// cancellation without a deadline stops our wait, not the call.
func (m *Membership) await(ctx context.Context, what string, call func(time.Duration) error) error {
	timeout := defaultBroadcastWait
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	done := make(chan error, 1)
	if !m.goTracked(func() { done <- call(timeout) }) {
		return fmt.Errorf("cluster: membership %s: %w", what, ErrShutdown)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("cluster: membership %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: membership %s: %w", what, ctx.Err())
	}
}

// Shutdown stops gossip without a leave message: peers will find this
// node dead. Call Leave first for a graceful exit. It waits for a join
// attempt or broadcast wait in flight, each bounded by its timeout.
func (m *Membership) Shutdown() error {
	var err error
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		close(m.stop)
		m.wg.Wait()
		err = m.ml.Shutdown()
	})
	return err
}

func (m *Membership) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// membershipDelegate receives memberlist's callbacks. It is a distinct
// type so those methods stay off Membership's API.
type membershipDelegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = membershipDelegate{}
	_ memberlist.EventDelegate = membershipDelegate{}
	_ memberlist.AliveDelegate = membershipDelegate{}
	_ memberlist.MergeDelegate = membershipDelegate{}
)

// NotifyAlive vets every alive message, a member's first and the ones
// after (its metadata may change), before memberlist acts on it.
func (d membershipDelegate) NotifyAlive(n *memberlist.Node) error {
	return d.m.vet(n)
}

// NotifyMerge vets the members a join would bring in, on both sides of
// the join: one refused member refuses the join.
func (d membershipDelegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if n.State != memberlist.StateAlive {
			continue
		}
		if err := d.m.vet(n); err != nil {
			return err
		}
	}
	return nil
}

// vet applies Admit to a member other than this node.
func (m *Membership) vet(n *memberlist.Node) error {
	if m.admit == nil || n.Name == m.id {
		return nil
	}
	var meta MemberMeta
	if err := decodeMeta(n, &meta); err != nil {
		return fmt.Errorf("member %s: bad metadata: %w", n.Name, err)
	}
	if err := m.admit(meta); err != nil {
		m.refusals.log(m.logger, n.Name, "refusing gossip member", "member", n.Name, "addr", n.Address(), "reason", err)
		return fmt.Errorf("member %s refused: %w", n.Name, err)
	}
	return nil
}

func (d membershipDelegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	meta := d.m.meta
	d.m.mu.Unlock()
	raw, err := json.Marshal(meta)
	if err != nil || len(raw) > limit {
		// StartMembership checked the size and only HasState changes
		// after it, so this is a bug.
		panic(fmt.Sprintf("cluster: membership meta of %d bytes (limit %d): %v", len(raw), limit, err))
	}
	return raw
}

func (membershipDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (membershipDelegate) LocalState(bool) []byte          { return nil }
func (membershipDelegate) MergeRemoteState([]byte, bool)   {}

func (d membershipDelegate) NotifyMsg(msg []byte) {
	if len(msg) == 0 || msg[0] != msgLeaveIntent {
		d.m.logger.Debug("ignoring unknown gossip message", "len", len(msg))
		return
	}
	d.m.leaveAnnounced(string(msg[1:]))
}

// The Notify methods below run under memberlist's node lock: they must
// not call back into memberlist.

// NotifyJoin covers a new member and one coming back, in a new life:
// an earlier leave announcement no longer applies.
func (d membershipDelegate) NotifyJoin(n *memberlist.Node) {
	d.m.mu.Lock()
	delete(d.m.leaving, n.Name)
	d.m.mu.Unlock()
	d.m.observe(n, func() MemberStatus { return StatusAlive })
}

// NotifyUpdate is new metadata from a live member; one that announced
// its leave stays left.
func (d membershipDelegate) NotifyUpdate(n *memberlist.Node) {
	d.m.observe(n, func() MemberStatus {
		if d.m.leaving[n.Name] {
			return StatusLeft
		}
		return StatusAlive
	})
}

// NotifyLeave covers both a graceful leave and a death, which are reaped
// on different clocks. n.State should tell them apart but does not in
// this memberlist version (see announceLeave), so a leave is also known by
// its announcement, or for ourselves by having called Leave.
func (d membershipDelegate) NotifyLeave(n *memberlist.Node) {
	d.m.observe(n, func() MemberStatus {
		if n.State == memberlist.StateLeft || d.m.leaving[n.Name] || (n.Name == d.m.id && d.m.left) {
			return StatusLeft
		}
		return StatusDead
	})
}

// observe records what memberlist reports about n; status is called with
// m.mu held.
func (m *Membership) observe(n *memberlist.Node, status func() MemberStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, known := m.members[n.Name]
	st := status()
	var meta MemberMeta
	if err := decodeMeta(n, &meta); err != nil {
		if !known || st == StatusAlive {
			m.logger.Warn("ignoring member with bad metadata", "member", n.Name, "addr", n.Address(), "err", err)
			return
		}
		// Its departure still counts; keep the metadata we had.
		meta = cur.Meta
	}
	if !known {
		cur = &Member{}
		m.members[n.Name] = cur
	}
	cur.Meta, cur.Addr = meta, n.Address()
	m.setStatus(cur, st)
	m.signal()
}

// leaveAnnounced records that id said it is leaving. It takes effect at
// once: a leaving coordinator has already handed off leadership, and
// removing it from Raft before it stops is what it asked for.
func (m *Membership) leaveAnnounced(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == m.id {
		return
	}
	m.leaving[id] = true
	if cur, ok := m.members[id]; ok {
		m.setStatus(cur, StatusLeft)
		m.signal()
	}
}

// setStatus moves cur to status, restarting its clock on a change. m.mu
// must be held.
func (m *Membership) setStatus(cur *Member, status MemberStatus) {
	if cur.Status == status {
		return
	}
	cur.Status, cur.Since = status, time.Now()
	lvl := slog.LevelInfo
	if status == StatusDead {
		lvl = slog.LevelWarn
	}
	m.logger.Log(context.Background(), lvl, "member "+string(status), "member", cur.Meta.ID, "addr", cur.Addr, "role", cur.Meta.Role)
}

func decodeMeta(n *memberlist.Node, meta *MemberMeta) error {
	if err := json.Unmarshal(n.Meta, meta); err != nil {
		return err
	}
	if meta.ID != n.Name {
		return fmt.Errorf("meta id %q differs from node name", meta.ID)
	}
	return nil
}

// memberlistLogWriter turns memberlist's log lines ("[WARN] memberlist:
// ...") into slog records at the matching level.
type memberlistLogWriter struct{ l *slog.Logger }

func (w *memberlistLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, text, ok := strings.Cut(rest, "]"); ok {
			msg, lvl = strings.TrimSpace(text), memberlistLevel(tag)
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.l.Log(context.Background(), lvl, msg)
	return len(p), nil
}

func memberlistLevel(tag string) slog.Level {
	switch tag {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN":
		return slog.LevelWarn
	case "ERR", "ERROR":
		return slog.LevelError
	}
	return slog.LevelInfo
}
