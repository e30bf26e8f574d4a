package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCluster is three `nebula server` processes on 127.0.0.1-3.
type testCluster struct {
	t      *testing.T
	nodes  []*serverNode
	expect int    // bootstrap_expect; the number of nodes when 0
	role   string // the command that runs a node: "server" when empty
}

type serverNode struct {
	id, ip            string
	api, raft, gossip string
	dir, config       string
	join              []string
	wrap              []string // command prefix, e.g. `ip netns exec NS`
	p                 *proc
}

// clusterConfig tightens timings so that tests run in seconds.
const clusterConfig = `
[cluster]
heartbeat_timeout = "500ms"
dead_server_grace = "60s"
promote_after = "1s"
snapshot_threshold = 256
snapshot_interval = "1s"
trailing_logs = 64
[worker]
lease_ttl = "3s"
`

// freePort returns a port free on ip now.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The gossip port is used for UDP too.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	hosts := make([]testHost, n)
	for i := range hosts {
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		hosts[i] = testHost{ip: ip, ports: [3]string{freePort(t, ip), freePort(t, ip), freePort(t, ip)}}
	}
	return newTestClusterOn(t, hosts)
}

// testHost is where one node runs: its IP, its API, Raft and gossip
// ports, and the command prefix that puts it there.
type testHost struct {
	ip    string
	ports [3]string
	wrap  []string
}

func newTestClusterOn(t *testing.T, hosts []testHost) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	for i, h := range hosts {
		s := &serverNode{
			id:     fmt.Sprintf("n%d", i+1),
			ip:     h.ip,
			api:    net.JoinHostPort(h.ip, h.ports[0]),
			raft:   net.JoinHostPort(h.ip, h.ports[1]),
			gossip: net.JoinHostPort(h.ip, h.ports[2]),
			dir:    t.TempDir(),
			wrap:   h.wrap,
		}
		s.config = filepath.Join(s.dir, "nebula.toml")
		if err := os.WriteFile(s.config, []byte(clusterConfig), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, s)
	}
	for _, s := range c.nodes {
		for _, o := range c.nodes {
			if o != s {
				s.join = append(s.join, o.gossip)
			}
		}
	}
	return c
}

// start starts node i and returns without waiting for it to be ready.
func (c *testCluster) start(i int) {
	s := c.nodes[i]
	role := c.role
	if role == "" {
		role = "server"
	}
	s.p = startWrapped(c.t, s.wrap, role,
		"--config", s.config,
		"--node-id", s.id,
		"--data", filepath.Join(s.dir, "data"),
		"--bind", s.api,
		"--raft-addr", s.raft,
		"--gossip-addr", s.gossip,
		"--join", strings.Join(s.join, ","),
		"--bootstrap-expect", fmt.Sprint(c.bootstrapExpect()),
	)
	s.p.url = "http://" + s.api
}

func (c *testCluster) bootstrapExpect() int {
	if c.expect > 0 {
		return c.expect
	}
	return len(c.nodes)
}

// startAll starts every node at the same moment and waits until all are
// ready.
func (c *testCluster) startAll() {
	for i := range c.nodes {
		c.start(i)
	}
	for _, s := range c.nodes {
		s.p.waitReady(60 * time.Second)
	}
}

// clusterInfo is GET /v1/cluster.
type clusterInfo struct {
	Leader  string `json:"leader"`
	Members []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Voter  bool   `json:"voter"`
		Leader bool   `json:"leader"`
	} `json:"members"`
}

func (c *testCluster) info(s *serverNode) (clusterInfo, bool) {
	var ci clusterInfo
	ok := s.p.tryCall("GET", "/v1/cluster", "", &ci) == 200
	return ci, ok
}

// waitAgreement waits until every running node reports the same leader
// and want voters, and returns the leader's index.
func (c *testCluster) waitAgreement(want int, timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		leader, agreed := "", true
		for _, s := range c.nodes {
			if s.p == nil || s.p.exited() {
				continue
			}
			ci, ok := c.info(s)
			voters := 0
			for _, m := range ci.Members {
				if m.Voter {
					voters++
				}
			}
			last = fmt.Sprintf("%s: %+v", s.id, ci)
			if !ok || ci.Leader == "" || voters != want || (leader != "" && ci.Leader != leader) {
				agreed = false
				break
			}
			leader = ci.Leader
		}
		if agreed && leader != "" {
			for i, s := range c.nodes {
				// A leader that is not running is a stale belief.
				if s.id == leader && s.p != nil && !s.p.exited() {
					return i
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no agreement on a leader with %d voters after %s; last: %s", want, timeout, last)
	return -1
}

const chainWorkflowN = `{"id":"chain","nodes":[
  {"id":"a","action":"builtin.set","params":{"value":"{{ input.n + 1 }}"}},
  {"id":"b","action":"builtin.set","params":{"value":"{{ nodes.a.output + 1 }}"}},
  {"id":"c","action":"builtin.set","params":{"value":"{{ nodes.b.output + 1 }}"}},
  {"id":"d","action":"builtin.log","params":{"message":"n={{ nodes.c.output }}"}},
  {"id":"e","action":"builtin.set","params":{"value":"{{ nodes.c.output + 1 }}"}}],
 "connections":[{"from":"a","to":"b"},{"from":"b","to":"c"},{"from":"c","to":"d"},{"from":"d","to":"e"}]}`

func TestClusterFormsAndForwards(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	c.waitAgreement(3, 20*time.Second)

	// A workflow created via node 2 runs when started via node 3 and is
	// readable from node 1.
	c.nodes[1].p.mustCall("PUT", "/v1/workflows/chain", chainWorkflowN, 200, nil)
	var e execution
	c.nodes[2].p.mustCall("POST", "/v1/workflows/chain/executions?wait=20s", `{"input":{"n":1}}`, 200, &e)
	if e.Status != "succeeded" || string(e.Output) != "5" {
		t.Fatalf("execution via node 3: %s output %s (error %v)", e.Status, e.Output, e.Error)
	}
	var got execution
	c.nodes[0].p.mustCall("GET", "/v1/executions/"+e.ID+"?consistent=true", "", 200, &got)
	if got.Status != "succeeded" {
		t.Fatalf("read from node 1 with consistent=true: %s", got.Status)
	}
	var wf map[string]any
	c.nodes[0].p.mustCall("GET", "/v1/workflows/chain?consistent=true", "", 200, &wf)

	// A follower answers a start that ended within its entry without
	// waiting to apply it; its own local reads still see the execution at
	// once (read your writes on the node that answered).
	c.nodes[1].p.mustCall("PUT", "/v1/workflows/pure", `{"id":"pure","nodes":[{"id":"a","action":"builtin.set","params":{"value":"{{ input.n + 1 }}"}}]}`, 200, nil)
	for i := range c.nodes {
		n := c.nodes[i].p
		for j := range 20 {
			var e execution
			n.mustCall("POST", "/v1/workflows/pure/executions?wait=5s", fmt.Sprintf(`{"input":{"n":%d}}`, j), 200, &e)
			if e.Status != "succeeded" || string(e.Output) != strconv.Itoa(j+1) {
				t.Fatalf("node %d: pure execution %s output %s", i+1, e.Status, e.Output)
			}
			var got execution
			if code, err := n.do("GET", "/v1/executions/"+e.ID, "", &got); code != 200 || got.Status != "succeeded" {
				t.Fatalf("node %d: local read right after its own start answered %d %s (%v)", i+1, code, got.Status, err)
			}
		}
	}
}

// TestClusterSurvivesLeaderKill kills the leader while acknowledged
// executions run and checks that none is lost or has an attempt recorded
// twice, and that the killed node comes back with the same data.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	li := c.waitAgreement(3, 20*time.Second)
	c.nodes[(li+1)%3].p.mustCall("PUT", "/v1/workflows/chain", chainWorkflowN, 200, nil)

	// 200 executions started through every node, all acknowledged; the
	// leader dies at once, while they run.
	const total = 200
	ids := make([]string, total)
	var wg sync.WaitGroup
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e execution
			body := fmt.Sprintf(`{"input":{"n":%d},"idempotency_key":"k%d"}`, i, i)
			c.nodes[i%3].p.mustCall("POST", "/v1/workflows/chain/executions", body, 201, &e)
			ids[i] = e.ID
		}()
	}
	wg.Wait()
	running := 0
	for _, id := range ids {
		var e execution
		c.nodes[li].p.mustCall("GET", "/v1/executions/"+id, "", 200, &e)
		if e.Status == "running" {
			running++
		}
	}
	c.nodes[li].p.kill()
	killed := time.Now()
	t.Logf("leader %s killed with %d of %d executions still running", c.nodes[li].id, running, total)

	nl := c.waitAgreement(3, 20*time.Second)
	if nl == li {
		t.Fatalf("killed node %s still reported as leader", c.nodes[li].id)
	}
	t.Logf("new leader %s agreed by the survivors %s after the kill", c.nodes[nl].id, time.Since(killed).Round(time.Millisecond))

	survivor := c.nodes[nl]
	reclaimed := 0
	for _, id := range ids {
		var e execution
		survivor.p.mustCall("GET", "/v1/executions/"+id+"?wait=30s", "", 200, &e)
		if e.Status != "succeeded" {
			t.Fatalf("acknowledged execution %s ended %q (error %v)", id, e.Status, e.Error)
		}
		reclaimed += assertAttemptsOnce(t, survivor.p, id)
	}
	// Attempts leased by the dead leader's worker were reclaimed after
	// their TTL and run again as new attempts.
	t.Logf("%d attempts held by the killed node were reclaimed and run again", reclaimed)

	// The killed node restarts and serves the same data.
	c.start(li)
	c.nodes[li].p.waitReady(60 * time.Second)
	want := executionIDs(t, survivor.p)
	for _, s := range c.nodes {
		got := executionIDs(t, s.p)
		if !slices.Equal(got, want) {
			t.Fatalf("node %s lists %d executions, node %s %d", s.id, len(got), survivor.id, len(want))
		}
	}
	for _, id := range ids {
		if !slices.Contains(want, id) {
			t.Fatalf("acknowledged execution %s is missing from the list", id)
		}
	}
}

// TestClusterFailoverTime kills the leader five times and reports the
// median time until the survivors agree on a new one. It takes a while:
// run it with NEBULA_SLOW=1.
func TestClusterFailoverTime(t *testing.T) {
	if os.Getenv("NEBULA_SLOW") == "" {
		t.Skip("set NEBULA_SLOW=1 to measure failover times")
	}
	c := newTestCluster(t, 3)
	c.startAll()
	var times []time.Duration
	for try := range 5 {
		li := c.waitAgreement(3, 30*time.Second)
		c.nodes[li].p.kill()
		killed := time.Now()
		nl := c.waitAgreement(3, 30*time.Second)
		if nl == li {
			t.Fatalf("try %d: killed node still leader", try)
		}
		d := time.Since(killed)
		times = append(times, d)
		t.Logf("try %d: leader %s killed, %s leads after %s", try+1, c.nodes[li].id, c.nodes[nl].id, d.Round(time.Millisecond))
		c.start(li)
		c.nodes[li].p.waitReady(60 * time.Second)
	}
	slices.Sort(times)
	t.Logf("failover times %v; median %s", times, times[len(times)/2].Round(time.Millisecond))
}

// assertAttemptsOnce checks that no attempt's result is journaled twice,
// that every attempt but a node's last ended with a lost lease, and
// returns how many attempts were lost that way.
func assertAttemptsOnce(t *testing.T, p *proc, id string) int {
	t.Helper()
	var j struct{ Items []journalEntry }
	p.mustCall("GET", "/v1/executions/"+id+"/journal", "", 200, &j)
	finished := map[string]int{}
	lost := 0
	for _, it := range j.Items {
		if it.Type != "node_attempt_finished" {
			continue
		}
		finished[it.IdempotencyKey]++
		if finished[it.IdempotencyKey] > 1 {
			t.Fatalf("execution %s: attempt %s recorded twice", id, it.IdempotencyKey)
		}
		if strings.Contains(it.Error, "lease of") {
			lost++
		} else if it.Error != "" {
			t.Fatalf("execution %s: attempt %s failed: %s", id, it.IdempotencyKey, it.Error)
		}
	}
	return lost
}

// executionIDs lists every execution a node holds, after a read barrier.
func executionIDs(t *testing.T, p *proc) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		var page struct {
			Items      []execution `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		p.mustCall("GET", "/v1/executions?limit=1000&consistent=true&cursor="+cursor, "", 200, &page)
		for _, e := range page.Items {
			ids = append(ids, e.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	sort.Strings(ids)
	return ids
}

// TestClusterCatchUpBySnapshot stops a follower, writes far more entries
// than the log keeps, and checks that the follower catches up.
func TestClusterCatchUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	li := c.waitAgreement(3, 20*time.Second)
	fi := (li + 1) % 3
	c.nodes[fi].p.kill()
	leader := c.nodes[li].p
	killed := time.Now()
	// Each workflow save is an entry. Write in rounds of 300 (more than
	// the snapshot threshold of 256) until the leader has taken a
	// snapshot since the follower died: the log before it, bar the last
	// 64 entries, is then trimmed, and the follower can only catch up
	// from the snapshot.
	snapDir := filepath.Join(c.nodes[li].dir, "data", "raft", "snapshots")
	snapshotSinceKill := func() bool {
		entries, _ := os.ReadDir(snapDir)
		for _, e := range entries {
			if info, err := e.Info(); err == nil && e.IsDir() && info.ModTime().After(killed) {
				return true
			}
		}
		return false
	}
	writes := 0
	for round := 0; ; round++ {
		if round == 10 {
			t.Fatalf("no snapshot in %s after %d writes", snapDir, writes)
		}
		for range 300 {
			def := fmt.Sprintf(`{"nodes":[{"id":"a","action":"builtin.noop"}],"name":"v%d"}`, writes)
			leader.mustCall("PUT", fmt.Sprintf("/v1/workflows/w%d", writes%50), def, 200, nil)
			writes++
		}
		deadline := time.Now().Add(5 * time.Second)
		for !snapshotSinceKill() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if snapshotSinceKill() {
			// Raft trims the log right after it persists a snapshot;
			// the trim cannot be observed from outside.
			time.Sleep(time.Second)
			break
		}
	}
	wantVersion := float64((writes + 50 - 1 - 49) / 50) // saves of w49
	c.start(fi)
	c.nodes[fi].p.waitReady(60 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var wf map[string]any
		status := c.nodes[fi].p.tryCall("GET", "/v1/workflows/w49", "", &wf)
		if status == 200 && wf["version"] == wantVersion {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower did not catch up: %d %v", status, wf["version"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The log line may still be on its way through the pipe.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(c.nodes[fi].p.logs.String(), "Installed remote snapshot"); {
		if time.Now().After(deadline) {
			t.Fatalf("follower logs mention no snapshot install:\n%s", tail(c.nodes[fi].p.logs.String(), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterLeaveRejoinAndNoLeader: a node stopped with SIGTERM leaves
// the configuration at once and is added back when it returns; with two
// of three nodes gone the third answers 503 instead of hanging.
func TestClusterLeaveRejoinAndNoLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	li := c.waitAgreement(3, 20*time.Second)

	out, err := exec.Command(binPath, "cluster", "members", "--server", c.nodes[0].p.url, "--token", testAdminToken).CombinedOutput()
	if err != nil {
		t.Fatalf("nebula cluster members: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || strings.Count(string(out), " yes\n") != 1 {
		t.Fatalf("nebula cluster members printed:\n%s", out)
	}

	fi := (li + 1) % 3
	c.nodes[fi].p.stop()
	c.waitAgreement(2, 10*time.Second)

	c.start(fi)
	c.nodes[fi].p.waitReady(60 * time.Second)
	c.waitAgreement(3, 40*time.Second)

	// Kill the two others: the last node has no quorum.
	last := c.nodes[li]
	for i, s := range c.nodes {
		if i != li {
			s.p.kill()
		}
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	status := last.p.call("PUT", "/v1/workflows/lonely", `{"nodes":[{"id":"a","action":"builtin.noop"}]}`, &e)
	if status != 503 || (e.Error.Code != "no_leader" && e.Error.Code != "unavailable") {
		t.Fatalf("write without quorum: %d %+v, want 503 no_leader or unavailable", status, e)
	}
	if status := last.p.tryCall("GET", "/readyz", "", nil); status != 503 {
		t.Errorf("readyz without quorum = %d, want 503", status)
	}
}

// TestClusterFourthNodeJoinsAndLeaves adds a node to a running cluster: it
// joins as a non-voter and is promoted; stopped gracefully, it is removed.
func TestClusterFourthNodeJoinsAndLeaves(t *testing.T) {
	c := newTestCluster(t, 4)
	c.expect = 3
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.nodes[i].p.waitReady(60 * time.Second)
	}
	c.waitAgreement(3, 20*time.Second)
	c.nodes[0].p.mustCall("PUT", "/v1/workflows/chain", chainWorkflowN, 200, nil)

	c.start(3)
	c.nodes[3].p.waitReady(60 * time.Second)
	c.waitAgreement(4, 30*time.Second)
	// The new voter serves the data written before it joined.
	var e execution
	c.nodes[3].p.mustCall("POST", "/v1/workflows/chain/executions?wait=20s", `{"input":{"n":1}}`, 200, &e)
	if e.Status != "succeeded" {
		t.Fatalf("execution via the fourth node: %s", e.Status)
	}

	c.nodes[3].p.stop()
	c.waitAgreement(3, 10*time.Second)
}

// TestClusterLateStarter starts two of three nodes, waits a minute, then
// the third: no group of two forms meanwhile, and the three form one.
// It takes a minute: run it with NEBULA_SLOW=1.
func TestClusterLateStarter(t *testing.T) {
	if os.Getenv("NEBULA_SLOW") == "" {
		t.Skip("set NEBULA_SLOW=1 to wait a minute for a late node")
	}
	c := newTestCluster(t, 3)
	c.start(0)
	c.start(1)
	until := time.Now().Add(time.Minute)
	for time.Now().Before(until) {
		for _, s := range c.nodes[:2] {
			if status := s.p.tryCall("GET", "/readyz", "", nil); status == 200 {
				t.Fatalf("node %s ready with only two of three coordinators up", s.id)
			}
		}
		time.Sleep(time.Second)
	}
	c.start(2)
	for _, s := range c.nodes {
		s.p.waitReady(60 * time.Second)
	}
	c.waitAgreement(3, 20*time.Second)
}

// TestClusterTimersSurviveLeaderKill: executions parked in durable timers
// finish after the leader that created the timers dies.
func TestClusterTimersSurviveLeaderKill(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	li := c.waitAgreement(3, 20*time.Second)
	f := c.nodes[(li+1)%3]
	f.p.mustCall("PUT", "/v1/workflows/park", `{"nodes":[{"id":"wait","action":"builtin.delay","params":{"duration":"2s"}}]}`, 200, nil)
	var ids []string
	for range 20 {
		var e execution
		f.p.mustCall("POST", "/v1/workflows/park/executions", `{}`, 201, &e)
		ids = append(ids, e.ID)
	}
	c.nodes[li].p.kill()
	for _, id := range ids {
		var e execution
		f.p.mustCall("GET", "/v1/executions/"+id+"?wait=30s", "", 200, &e)
		if e.Status != "succeeded" {
			t.Fatalf("execution %s: %s after the leader died", id, e.Status)
		}
	}
}

// TestClusterCronAcrossLeaderKill runs an @every 1s cron for about 20 s
// while the leader is killed: each tick fires at most once, and ticks fire
// whenever a leader exists.
func TestClusterCronAcrossLeaderKill(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	li := c.waitAgreement(3, 20*time.Second)
	f := c.nodes[(li+1)%3]
	f.p.mustCall("PUT", "/v1/workflows/tick", `{"triggers":[{"type":"cron","schedule":"@every 1s"}],"nodes":[{"id":"n","action":"builtin.noop"}]}`, 200, nil)
	start := time.Now()
	time.Sleep(8 * time.Second)
	c.nodes[li].p.kill()
	killed := time.Now()
	c.waitAgreement(3, 20*time.Second)
	elected := time.Now()
	time.Sleep(10 * time.Second)
	end := time.Now()

	var list struct {
		Items []struct {
			Input struct {
				Tick time.Time `json:"tick"`
			} `json:"input"`
		} `json:"items"`
	}
	f.p.mustCall("GET", "/v1/executions?workflow=tick&limit=1000&consistent=true", "", 200, &list)
	seen := map[time.Time]bool{}
	for _, it := range list.Items {
		if seen[it.Input.Tick] {
			t.Fatalf("tick %s fired twice", it.Input.Tick)
		}
		seen[it.Input.Tick] = true
	}
	// Ticks while a leader existed: from the save to the kill, and from
	// the new election to the end; allow one at each edge.
	withLeader := int(killed.Sub(start).Seconds()) + int(end.Sub(elected).Seconds())
	t.Logf("%d executions for about %d ticks with a leader (%s without one)", len(list.Items), withLeader, elected.Sub(killed).Round(time.Millisecond))
	if d := len(list.Items) - withLeader; d < -3 || d > 3 {
		t.Fatalf("%d executions, want about %d (one per tick while a leader existed)", len(list.Items), withLeader)
	}
}

// TestWorkerFailsOverBetweenServers runs a three-node control plane (no
// local workers) and one remote worker given all three addresses; the
// node the worker talks to is killed, and work goes on through another.
func TestWorkerFailsOverBetweenServers(t *testing.T) {
	c := newTestCluster(t, 3)
	c.role = "control-plane"
	c.startAll()
	c.waitAgreement(3, 20*time.Second)
	var urls []string
	for _, s := range c.nodes {
		urls = append(urls, s.p.url)
	}
	startProc(t, "worker", "--server", strings.Join(urls, ","), "--id", "w1", "--lease-ttl", "3s")
	run := func(via *serverNode, n int) {
		t.Helper()
		for i := range n {
			var e execution
			via.p.mustCall("POST", "/v1/workflows/chain/executions?wait=30s", fmt.Sprintf(`{"input":{"n":%d}}`, i), 200, &e)
			if e.Status != "succeeded" {
				t.Fatalf("execution via %s: %s (error %v)", via.id, e.Status, e.Error)
			}
		}
	}
	c.nodes[1].p.mustCall("PUT", "/v1/workflows/chain", chainWorkflowN, 200, nil)
	run(c.nodes[1], 5)
	// The worker talks to the first address: kill that node.
	c.nodes[0].p.kill()
	c.waitAgreement(3, 20*time.Second)
	run(c.nodes[1], 5)
}
