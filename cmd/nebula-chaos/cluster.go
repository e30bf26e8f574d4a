package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clusterConfig tightens timings so that failures are detected and
// repaired in seconds; it is the one the process tests in cmd/nebula use.
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

// cluster is three `nebula server` processes, on 127.0.0.1-3 or, when
// partitions are wanted, each in a network namespace of its own.
type cluster struct {
	bin   string
	env   []string // the servers' environment: master key and tokens
	token string   // admin token sent on every request
	nodes []*node
	lab   *netLab // nil on loopback
	http  *http.Client
	logf  func(format string, args ...any)
}

// node is one server: where it listens, its data, and its current process.
type node struct {
	idx               int
	id, ip            string
	api, raft, gossip string
	dir               string
	wrap              []string // command prefix, e.g. `ip netns exec NS`
	join              []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process exits
	paused   bool          // SIGSTOPped
	restarts int
}

func (n *node) url() string { return "http://" + n.api }

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// newCluster lays out three nodes under dir. With lab, node i lives in
// the lab's i-th namespace on the standard ports; without, on 127.0.0.i
// with ports free now.
//
// maxRunning, when positive, bounds the running executions
// (engine.max_concurrent_executions), so that some wait as pending;
// insecure runs the peers in plain text (cluster.insecure_transport)
// instead of the default mutual TLS.
func newCluster(bin, dir string, lab *netLab, maxRunning int, insecure bool, logf func(string, ...any)) (*cluster, error) {
	c := &cluster{
		bin:   bin,
		token: "chaos-" + randomHex(16),
		lab:   lab,
		logf:  logf,
		// No client-wide timeout: each request carries its own context.
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 32,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}},
	}
	// Every server must hold the same master key; auth, where it is on,
	// takes the admin token from the environment.
	c.env = append(os.Environ(),
		"NEBULA_MASTER_KEY="+randomHex(32),
		"NEBULA_ADMIN_TOKEN="+c.token,
		"NEBULA_WORKER_TOKEN=chaos-worker-"+randomHex(16),
	)
	for i := range 3 {
		n := &node{idx: i, id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
		if lab != nil {
			n.ip, n.wrap = lab.ips[i], []string{"ip", "netns", "exec", lab.ns[i]}
			n.api, n.raft, n.gossip = n.ip+":8787", n.ip+":8788", n.ip+":8789"
		} else {
			n.ip = fmt.Sprintf("127.0.0.%d", i+1)
			var ports [3]string
			for j := range ports {
				p, err := freePort(n.ip)
				if err != nil {
					return nil, err
				}
				ports[j] = p
			}
			n.api, n.raft, n.gossip = net.JoinHostPort(n.ip, ports[0]), net.JoinHostPort(n.ip, ports[1]), net.JoinHostPort(n.ip, ports[2])
		}
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			return nil, err
		}
		config := clusterConfig
		if insecure {
			config = strings.Replace(config, "[cluster]\n", "[cluster]\ninsecure_transport = true\n", 1)
		}
		if maxRunning > 0 {
			config += fmt.Sprintf("[engine]\nmax_concurrent_executions = %d\n", maxRunning)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "nebula.toml"), []byte(config), 0o600); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		for _, o := range c.nodes {
			if o != n {
				n.join = append(n.join, o.gossip)
			}
		}
	}
	return c, nil
}

// freePort returns a TCP port free on ip now (the gossip port is used for
// UDP too, which is free as well in practice).
func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// start runs node n over its data dir, its output appended to nebula.log
// there, and returns once the process is started.
func (c *cluster) start(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	logFile, err := os.OpenFile(filepath.Join(n.dir, "nebula.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "=== nebula-chaos: start #%d at %s\n", n.restarts+1, time.Now().Format(time.RFC3339Nano))
	argv := append(append([]string{}, n.wrap...), c.bin, "server",
		"--config", filepath.Join(n.dir, "nebula.toml"),
		"--node-id", n.id,
		"--data", filepath.Join(n.dir, "data"),
		"--bind", n.api,
		"--raft-addr", n.raft,
		"--gossip-addr", n.gossip,
		"--join", strings.Join(n.join, ","),
		"--bootstrap-expect", "3",
	)
	// `ip netns exec` execs the binary in place, so signals sent to the
	// child reach nebula itself.
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A process group of its own: a Ctrl-C at the terminal reaches the
	// harness only, which then stops the servers; and should the harness
	// die, the kernel kills its servers rather than leave them running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(done)
	}()
	n.cmd, n.done, n.paused = cmd, done, false
	n.restarts++
	return nil
}

// running reports whether n's process is alive and not paused.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.paused {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill stops n with SIGKILL, as a crash would, and waits until it is gone.
func (n *node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL) // a stopped process dies too
	<-done
}

// pause freezes n (SIGSTOP): it holds its sockets but answers nothing.
func (n *node) pause() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.paused = true
	return nil
}

// resume undoes pause.
func (n *node) resume() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.paused = false
	return n.cmd.Process.Signal(syscall.SIGCONT)
}

// startAll starts the three nodes at once.
func (c *cluster) startAll() error {
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			return fmt.Errorf("starting %s: %w", n.id, err)
		}
	}
	return nil
}

// stopAll kills every node: the data is not needed in a clean state.
func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		n.kill()
	}
}

// call sends one request to n and decodes a 2xx JSON answer into out. It
// returns the HTTP status (0 when no answer came) and the error code of an
// error answer.
func (c *cluster) call(ctx context.Context, n *node, method, path string, body any, out any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, n.url()+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err // the answer was cut: its status cannot be trusted
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Code, fmt.Errorf("%s %s on %s: %d %s: %s", method, path, n.id, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("decoding %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, "", nil
}

// clusterInfo is GET /v1/cluster.
type clusterInfo struct {
	Leader  string `json:"leader"`
	Members []struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	} `json:"members"`
}

// waitAgreement waits until every running node outside skip reports the
// same running leader and three voters, and returns the leader.
func (c *cluster) waitAgreement(ctx context.Context, timeout time.Duration, skip ...*node) (*node, error) {
	deadline := time.Now().Add(timeout)
	last := "no node answered"
	for {
		leader, agreed, asked := "", true, 0
		for _, n := range c.nodes {
			if !n.running() || contains(skip, n) {
				continue
			}
			asked++
			var ci clusterInfo
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			_, _, err := c.call(rctx, n, http.MethodGet, "/v1/cluster", nil, &ci)
			cancel()
			voters := 0
			for _, m := range ci.Members {
				if m.Voter {
					voters++
				}
			}
			if err != nil || ci.Leader == "" || voters != len(c.nodes) || (leader != "" && ci.Leader != leader) {
				last = fmt.Sprintf("%s: leader %q, %d voters, err %v", n.id, ci.Leader, voters, err)
				agreed = false
				break
			}
			leader = ci.Leader
		}
		if agreed && asked > 0 {
			for _, n := range c.nodes {
				// A leader that is not running is a stale belief.
				if n.id == leader && n.running() && !contains(skip, n) {
					return n, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no agreement on a leader after %s; last: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func contains(ns []*node, n *node) bool {
	for _, o := range ns {
		if o == n {
			return true
		}
	}
	return false
}

// netLab is a set of network namespaces joined by a bridge in the root
// namespace, one per node, each with its own IP. A node is partitioned
// by blackhole routes between its namespace and its peers': the peers
// cannot reach each other, while the harness, on the bridge, still reaches
// every node, so that clients keep talking to the cut-off side.
type netLab struct {
	bridge string
	ns     []string
	links  []string
	ips    []string
}

// newNetLab makes three hosts. It returns an error where namespaces cannot
// be made (not root, no iproute2), and the caller then runs on loopback.
func newNetLab() (*netLab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("network namespaces need iproute2 (ip)")
	}
	// Short names (interfaces are at most 15 bytes), unique per process,
	// and a subnet apart from the one cmd/nebula's partition test uses.
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	subnet := fmt.Sprintf("10.214.%d", os.Getpid()%250)
	l := &netLab{bridge: "nbcbr" + tag}
	if err := run("ip", "link", "add", l.bridge, "type", "bridge"); err != nil {
		return nil, fmt.Errorf("cannot make a bridge here: %w", err)
	}
	steps := [][]string{
		{"ip", "addr", "add", subnet + ".254/24", "dev", l.bridge},
		{"ip", "link", "set", l.bridge, "up"},
	}
	for i := range 3 {
		ns := fmt.Sprintf("nbc%s-%d", tag, i+1)
		host, peer := fmt.Sprintf("nbc%sh%d", tag, i+1), fmt.Sprintf("nbc%sn%d", tag, i+1)
		ip := fmt.Sprintf("%s.%d", subnet, i+1)
		l.ns, l.links, l.ips = append(l.ns, ns), append(l.links, host), append(l.ips, ip)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"ip", "link", "set", peer, "netns", ns},
			[]string{"ip", "link", "set", host, "master", l.bridge},
			[]string{"ip", "link", "set", host, "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "addr", "add", ip + "/24", "dev", peer},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			l.destroy()
			return nil, err
		}
	}
	return l, nil
}

// partition cuts host i off from the other hosts, both ways.
func (l *netLab) partition(i int) error {
	return l.routes(i, "add")
}

// heal undoes partition.
func (l *netLab) heal(i int) error {
	return l.routes(i, "del")
}

func (l *netLab) routes(i int, op string) error {
	var errs []error
	for j := range l.ns {
		if j == i {
			continue
		}
		errs = append(errs,
			run("ip", "netns", "exec", l.ns[i], "ip", "route", op, "blackhole", l.ips[j]+"/32"),
			run("ip", "netns", "exec", l.ns[j], "ip", "route", op, "blackhole", l.ips[i]+"/32"))
	}
	return errors.Join(errs...)
}

func (l *netLab) destroy() {
	// Deleting one end of a veth pair deletes both.
	for _, link := range l.links {
		run("ip", "link", "del", link)
	}
	for _, ns := range l.ns {
		run("ip", "netns", "del", ns)
	}
	run("ip", "link", "del", l.bridge)
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Fault kinds, in the order they are injected by default.
const (
	faultKillLeader      = "kill-leader"
	faultKillFollower    = "kill-follower"
	faultPause           = "pause"
	faultPartition       = "partition"
	faultPartitionLeader = "partition-leader"
)

var allFaults = []string{faultKillLeader, faultKillFollower, faultPause, faultPartition, faultPartitionLeader}

// needsNetwork tells the faults that need the namespaces.
func needsNetwork(kind string) bool {
	return kind == faultPartition || kind == faultPartitionLeader
}

// faultRecord is one injected fault, its times relative to the run's start.
type faultRecord struct {
	Kind      string        `json:"kind"`
	Node      string        `json:"node"`
	Start     time.Duration `json:"start"`
	Healed    time.Duration `json:"healed"`    // process back or network healed
	Recovered time.Duration `json:"recovered"` // three nodes agree on a leader again
	Note      string        `json:"note,omitempty"`
	Err       string        `json:"err,omitempty"`
}

// faulter injects faults into a cluster and heals them.
type faulter struct {
	c    *cluster
	stop context.Context // ends only when the harness is interrupted
	t0   time.Time
	hold time.Duration
	pick func(n int) int // a random index below n
}

func (f *faulter) since() time.Duration { return time.Since(f.t0).Round(time.Millisecond) }

// inject runs one fault of kind: it picks the victim, breaks it, keeps it
// broken for f.hold, heals it, and waits until the cluster agrees again.
// It always heals, even when ctx ends meanwhile.
func (f *faulter) inject(ctx context.Context, kind string) faultRecord {
	rec := faultRecord{Kind: kind}
	leader, err := f.c.waitAgreement(ctx, 30*time.Second)
	if err != nil {
		rec.Err = "before the fault: " + err.Error()
		rec.Start = f.since()
		return rec
	}
	victim := leader
	if kind == faultKillFollower || kind == faultPartition {
		var followers []*node
		for _, n := range f.c.nodes {
			if n != leader {
				followers = append(followers, n)
			}
		}
		victim = followers[f.pick(len(followers))]
	} else if kind == faultPause {
		victim = f.c.nodes[f.pick(len(f.c.nodes))]
	}
	rec.Node = victim.id
	if victim == leader {
		rec.Node += " (leader)"
	}
	rec.Start = f.since()
	f.c.logf("fault %s on %s at +%s", kind, rec.Node, rec.Start)
	broken := time.Now()

	var heal func() error
	switch kind {
	case faultKillLeader, faultKillFollower:
		victim.kill()
		heal = func() error { return f.c.start(victim) }
	case faultPause:
		if err := victim.pause(); err != nil {
			rec.Err = err.Error()
			return rec
		}
		heal = victim.resume
	case faultPartition, faultPartitionLeader:
		if err := f.c.lab.partition(victim.idx); err != nil {
			rec.Err = err.Error()
			f.c.lab.heal(victim.idx)
			return rec
		}
		heal = func() error { return f.c.lab.heal(victim.idx) }
	}
	// While the victim is out, the others should agree on a leader: note
	// how long that took (a new election when the victim led).
	hctx, cancel := context.WithTimeout(ctx, f.hold)
	if nl, err := f.c.waitAgreement(hctx, f.hold, victim); err == nil {
		rec.Note = fmt.Sprintf("the others agree on %s after %s", nl.id, time.Since(broken).Round(time.Millisecond))
	} else {
		rec.Note = fmt.Sprintf("the others did not agree on a leader within %s", f.hold)
	}
	<-hctx.Done()
	cancel()

	if err := heal(); err != nil {
		rec.Err = "healing: " + err.Error()
	}
	rec.Healed = f.since()
	// Recovery is not cut short when the load ends: the next fault, and
	// the final checks, need a whole cluster.
	if _, err := f.c.waitAgreement(f.stop, 60*time.Second); err != nil {
		rec.Err = strings.TrimPrefix(rec.Err+"; ", "; ") + "after healing: " + err.Error()
	}
	rec.Recovered = f.since()
	f.c.logf("fault %s on %s healed at +%s, cluster whole at +%s; %s", kind, rec.Node, rec.Healed, rec.Recovered, rec.Note)
	return rec
}

// run injects the kinds in turn, one every interval from t0+interval,
// as long as a fault can be healed before the load ends at end, and
// returns what it did.
func (f *faulter) run(ctx context.Context, kinds []string, interval time.Duration, end time.Time) []faultRecord {
	var recs []faultRecord
	if len(kinds) == 0 {
		return nil
	}
	next := f.t0.Add(interval)
	for i := 0; next.Add(f.hold).Before(end); i++ {
		select {
		case <-ctx.Done():
			return recs
		case <-time.After(time.Until(next)):
		}
		if ctx.Err() != nil {
			return recs
		}
		recs = append(recs, f.inject(ctx, kinds[i%len(kinds)]))
		// Healing comes before the next fault, even when it took longer
		// than the interval.
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
	return recs
}
