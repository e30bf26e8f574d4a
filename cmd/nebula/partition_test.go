package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// netLab is a set of network namespaces joined by a bridge in the root
// namespace: one host per node, each with its own IP, so that a node can
// be cut off by taking its link down.
type netLab struct {
	t      *testing.T
	bridge string
	ns     []string
	links  []string // host side of each namespace's veth
}

// newNetLab makes n hosts, or skips the test where namespaces cannot be
// made (not root, no iproute2).
func newNetLab(t *testing.T, n int) (*netLab, []testHost) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2 (ip)")
	}
	// Names are short (interface names are at most 15 bytes) and unique
	// per process, so parallel runs do not collide.
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	subnet := fmt.Sprintf("10.213.%d", os.Getpid()%250)
	lab := &netLab{t: t, bridge: "nbbr" + tag}
	t.Cleanup(lab.destroy)
	if err := lab.run("ip", "link", "add", lab.bridge, "type", "bridge"); err != nil {
		t.Skipf("cannot make a bridge here: %v", err)
	}
	lab.must("ip", "addr", "add", subnet+".254/24", "dev", lab.bridge)
	lab.must("ip", "link", "set", lab.bridge, "up")
	hosts := make([]testHost, n)
	for i := range n {
		ns := fmt.Sprintf("nb%s-%d", tag, i+1)
		host, peer := fmt.Sprintf("nb%sh%d", tag, i+1), fmt.Sprintf("nb%sn%d", tag, i+1)
		ip := fmt.Sprintf("%s.%d", subnet, i+1)
		lab.must("ip", "netns", "add", ns)
		lab.ns = append(lab.ns, ns)
		lab.must("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		lab.links = append(lab.links, host)
		lab.must("ip", "link", "set", peer, "netns", ns)
		lab.must("ip", "link", "set", host, "master", lab.bridge)
		lab.must("ip", "link", "set", host, "up")
		lab.must("ip", "netns", "exec", ns, "ip", "addr", "add", ip+"/24", "dev", peer)
		lab.must("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
		lab.must("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
		hosts[i] = testHost{ip: ip, ports: [3]string{"8787", "8788", "8789"}, wrap: []string{"ip", "netns", "exec", ns}}
	}
	return lab, hosts
}

func (l *netLab) run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return nil
}

func (l *netLab) must(argv ...string) {
	l.t.Helper()
	if err := l.run(argv...); err != nil {
		l.t.Fatal(err)
	}
}

// cut takes host i off the network; heal puts it back.
func (l *netLab) cut(i int)  { l.must("ip", "link", "set", l.links[i], "down") }
func (l *netLab) heal(i int) { l.must("ip", "link", "set", l.links[i], "up") }

func (l *netLab) destroy() {
	// Deleting one end of a veth pair deletes both; a namespace may
	// outlive `ip netns del` while the kernel still holds it.
	for _, link := range l.links {
		l.run("ip", "link", "del", link)
	}
	for _, ns := range l.ns {
		l.run("ip", "netns", "del", ns)
	}
	l.run("ip", "link", "del", l.bridge)
}

// TestClusterPartition cuts the leader off from the other two nodes: the
// majority elects a new leader and keeps running executions; on heal the
// cut-off node catches up and lists the same executions.
func TestClusterPartition(t *testing.T) {
	lab, hosts := newNetLab(t, 3)
	c := newTestClusterOn(t, hosts)
	// The processes' cleanups are registered after the lab's, so they
	// run first: every process stops before its namespace is deleted.
	c.startAll()
	li := c.waitAgreement(3, 30*time.Second)
	maj := c.nodes[(li+1)%3]
	maj.p.mustCall("PUT", "/v1/workflows/chain", chainWorkflowN, 200, nil)

	// Executions in flight when the leader is cut off.
	var ids []string
	for i := range 30 {
		var e execution
		c.nodes[i%3].p.mustCall("POST", "/v1/workflows/chain/executions", fmt.Sprintf(`{"input":{"n":%d}}`, i), 201, &e)
		ids = append(ids, e.ID)
	}
	lab.cut(li)
	cut := c.nodes[li]
	// The test cannot reach the cut-off node either: leave it out of the
	// agreement the majority must reach.
	c.nodes[li] = &serverNode{id: cut.id}
	nl := c.waitAgreement(3, 20*time.Second)
	c.nodes[li] = cut
	t.Logf("leader %s cut off; %s leads the majority", cut.id, c.nodes[nl].id)

	// The majority keeps taking and running executions.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e execution
			maj.p.mustCall("POST", "/v1/workflows/chain/executions?wait=30s", fmt.Sprintf(`{"input":{"n":%d}}`, 100+i), 200, &e)
			if e.Status != "succeeded" {
				t.Errorf("execution during the partition: %s (error %v)", e.Status, e.Error)
			}
			mu.Lock()
			ids = append(ids, e.ID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, id := range ids {
		var e execution
		maj.p.mustCall("GET", "/v1/executions/"+id+"?wait=30s", "", 200, &e)
		if e.Status != "succeeded" {
			t.Fatalf("execution %s: %s during the partition (error %v)", id, e.Status, e.Error)
		}
		assertAttemptsOnce(t, maj.p, id)
	}

	lab.heal(li)
	c.waitAgreement(3, 30*time.Second)
	want := executionIDs(t, maj.p)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := executionIDs(t, cut.p)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healed node %s lists %d executions, the majority %d", cut.id, len(got), len(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids {
		if !slices.Contains(want, id) {
			t.Fatalf("execution %s missing after heal", id)
		}
	}
}
