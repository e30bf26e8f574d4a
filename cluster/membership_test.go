package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// The rig below is only used by this file's tests; it lives here rather
// than in a non-test file so the production binary does not carry it.

// memberOpts configures one test node.
type memberOpts struct {
	expect       int
	deadGrace    time.Duration
	promoteAfter time.Duration
	join         []string
}

// testMember is a coordinator as the process would run it: Raft over TCP
// on loopback, gossip on loopback, Bootstrap then Reconcile in the
// background.
type testMember struct {
	id      string
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	members *Membership
	cfg     ReconcileConfig

	cancel   context.CancelFunc
	done     chan struct{}
	bootErr  chan error
	stopOnce sync.Once
}

func testLogger() *slog.Logger {
	if os.Getenv("NEBULA_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestRaft starts a Raft node over TCP on loopback, with in-memory
// storage and election timings tight enough for tests.
func newTestRaft(t *testing.T, id string, logger *slog.Logger) (*raft.Raft, *raft.NetworkTransport) {
	t.Helper()
	hl := hclogFor(logger.With("node", id), "raft")
	trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, time.Second, hl)
	if err != nil {
		t.Fatal(err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = hl
	rc.HeartbeatTimeout = 200 * time.Millisecond
	rc.ElectionTimeout = 200 * time.Millisecond
	rc.LeaderLeaseTimeout = 100 * time.Millisecond
	rc.CommitTimeout = 20 * time.Millisecond
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(rc, &counterFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		trans.Close()
		t.Fatal(err)
	}
	return r, trans
}

func closeTestRaft(r *raft.Raft, trans *raft.NetworkTransport) {
	r.Shutdown().Error()
	// Close only stops the listener: pooled connections keep the peers'
	// connection handlers reading until they are closed.
	trans.CloseStreams()
	trans.Close()
}

func startMember(t *testing.T, id string, o memberOpts) *testMember {
	t.Helper()
	logger := testLogger()
	r, trans := newTestRaft(t, id, logger)
	meta := MemberMeta{ID: id, Role: RoleCoordinator, RaftAddr: string(trans.LocalAddr()), Version: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	ms, err := StartMembership(ctx, MembershipConfig{
		Meta:     meta,
		BindAddr: "127.0.0.1:0",
		Join:     o.join,
		Logger:   logger,
		Fast:     true,
	})
	if err != nil {
		cancel()
		closeTestRaft(r, trans)
		t.Fatal(err)
	}
	m := &testMember{
		id:      id,
		raft:    r,
		trans:   trans,
		members: ms,
		cfg: ReconcileConfig{
			Raft:            r,
			Members:         ms,
			Self:            meta,
			BootstrapExpect: o.expect,
			DeadGrace:       o.deadGrace,
			PromoteAfter:    o.promoteAfter,
			Interval:        100 * time.Millisecond,
			Logger:          logger,
		},
		cancel:  cancel,
		done:    make(chan struct{}),
		bootErr: make(chan error, 1),
	}
	go func() {
		defer close(m.done)
		err := Bootstrap(ctx, m.cfg)
		m.bootErr <- err
		if err == nil {
			Reconcile(ctx, m.cfg)
		}
	}()
	t.Cleanup(m.stop)
	return m
}

// startGroup starts n coordinators expecting n, all joining the first,
// without waiting for them to agree.
func startGroup(t *testing.T, n int, o memberOpts) []*testMember {
	t.Helper()
	o.expect = n
	first := startMember(t, "n1", o)
	o.join = []string{first.members.Addr()}
	group := []*testMember{first}
	for i := 2; i <= n; i++ {
		group = append(group, startMember(t, fmt.Sprintf("n%d", i), o))
	}
	return group
}

// stop ends the node without leaving: to its peers it has died.
func (m *testMember) stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		<-m.done
		closeTestRaft(m.raft, m.trans)
		m.members.Shutdown()
	})
}

func (m *testMember) configuration() ([]raft.Server, error) {
	f := m.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	servers := slices.Clone(f.Configuration().Servers)
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return servers, nil
}

// oneGroup reports why members are not (yet) exactly one group with one
// leader whose configuration is the given voters, seen alike by all.
func oneGroup(members []*testMember, voters ...string) error {
	var leaders []*testMember
	for _, m := range members {
		if m.raft.State() == raft.Leader {
			leaders = append(leaders, m)
		}
	}
	if len(leaders) != 1 {
		return fmt.Errorf("%d leaders", len(leaders))
	}
	want, err := leaders[0].configuration()
	if err != nil {
		return err
	}
	var got []string
	for _, s := range want {
		if s.Suffrage != raft.Voter {
			return fmt.Errorf("leader %s: %s is %v", leaders[0].id, s.ID, s.Suffrage)
		}
		got = append(got, string(s.ID))
	}
	if !slices.Equal(got, voters) {
		return fmt.Errorf("leader %s: voters %v, want %v", leaders[0].id, got, voters)
	}
	for _, m := range members {
		c, err := m.configuration()
		if err != nil {
			return err
		}
		if !slices.Equal(c, want) {
			return fmt.Errorf("%s sees %v, leader %s sees %v", m.id, c, leaders[0].id, want)
		}
	}
	return nil
}

func leaderOf(members []*testMember) *testMember {
	for _, m := range members {
		if m.raft.State() == raft.Leader {
			return m
		}
	}
	return nil
}

func without(members []*testMember, gone *testMember) []*testMember {
	return slices.DeleteFunc(slices.Clone(members), func(m *testMember) bool { return m == gone })
}

func ids(members []*testMember) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.id
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond until it returns nil, failing the test with its last
// answer after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkNoLeaks fails the test if goroutines of Raft, memberlist or this
// package outlive its cleanup. Register it first: cleanups run last-in
// first-out, so it runs after every node has stopped.
func checkNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := leakedGoroutines()
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left running:\n\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "cluster.leakedGoroutines") {
			continue
		}
		for _, pkg := range []string{"hashicorp/raft", "hashicorp/memberlist", "nebula/cluster."} {
			if strings.Contains(g, pkg) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func TestMembershipBootstrapTogether(t *testing.T) {
	// Repeated: the danger is a race between nodes that see each other
	// at slightly different times.
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkNoLeaks(t)
			group := startGroup(t, 3, memberOpts{})
			waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3") })
			for _, m := range group {
				select {
				case err := <-m.bootErr:
					if err != nil {
						t.Errorf("%s: bootstrap: %v", m.id, err)
					}
				case <-time.After(5 * time.Second):
					t.Errorf("%s: still in Bootstrap although in the group", m.id)
				}
			}
		})
	}
}

func TestMembershipBootstrapAlone(t *testing.T) {
	checkNoLeaks(t)
	r, trans := newTestRaft(t, "solo", testLogger())
	t.Cleanup(func() { closeTestRaft(r, trans) })
	cfg := ReconcileConfig{
		Raft:            r,
		Self:            MemberMeta{ID: "solo", Role: RoleCoordinator, RaftAddr: string(trans.LocalAddr())},
		BootstrapExpect: 1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Bootstrap(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// Bootstrapping is once: a node with a configuration returns at once.
	if err := Bootstrap(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if r.State() != raft.Leader {
			return fmt.Errorf("state %v", r.State())
		}
		return nil
	})
}

func TestMembershipBootstrapLate(t *testing.T) {
	checkNoLeaks(t)
	o := memberOpts{expect: 3}
	n1 := startMember(t, "n1", o)
	o.join = []string{n1.members.Addr()}
	n2 := startMember(t, "n2", o)
	early := []*testMember{n1, n2}

	// For two seconds the first two see each other and still must not
	// form a group of two.
	seen := false
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, m := range early {
			c, err := m.configuration()
			if err != nil {
				t.Fatal(err)
			}
			if len(c) > 0 {
				t.Fatalf("%s formed a group without the third: %v", m.id, c)
			}
		}
		seen = seen || aliveCount(n1.members) == 2 && aliveCount(n2.members) == 2
	}
	if !seen {
		t.Fatal("the first two never saw each other")
	}

	n3 := startMember(t, "n3", o)
	group := append(early, n3)
	waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3") })
}

func aliveCount(ms *Membership) int {
	n := 0
	for _, m := range ms.Members() {
		if m.Status == StatusAlive {
			n++
		}
	}
	return n
}

func TestMembershipAddAndPromote(t *testing.T) {
	checkNoLeaks(t)
	o := memberOpts{promoteAfter: 500 * time.Millisecond}
	group := startGroup(t, 3, o)
	waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3") })

	o.expect, o.join = 3, []string{group[0].members.Addr()}
	n4 := startMember(t, "n4", o)
	group = append(group, n4)

	suffrage := func() (raft.ServerSuffrage, error) {
		l := leaderOf(group)
		if l == nil {
			return 0, errors.New("no leader")
		}
		c, err := l.configuration()
		if err != nil {
			return 0, err
		}
		for _, s := range c {
			if s.ID == "n4" {
				return s.Suffrage, nil
			}
		}
		return 0, errors.New("n4 not in the configuration")
	}
	waitFor(t, 10*time.Second, func() error {
		s, err := suffrage()
		if err == nil && s != raft.Nonvoter {
			// Caught too late to see it vote-less: only wrong if
			// promotion came before PromoteAfter, checked below.
			return fmt.Errorf("n4 is %v, want it added as a non-voter first", s)
		}
		return err
	})
	added := time.Now()
	waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3", "n4") })
	if d := time.Since(added); d < 400*time.Millisecond {
		t.Errorf("promoted %v after being added, want about PromoteAfter (500ms)", d)
	}
	select {
	case err := <-n4.bootErr:
		if err != nil {
			t.Fatalf("n4 bootstrap: %v", err)
		}
	default:
		t.Fatal("n4 still waiting in Bootstrap after being added")
	}
}

func TestMembershipGracefulLeave(t *testing.T) {
	for _, leader := range []bool{false, true} {
		name := "follower"
		if leader {
			name = "leader"
		}
		t.Run(name, func(t *testing.T) {
			checkNoLeaks(t)
			// A minute of grace: only the leave can explain a prompt
			// removal.
			group := startGroup(t, 3, memberOpts{deadGrace: time.Minute})
			waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3") })

			old := leaderOf(group)
			leaving := old
			if !leader {
				leaving = without(group, old)[0]
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			if err := GracefulLeave(ctx, leaving.cfg); err != nil {
				t.Fatal(err)
			}
			rest := without(group, leaving)
			waitFor(t, 5*time.Second, func() error { return oneGroup(rest, ids(rest)...) })
			t.Logf("%s removed %v after leaving", leaving.id, time.Since(start))
			if !leader && leaderOf(rest) != old {
				t.Errorf("leadership moved from %s although a follower left", old.id)
			}
			leaving.stop()
		})
	}
}

func TestMembershipDeadFollower(t *testing.T) {
	t.Run("removed after grace", func(t *testing.T) {
		checkNoLeaks(t)
		group := startGroup(t, 3, memberOpts{deadGrace: time.Second})
		waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3") })
		dead := without(group, leaderOf(group))[0]
		dead.stop()
		rest := without(group, dead)
		start := time.Now()
		waitFor(t, 10*time.Second, func() error { return oneGroup(rest, ids(rest)...) })
		if d := time.Since(start); d < time.Second {
			t.Errorf("removed %v after dying, before the 1s grace", d)
		}
	})
	t.Run("kept within grace", func(t *testing.T) {
		checkNoLeaks(t)
		group := startGroup(t, 3, memberOpts{deadGrace: time.Minute})
		waitFor(t, 10*time.Second, func() error { return oneGroup(group, "n1", "n2", "n3") })
		leader := leaderOf(group)
		dead := without(group, leader)[0]
		dead.stop()
		// Long enough dead that a 1s grace would have removed it
		// (see above), with many reconcile rounds in between.
		waitFor(t, 10*time.Second, func() error {
			for _, m := range leader.members.Members() {
				if m.Meta.ID == dead.id && m.Status == StatusDead && time.Since(m.Since) > 2*time.Second {
					return nil
				}
			}
			return fmt.Errorf("%s not yet dead for 2s in %s's view", dead.id, leader.id)
		})
		if leaderOf(group) != leader {
			t.Fatal("leadership changed")
		}
		if err := oneGroup(without(group, dead), "n1", "n2", "n3"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMembershipBootstrapServers(t *testing.T) {
	coord := func(id string, status MemberStatus, hasState bool) Member {
		return Member{Status: status, Meta: MemberMeta{ID: id, Role: RoleCoordinator, RaftAddr: id + ":1", HasState: hasState}}
	}
	worker := Member{Status: StatusAlive, Meta: MemberMeta{ID: "w", Role: "worker", RaftAddr: "w:1"}}
	tests := []struct {
		name    string
		members []Member
		expect  int
		self    string
		want    []string
	}{
		{"too few", []Member{coord("a", StatusAlive, false), worker}, 2, "a", nil},
		{"dead do not count", []Member{coord("a", StatusAlive, false), coord("b", StatusDead, false)}, 2, "a", nil},
		{"exactly", []Member{coord("b", StatusAlive, false), coord("a", StatusAlive, false)}, 2, "b", []string{"a", "b"}},
		{"smallest ids", []Member{coord("c", StatusAlive, false), coord("a", StatusAlive, false), coord("b", StatusAlive, false)}, 2, "a", []string{"a", "b"}},
		{"not among them", []Member{coord("c", StatusAlive, false), coord("a", StatusAlive, false), coord("b", StatusAlive, false)}, 2, "c", nil},
		{"group exists", []Member{coord("a", StatusAlive, false), coord("b", StatusAlive, true)}, 2, "a", nil},
		{"disabled", []Member{coord("a", StatusAlive, false)}, 0, "a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers, reason := bootstrapServers(tt.members, tt.expect, tt.self)
			var got []string
			for _, s := range servers {
				if s.Suffrage != raft.Voter || string(s.Address) != string(s.ID)+":1" {
					t.Errorf("server %+v", s)
				}
				got = append(got, string(s.ID))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v (%s), want %v", got, reason, tt.want)
			}
			if got == nil && reason == "" {
				t.Error("no reason given for waiting")
			}
		})
	}
}

func TestMembershipPlan(t *testing.T) {
	t0 := time.Now()
	voter := func(id string) raft.Server {
		return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":1")}
	}
	nonvoter := func(id string) raft.Server {
		s := voter(id)
		s.Suffrage = raft.Nonvoter
		return s
	}
	member := func(id string, status MemberStatus, since time.Time) Member {
		return Member{Status: status, Since: since, Meta: MemberMeta{ID: id, Role: RoleCoordinator, RaftAddr: id + ":1"}}
	}
	newReconciler := func() *reconciler {
		return &reconciler{
			cfg:           ReconcileConfig{Self: MemberMeta{ID: "a"}}.withDefaults(),
			self:          "a",
			nonvoterSince: make(map[raft.ServerID]time.Time),
			unknownSince:  make(map[raft.ServerID]time.Time),
			hb:            newHeartbeats(),
		}
	}
	describe := func(cs []change) []string {
		var out []string
		for _, c := range cs {
			out = append(out, string(c.action)+" "+string(c.id))
		}
		return out
	}

	t.Run("removals", func(t *testing.T) {
		r := newReconciler()
		servers := []raft.Server{voter("a"), voter("b"), voter("c"), voter("d"), nonvoter("e")}
		members := []Member{
			member("a", StatusLeft, t0), // self: never removed
			member("b", StatusLeft, t0),
			member("c", StatusDead, t0.Add(-2*time.Minute)),
			member("d", StatusDead, t0.Add(-time.Second)), // within grace
			member("e", StatusLeft, t0),
		}
		got := describe(r.plan(t0, servers, members))
		want := []string{"remove b", "remove e"} // c waits: one voter per round
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("unknown servers", func(t *testing.T) {
		r := newReconciler()
		servers := []raft.Server{voter("a"), voter("x")}
		members := []Member{member("a", StatusAlive, t0)}
		if got := r.plan(t0, servers, members); len(got) != 0 {
			t.Errorf("at once: %v", describe(got))
		}
		got := describe(r.plan(t0.Add(time.Minute), servers, members))
		if want := []string{"remove x"}; !slices.Equal(got, want) {
			t.Errorf("after grace: got %v, want %v", got, want)
		}
	})

	t.Run("add and promote", func(t *testing.T) {
		r := newReconciler()
		worker := member("w", StatusAlive, t0)
		worker.Meta.Role = "worker"
		members := []Member{member("a", StatusAlive, t0), member("b", StatusAlive, t0), worker}
		got := describe(r.plan(t0, []raft.Server{voter("a")}, members))
		if want := []string{"add_nonvoter b"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		servers := []raft.Server{voter("a"), nonvoter("b")}
		if got := r.plan(t0, servers, members); len(got) != 0 {
			t.Errorf("promoted at once: %v", describe(got))
		}
		r.hb.fail["b"] = true
		if got := r.plan(t0.Add(time.Minute), servers, members); len(got) != 0 {
			t.Errorf("promoted while heartbeats fail: %v", describe(got))
		}
		r.hb.reset()
		got = describe(r.plan(t0.Add(time.Minute), servers, members))
		if want := []string{"promote b"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("address change", func(t *testing.T) {
		r := newReconciler()
		b := member("b", StatusAlive, t0)
		b.Meta.RaftAddr = "b:2"
		got := r.plan(t0, []raft.Server{voter("a"), voter("b")}, []Member{member("a", StatusAlive, t0), b})
		if len(got) != 1 || got[0].action != actionUpdateAddr || got[0].addr != "b:2" || got[0].suffrage != raft.Voter {
			t.Errorf("got %+v", got)
		}
	})
}

// TestMembershipLeaveOrDeath drives the delegate as memberlist would,
// with NotifyLeave's node always saying StateAlive, as memberlist v0.7
// does: only the leave announcement tells a leave from a death, in
// whichever order the two arrive.
func TestMembershipLeaveOrDeath(t *testing.T) {
	m := &Membership{
		id:      "a",
		logger:  testLogger(),
		changes: make(chan struct{}, 1),
		members: make(map[string]*Member),
		leaving: make(map[string]bool),
	}
	d := membershipDelegate{m}
	node := func(id string) *memberlist.Node {
		meta, err := json.Marshal(MemberMeta{ID: id, Role: RoleCoordinator})
		if err != nil {
			t.Fatal(err)
		}
		return &memberlist.Node{Name: id, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: meta}
	}
	status := func(id string) MemberStatus {
		for _, mem := range m.Members() {
			if mem.Meta.ID == id {
				return mem.Status
			}
		}
		return ""
	}
	step := func(what string, do func(), id string, want MemberStatus) {
		t.Helper()
		do()
		if got := status(id); got != want {
			t.Errorf("%s: %s is %q, want %q", what, id, got, want)
		}
	}
	announce := func(id string) func() {
		return func() { d.NotifyMsg(append([]byte{msgLeaveIntent}, id...)) }
	}

	step("join", func() { d.NotifyJoin(node("b")) }, "b", StatusAlive)
	select {
	case <-m.Changes():
	default:
		t.Error("join not signalled")
	}
	step("death", func() { d.NotifyLeave(node("b")) }, "b", StatusDead)
	step("back", func() { d.NotifyJoin(node("b")) }, "b", StatusAlive)

	step("announced", announce("b"), "b", StatusLeft)
	since := m.members["b"].Since
	step("then gone", func() { d.NotifyLeave(node("b")) }, "b", StatusLeft)
	if !m.members["b"].Since.Equal(since) {
		t.Error("leaving twice restarted the clock")
	}
	step("new life", func() { d.NotifyJoin(node("b")) }, "b", StatusAlive)
	step("death in new life", func() { d.NotifyLeave(node("b")) }, "b", StatusDead)
	step("death, then announcement", announce("b"), "b", StatusLeft)

	step("meta update while leaving", func() {
		d.NotifyJoin(node("c"))
		announce("c")()
		d.NotifyUpdate(node("c"))
	}, "c", StatusLeft)

	bad := node("x")
	bad.Meta = []byte("{not json")
	step("bad meta", func() { d.NotifyJoin(bad) }, "x", "")
	spoof := node("y")
	spoof.Name = "z"
	step("meta for another node", func() { d.NotifyJoin(spoof) }, "z", "")

	step("self", func() { d.NotifyJoin(node("a")) }, "a", StatusAlive)
	m.left = true
	step("self leaves", func() { d.NotifyLeave(node("a")) }, "a", StatusLeft)
}

func TestMembershipLogLevels(t *testing.T) {
	var got []string
	h := recordHandler{add: func(r slog.Record) { got = append(got, r.Level.String()+" "+r.Message) }}
	w := &memberlistLogWriter{l: slog.New(h)}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n",
		"[WARN] memberlist: Refuting a dead message\n",
		"[ERR] memberlist: Failed to send\n",
		"[INFO] memberlist: Marking n2 as failed\n",
		"no prefix\n",
	} {
		fmt.Fprint(w, line)
	}
	want := []string{
		"DEBUG Stream connection from=127.0.0.1:1",
		"WARN Refuting a dead message",
		"ERROR Failed to send",
		"INFO Marking n2 as failed",
		"INFO no prefix",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

type recordHandler struct{ add func(slog.Record) }

func (recordHandler) Enabled(context.Context, slog.Level) bool        { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error { h.add(r); return nil }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordHandler) WithGroup(string) slog.Handler                 { return h }

// counterFSM counts applied entries: the tests need a state machine, not
// any particular one.
type counterFSM struct{ n atomic.Uint64 }

func (f *counterFSM) Apply(*raft.Log) interface{} { return f.n.Add(1) }

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) { return counterSnapshot(f.n.Load()), nil }

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.n.Store(binary.BigEndian.Uint64(b[:]))
	return nil
}

type counterSnapshot uint64

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(s))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

// TestMembershipAdmit: a member that Admit refuses never enters the pool,
// whether it joins a member or is joined; the others gather as usual.
func TestMembershipAdmit(t *testing.T) {
	// Each member trusts its own CA only.
	admit := func(ca string) func(MemberMeta) error {
		return func(m MemberMeta) error {
			if m.CA != ca {
				return fmt.Errorf("untrusted CA %q", m.CA)
			}
			return nil
		}
	}
	logs := &lines{}
	start := func(id, ca string, join []string, logger *slog.Logger) *Membership {
		t.Helper()
		if logger == nil {
			logger = testLogger()
		}
		ms, err := StartMembership(context.Background(), MembershipConfig{
			Meta: MemberMeta{ID: id, Role: RoleCoordinator, Transport: TransportMTLS, CA: ca}, BindAddr: "127.0.0.1:0",
			Join: join, Admit: admit(ca), Logger: logger, Fast: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms.Shutdown() })
		return ms
	}
	a := start("a", "ca-1", nil, slog.New(logs))
	start("b", "ca-1", []string{a.Addr()}, nil)
	stranger := start("c", "ca-2", []string{a.Addr()}, nil)
	waitFor(t, 10*time.Second, func() error {
		if n := aliveCount(a); n != 2 {
			return fmt.Errorf("a sees %d alive members, want 2", n)
		}
		return nil
	})
	// Give the stranger's join attempts time to be refused.
	waitFor(t, 10*time.Second, func() error {
		if logs.count("refusing gossip member") == 0 {
			return fmt.Errorf("no refusal logged:\n%s", logs)
		}
		return nil
	})
	for _, m := range a.Members() {
		if m.Meta.ID == "c" {
			t.Fatalf("the refused member is listed: %+v", m)
		}
	}
	if n := aliveCount(stranger); n != 1 {
		t.Fatalf("the stranger sees %d alive members, want only itself", n)
	}
	if !strings.Contains(logs.String(), `untrusted CA \"ca-2\"`) && !strings.Contains(logs.String(), `untrusted CA "ca-2"`) {
		t.Fatalf("the refusal does not say why:\n%s", logs)
	}
}
