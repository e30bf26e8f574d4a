package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nebula-engine/nebula/internal/pki"
	"github.com/nebula-engine/nebula/storage/secrets"
)

// What a peer connection starts with after its TLS handshake, to say that
// Raft or HTTP follows (see cluster/transport.go).
const (
	peerProtoRaft = 'R'
	peerProtoHTTP = 'H'
)

// derivedCA is the cluster CA that nodes holding masterKey derive.
func derivedCA(t *testing.T, masterKey string) *pki.CA {
	t.Helper()
	keys, _, err := secrets.LoadKeys(t.TempDir(), masterKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.DeriveCA(secrets.DeriveKey(keys[0], "cluster-ca"))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// nodeCert issues a peer certificate under ca.
func nodeCert(t *testing.T, ca *pki.CA, node string) tls.Certificate {
	t.Helper()
	cert, key, err := ca.Issue(pki.NodeRequest{NodeID: node, KeyType: pki.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// tlsStream is a raft.StreamLayer that dials peers with a given
// certificate, as a node would: a test can then speak Raft to a node with
// a certificate of its choice.
type tlsStream struct {
	ln   net.Listener
	cert tls.Certificate
}

func newTLSStream(t *testing.T, cert tls.Certificate) *tlsStream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &tlsStream{ln: ln, cert: cert}
}

func (s *tlsStream) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *tlsStream) Close() error              { return s.ln.Close() }
func (s *tlsStream) Addr() net.Addr            { return s.ln.Addr() }
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		// The node's side is what the tests examine.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{peerProtoRaft}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// raftProbe sends AppendEntries and InstallSnapshot to addr over trans,
// claiming a high term, and returns their errors.
func raftProbe(trans raft.Transport, addr string) (appendErr, snapshotErr error) {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.9:1")}
	var ar raft.AppendEntriesResponse
	appendErr = trans.AppendEntries("n1", raft.ServerAddress(addr), &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: 1000, Entries: []*raft.Log{{Index: 1 << 20, Term: 1000, Type: raft.LogCommand, Data: []byte("x")}},
	}, &ar)
	var sr raft.InstallSnapshotResponse
	snap := []byte("not a snapshot")
	snapshotErr = trans.InstallSnapshot("n1", raft.ServerAddress(addr), &raft.InstallSnapshotRequest{
		RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: 1000, LastLogIndex: 1 << 20, LastLogTerm: 1000,
		Size: int64(len(snap)), Configuration: []byte{}, ConfigurationIndex: 1,
	}, &sr, bytes.NewReader(snap))
	return appendErr, snapshotErr
}

// TestPeerPortRefusesStrangers: hashicorp/raft's own TCP transport, and
// Raft over TLS with a certificate of another master key, cannot send
// AppendEntries or InstallSnapshot to a running node; its term and state
// stay as they were, and it logs the refused handshakes once.
func TestPeerPortRefusesStrangers(t *testing.T) {
	c := newTestCluster(t, 1)
	c.startAll()
	c.waitAgreement(1, 20*time.Second)
	n := c.nodes[0]
	n.p.mustCall("PUT", "/v1/workflows/kept", `{"nodes":[{"id":"a","action":"builtin.noop"}]}`, 200, nil)
	before := scrapeMetrics(t, n.p)

	stranger, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	appendErr, snapErr := raftProbe(stranger, n.raft)
	if appendErr == nil || snapErr == nil {
		t.Fatalf("a plain-text stranger was answered: AppendEntries %v, InstallSnapshot %v", appendErr, snapErr)
	}

	// Raft over TLS with a certificate derived from another master key.
	foreign := nodeCert(t, derivedCA(t, strings.Repeat("ab", 32)), "n9")
	ft := raft.NewNetworkTransport(newTLSStream(t, foreign), 1, 2*time.Second, io.Discard)
	defer ft.Close()
	appendErr, snapErr = raftProbe(ft, n.raft)
	if appendErr == nil || snapErr == nil {
		t.Fatalf("a node of another master key was answered: AppendEntries %v, InstallSnapshot %v", appendErr, snapErr)
	}

	// The control: the same probe with a certificate of this cluster's
	// CA reaches Raft, which answers (and refuses the claims on its own
	// terms); it shows the probes above were refused by the handshake.
	// It runs on another address so that the node logs it apart.
	member := nodeCert(t, derivedCA(t, testClusterKey), "n1")
	mt := raft.NewNetworkTransport(newTLSStream(t, member), 1, 2*time.Second, io.Discard)
	defer mt.Close()
	var ar raft.AppendEntriesResponse
	if err := mt.AppendEntries("n1", raft.ServerAddress(n.raft), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n1"), Addr: []byte(n.raft)}, Term: 0,
	}, &ar); err != nil {
		t.Fatalf("a certificate of the cluster's CA could not reach Raft: %v", err)
	}

	// An AppendEntries of term 1000 that got through would have moved the
	// term and deposed the leader. (The applied index moves on its own:
	// the leader's maintenance writes entries.)
	after := scrapeMetrics(t, n.p)
	for _, m := range []string{"nebula_raft_term", "nebula_raft_state", "nebula_raft_leader_changes_total"} {
		if before[m] != after[m] {
			t.Errorf("%s moved from %v to %v", m, before[m], after[m])
		}
	}
	var wf map[string]any
	n.p.mustCall("GET", "/v1/workflows/kept", "", 200, &wf)

	logs := n.p.logs.String()
	if got := strings.Count(logs, `msg="refused a peer connection"`); got != 1 {
		t.Fatalf("%d refusal lines for probes from one address, want 1 (rate-limited):\n%s", got, tail(logs, 30))
	}
	if !strings.Contains(logs, "does not speak TLS") {
		t.Fatalf("the refusal does not say why:\n%s", tail(logs, 30))
	}
}

// TestForeignNodeCannotJoin: a node started with another master key, or
// with the right key but certificates of another CA, is refused by gossip
// (it never appears among the members) and by Raft.
func TestForeignNodeCannotJoin(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	c.waitAgreement(3, 20*time.Second)
	seed := c.nodes[0]

	dir := t.TempDir()
	other, err := pki.NewCA(pki.CAOptions{CommonName: "another cluster"})
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := other.Issue(pki.NodeRequest{NodeID: "n5", IPs: []net.IP{net.ParseIP("127.0.0.5")}})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKey(otherKey)
	caFile := writeFile(t, dir, "ca.pem", string(pki.EncodeCert(other.Cert)))
	certFile := writeFile(t, dir, "n5.pem", string(pki.EncodeCert(otherCert)))
	keyFile := writeFile(t, dir, "n5-key.pem", string(keyPEM))

	for _, tc := range []struct {
		id, ip, key, extra string
	}{
		{"n4", "127.0.0.4", strings.Repeat("cd", 32), ""},
		{"n5", "127.0.0.5", testClusterKey, fmt.Sprintf("[cluster.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", caFile, certFile, keyFile)},
	} {
		cfg := writeFile(t, dir, tc.id+".toml", clusterConfig+tc.extra)
		p := startProcEnv(t, []string{"NEBULA_MASTER_KEY=" + tc.key},
			"server", "--config", cfg, "--node-id", tc.id, "--data", filepath.Join(dir, tc.id),
			"--bind", tc.ip+":"+freePort(t, tc.ip), "--raft-addr", tc.ip+":"+freePort(t, tc.ip),
			"--gossip-addr", tc.ip+":"+freePort(t, tc.ip), "--join", seed.gossip, "--bootstrap-expect", "3")
		defer p.kill()
	}
	// Gossip: neither ever shows among the members, and the refusal of
	// the node with the other CA is logged with its reason.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.nodes {
			ci, _ := c.info(s)
			for _, m := range ci.Members {
				if m.ID == "n4" || m.ID == "n5" {
					t.Fatalf("%s lists the foreign node %s: %+v", s.id, m.ID, ci)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var refused bool
	for _, s := range c.nodes {
		logs := s.p.logs.String()
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `msg="refusing gossip member"`) && strings.Contains(line, "member=n5") && strings.Contains(line, "does not trust") {
				refused = true
			}
		}
	}
	if !refused {
		t.Fatalf("no node logged refusing n5 for its CA:\n%s", tail(seed.p.logs.String(), 30))
	}

	// Raft: the node with the other CA cannot speak Raft to a member.
	cert := tls.Certificate{Certificate: [][]byte{otherCert.Raw}, PrivateKey: otherKey}
	ft := raft.NewNetworkTransport(newTLSStream(t, cert), 1, 2*time.Second, io.Discard)
	defer ft.Close()
	if a, s := raftProbe(ft, seed.raft); a == nil || s == nil {
		t.Fatalf("a certificate of another CA reached Raft: %v, %v", a, s)
	}
	c.waitAgreement(3, 10*time.Second)
}

// clusterConfigWith is clusterConfig with more keys in its [cluster]
// table.
func clusterConfigWith(keys string) string {
	return strings.Replace(clusterConfig, "[cluster]\n", "[cluster]\n"+keys, 1)
}

// startProcEnv is startProc with extra environment variables, which win
// over the ones startProc sets.
func startProcEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startWrappedEnv(t, nil, env, args...)
}

// TestMixedTransportRefusesToForm: a plain-text node and TLS nodes do not
// form one cluster, and the log says why.
func TestMixedTransportRefusesToForm(t *testing.T) {
	c := newTestCluster(t, 3)
	writeFile(t, filepath.Dir(c.nodes[2].config), filepath.Base(c.nodes[2].config), clusterConfigWith("insecure_transport = true\n"))
	for i := range c.nodes {
		c.start(i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var found bool
		for _, s := range c.nodes[:2] {
			for _, line := range strings.Split(s.p.logs.String(), "\n") {
				if strings.Contains(line, "refusing gossip member") && strings.Contains(line, "member=n3") && strings.Contains(line, "insecure_transport") {
					found = true
				}
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS node logged refusing the plain-text n3:\n%s", tail(c.nodes[0].p.logs.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(c.nodes[2].p.logs.String(), "PLAIN TEXT") {
		t.Fatalf("the plain-text node did not warn at start:\n%s", tail(c.nodes[2].p.logs.String(), 30))
	}
	// bootstrap_expect = 3 is never met: nobody becomes ready.
	for _, s := range c.nodes {
		if code := s.p.tryCall("GET", "/readyz", "", nil); code == 200 {
			t.Fatalf("%s is ready in a cluster that must not form", s.id)
		}
	}
}

// recordingProxy forwards TCP connections to target and keeps every byte
// that crosses it, both ways.
type recordingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	seen   bytes.Buffer
}

func startProxy(t *testing.T, ip, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
	return p
}

func (p *recordingProxy) pipe(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				p.seen.Write(buf[:n])
				p.mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(u, c)
	go cp(c, u)
	<-done
}

func (p *recordingProxy) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.seen.Bytes())
}

// TestPeerTrafficIsEncrypted: every node advertises a recording proxy in
// front of its Raft port, so all peer traffic (Raft and internal calls)
// crosses the proxies. A distinctive input never appears in what they
// saw; with insecure_transport it does, which shows the test can see it.
func TestPeerTrafficIsEncrypted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		insecure  bool
		wantClear bool
	}{
		{"mtls", false, false},
		{"insecure_transport", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, 3)
			var proxies []*recordingProxy
			for _, s := range c.nodes {
				p := startProxy(t, s.ip, s.raft)
				proxies = append(proxies, p)
				extra := fmt.Sprintf("advertise_raft_addr = %q\n", p.ln.Addr().String())
				if tc.insecure {
					extra += "insecure_transport = true\n"
				}
				writeFile(t, filepath.Dir(s.config), filepath.Base(s.config), clusterConfigWith(extra))
			}
			c.startAll()
			li := c.waitAgreement(3, 20*time.Second)
			follower := c.nodes[(li+1)%3]
			follower.p.mustCall("PUT", "/v1/workflows/echo", `{"nodes":[{"id":"a","action":"builtin.set","params":{"value":"{{ input }}"}}]}`, 200, nil)
			canary := "nebula-canary-" + strings.Repeat("7", 24)
			var e execution
			follower.p.mustCall("POST", "/v1/workflows/echo/executions?wait=20s", `{"input":{"secret":"`+canary+`"}}`, 200, &e)
			if e.Status != "succeeded" || !strings.Contains(string(e.Output), canary) {
				t.Fatalf("execution: %s %s", e.Status, e.Output)
			}
			// Every node has applied it: the entry crossed to each.
			for _, s := range c.nodes {
				s.p.mustCall("GET", "/v1/executions/"+e.ID+"?consistent=true", "", 200, nil)
			}
			var total int
			var clear bool
			for _, p := range proxies {
				b := p.bytes()
				total += len(b)
				if bytes.Contains(b, []byte(canary)) {
					clear = true
				}
			}
			if total < 1000 {
				t.Fatalf("the proxies saw only %d bytes: traffic did not cross them", total)
			}
			if clear != tc.wantClear {
				t.Fatalf("the canary crossed the proxies in clear: %v, want %v (%d bytes seen)", clear, tc.wantClear, total)
			}
		})
	}
}

// TestCertRotationUnderLoad: three nodes on certificates of a CA of their
// own (made with `nebula tls`) move to a new CA while clients keep
// starting executions through every node: the new CA is added beside the
// old, nodes get certificates of the new one, the old is removed. No
// request fails, and afterwards a certificate of the old CA is refused.
func TestCertRotationUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3)
	pkiDir := t.TempDir()
	tlsCLI := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(binPath, append(args, "--out-dir", dir)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nebula %v: %v\n%s", args, err, out)
		}
	}
	old, next := filepath.Join(pkiDir, "old"), filepath.Join(pkiDir, "new")
	for _, d := range []string{old, next} {
		tlsCLI(d, "tls", "ca", "create")
		for _, s := range c.nodes {
			tlsCLI(d, "tls", "cert", "create", "--node", s.id, "--ip", s.ip,
				"--ca", filepath.Join(d, "nebula-ca.pem"), "--ca-key", filepath.Join(d, "nebula-ca-key.pem"))
		}
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Each node's files live in its own directory; they are replaced
	// by rename, as a deploy tool would.
	put := func(s *serverNode, name string, data []byte) {
		path := filepath.Join(s.dir, name)
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.nodes {
		put(s, "ca.pem", read(filepath.Join(old, "nebula-ca.pem")))
		put(s, "node.pem", read(filepath.Join(old, s.id+".pem")))
		put(s, "node-key.pem", read(filepath.Join(old, s.id+"-key.pem")))
		writeFile(t, s.dir, "nebula.toml", clusterConfig+fmt.Sprintf("[cluster.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\nverify_server_hostname = true\n",
			filepath.Join(s.dir, "ca.pem"), filepath.Join(s.dir, "node.pem"), filepath.Join(s.dir, "node-key.pem")))
	}
	c.startAll()
	li := c.waitAgreement(3, 20*time.Second)
	c.nodes[li].p.mustCall("PUT", "/v1/workflows/chain", chainWorkflowN, 200, nil)
	for _, s := range c.nodes {
		s.p.mustCall("GET", "/v1/workflows/chain?consistent=true", "", 200, nil)
	}

	// The load: clients start executions through every node, without
	// pause, until the rotation is over.
	ctx, stop := context.WithCancel(context.Background())
	var (
		wg          sync.WaitGroup
		ok, failed  atomic.Int64
		failuresMu  sync.Mutex
		failureList []string
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.nodes[w%3]
			for i := 0; ctx.Err() == nil; i++ {
				var e execution
				code, err := n.p.do("POST", "/v1/workflows/chain/executions?wait=20s", fmt.Sprintf(`{"input":{"n":%d}}`, i), &e)
				if err == nil && code == 200 && e.Status == "succeeded" {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				failuresMu.Lock()
				failureList = append(failureList, fmt.Sprintf("via %s: %d %v %s %v", n.id, code, err, e.Status, deref(e.Error)))
				failuresMu.Unlock()
			}
		}()
	}
	reloaded := func(s *serverNode) int { return strings.Count(s.p.logs.String(), `msg="peer TLS reloaded"`) }
	step := func(what string, signal bool, change func(s *serverNode)) {
		t.Helper()
		time.Sleep(time.Second) // load runs between steps
		for _, s := range c.nodes {
			before := reloaded(s)
			change(s)
			if signal {
				s.p.cmd.Process.Signal(syscall.SIGHUP)
			}
			deadline := time.Now().Add(10 * time.Second)
			for reloaded(s) == before {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s did not reload:\n%s", what, s.id, tail(s.p.logs.String(), 20))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	bundle := append(read(filepath.Join(old, "nebula-ca.pem")), read(filepath.Join(next, "nebula-ca.pem"))...)
	// 1. Trust both CAs (picked up by SIGHUP).
	step("add the new CA", true, func(s *serverNode) { put(s, "ca.pem", bundle) })
	// 2. Certificates of the new CA (picked up by the file watch).
	step("new certificates", false, func(s *serverNode) {
		put(s, "node-key.pem", read(filepath.Join(next, s.id+"-key.pem")))
		put(s, "node.pem", read(filepath.Join(next, s.id+".pem")))
	})
	// 3. Remove the old CA.
	step("remove the old CA", true, func(s *serverNode) { put(s, "ca.pem", read(filepath.Join(next, "nebula-ca.pem"))) })
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed during the rotation; first: %v", failed.Load(), ok.Load()+failed.Load(), failureList[:min(5, len(failureList))])
	}
	if ok.Load() < 30 {
		t.Fatalf("only %d requests ran during the rotation", ok.Load())
	}
	ended := 0
	for _, s := range c.nodes {
		ended += strings.Count(s.p.logs.String(), "ending peer connections whose certificates are no longer trusted")
	}
	t.Logf("%d executions during the rotation, none failed; %d rechecks ended connections under the old CA", ok.Load(), ended)
	c.waitAgreement(3, 10*time.Second)

	// A certificate of the removed CA no longer reaches Raft.
	oldCA, err := pki.LoadCA(read(filepath.Join(old, "nebula-ca.pem")), read(filepath.Join(old, "nebula-ca-key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	ft := raft.NewNetworkTransport(newTLSStream(t, nodeCert(t, oldCA, "n1")), 1, 2*time.Second, io.Discard)
	defer ft.Close()
	if a, s := raftProbe(ft, c.nodes[0].raft); a == nil || s == nil {
		t.Fatalf("a certificate of the removed CA reached Raft: %v, %v", a, s)
	}
}

// TestAPIOverHTTPS: the API serves https from api.tls_cert_file and
// tls_key_file (made with `nebula tls`); `nebula run --follow` works with
// --ca-cert (or NEBULA_CA_CERT) and says what is wrong without it; a
// remote worker runs tasks over https with --ca-cert.
func TestAPIOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"tls", "ca", "create", "--out-dir", dir},
		{"tls", "cert", "create", "--node", "api", "--ip", "127.0.0.1", "--out-dir", dir,
			"--ca", filepath.Join(dir, "nebula-ca.pem"), "--ca-key", filepath.Join(dir, "nebula-ca-key.pem")},
	} {
		if out, err := exec.Command(binPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("nebula %v: %v\n%s", args, err, out)
		}
	}
	caFile := filepath.Join(dir, "nebula-ca.pem")
	conf := writeFile(t, dir, "nebula.toml", fmt.Sprintf("[mode]\nprofile = \"selfhost\"\n[cluster]\nheartbeat_timeout = \"500ms\"\n[worker]\nenabled = false\n[api]\ntls_cert_file = %q\n",
		filepath.Join(dir, "api.pem")))
	ip := "127.0.0.1"
	p := startProcEnv(t, []string{"NEBULA_API_TLS_KEY=" + filepath.Join(dir, "api-key.pem")},
		"control-plane", "--config", conf, "--data", filepath.Join(dir, "data"), "--bootstrap-expect", "1",
		"--bind", ip+":0", "--raft-addr", ip+":"+freePort(t, ip), "--gossip-addr", ip+":"+freePort(t, ip))
	url := p.waitReady(30 * time.Second)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("ready line gives %s, want https", url)
	}
	w := startProc(t, "worker", "--server", url, "--ca-cert", caFile, "--concurrency", "4")
	defer w.kill()

	wf := writeFile(t, dir, "wf.json", `{"id":"tls","nodes":[
		{"id":"a","action":"builtin.set","params":{"value":"{{ input.n + 1 }}"}},
		{"id":"b","action":"builtin.log","params":{"message":"over https {{ nodes.a.output }}"}}],
		"connections":[{"from":"a","to":"b"}]}`)
	cli := func(env []string, args ...string) cliResult {
		t.Helper()
		cmd := exec.Command(binPath, append(args, "--server", url)...)
		cmd.Env = append(append(os.Environ(), "NEBULA_ADDR=", "NEBULA_CA_CERT=", "NEBULA_TOKEN="+testAdminToken), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	}
	cli(nil, "workflow", "apply", "-f", wf, "--ca-cert", caFile).want(t, 0)
	r := cli(nil, "run", "tls", "--input", `{"n":41}`, "--follow", "--ca-cert", caFile).want(t, 0)
	if !strings.Contains(r.stdout, "execution succeeded") || !strings.Contains(r.stdout, "over https 42") {
		t.Fatalf("--follow over https:\n%s", r.stdout)
	}
	cli([]string{"NEBULA_CA_CERT=" + caFile}, "execution", "list").want(t, 0)
	bad := cli(nil, "workflow", "list")
	if bad.code == 0 || !strings.Contains(bad.stderr, "certificate") {
		t.Fatalf("without the CA: exit %d, %q; want a failure naming the certificate", bad.code, bad.stderr)
	}
	cli(nil, "workflow", "list", "--ca-cert", filepath.Join(dir, "missing.pem")).want(t, 2).oneLineError(t, "--ca-cert")
}

// TestTLSSettingsRefusedAtStart: certificate settings that cannot work
// stop the node at start with exit 2 and one line naming what is wrong.
func TestTLSSettingsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.NewCA(pki.CAOptions{})
	other, _ := pki.NewCA(pki.CAOptions{})
	cert, key, _ := ca.Issue(pki.NodeRequest{NodeID: "n1"})
	keyPEM, _ := pki.EncodeKey(key)
	caFile := writeFile(t, dir, "ca.pem", string(pki.EncodeCert(ca.Cert)))
	otherFile := writeFile(t, dir, "other.pem", string(pki.EncodeCert(other.Cert)))
	certFile := writeFile(t, dir, "n1.pem", string(pki.EncodeCert(cert)))
	keyFile := writeFile(t, dir, "n1-key.pem", string(keyPEM))
	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{"api certificate missing", fmt.Sprintf("[api]\ntls_cert_file = %q\ntls_key_file = %q\n", filepath.Join(dir, "none.pem"), keyFile), []string{"none.pem"}},
		{"api key alone", fmt.Sprintf("[api]\ntls_key_file = %q\n", keyFile), []string{"api.tls_cert_file"}},
		{"peer certificate of another CA", fmt.Sprintf("[cluster.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", otherFile, certFile, keyFile), []string{"cluster.tls.cert_file", "cluster.tls.ca_file"}},
		{"peer CA alone", fmt.Sprintf("[cluster.tls]\nca_file = %q\n", caFile), []string{"cluster.tls.cert_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeFile(t, t.TempDir(), "nebula.toml", tc.conf)
			cmd := exec.Command(binPath, "server", "--config", conf, "--data", t.TempDir(), "--bind", "127.0.0.1:0",
				"--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "NEBULA_MASTER_KEY="+testClusterKey, "NEBULA_ADMIN_TOKEN="+testAdminToken)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Run()
			cliResult{stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}.want(t, 2).oneLineError(t, tc.want...)
		})
	}
}
