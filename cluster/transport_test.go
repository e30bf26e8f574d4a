package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nebula-engine/nebula/internal/pki"
	"github.com/nebula-engine/nebula/internal/tlsutil"
)

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// lines is a slog handler that keeps each record's message and attributes
// as one line.
type lines struct {
	mu  sync.Mutex
	out []string
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.out = append(l.out, b.String())
	l.mu.Unlock()
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

func (l *lines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.out {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.out, "\n")
}

// derivedPeer is the TLS of a node whose master key gives seed.
func derivedPeer(t *testing.T, id string, seeds ...[]byte) *tlsutil.Peer {
	t.Helper()
	p, err := tlsutil.NewPeer(tlsutil.PeerConfig{CASeeds: seeds, NodeID: id, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func listenTest(t *testing.T, tlsc PeerTLS, logs *lines) *Transport {
	t.Helper()
	cfg := TransportConfig{BindAddr: "127.0.0.1:0", TLS: tlsc, Secrets: [][]byte{[]byte("secret")}, Timeout: 2 * time.Second}
	if logs != nil {
		cfg.Logger = slog.New(logs)
	}
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// echoRaft answers every Raft RPC that reaches tr with an empty response.
func echoRaft(t *testing.T, tr *Transport) *raft.NetworkTransport {
	t.Helper()
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &raftStream{chanListener{t: tr, conns: tr.raftConns}}, MaxPool: 2, Timeout: 2 * time.Second,
	})
	go func() {
		for rpc := range nt.Consumer() {
			switch rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				rpc.Respond(&raft.AppendEntriesResponse{Term: 7}, nil)
			case *raft.InstallSnapshotRequest:
				io.Copy(io.Discard, rpc.Reader)
				rpc.Respond(&raft.InstallSnapshotResponse{Term: 7}, nil)
			default:
				rpc.Respond(nil, nil)
			}
		}
	}()
	t.Cleanup(func() { nt.Close() })
	return nt
}

func appendEntries(trans raft.Transport, target string) error {
	var resp raft.AppendEntriesResponse
	return trans.AppendEntries("stranger", raft.ServerAddress(target), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("stranger"), Addr: []byte("stranger")}, Term: 99,
	}, &resp)
}

func installSnapshot(trans raft.Transport, target string) error {
	var resp raft.InstallSnapshotResponse
	return trans.InstallSnapshot("stranger", raft.ServerAddress(target), &raft.InstallSnapshotRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("stranger"), Addr: []byte("stranger")}, Term: 99, Size: 5,
	}, &resp, strings.NewReader("state"))
}

func TestTransportCarriesRaftAndHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  func(id string) PeerTLS
	}{
		{"mtls", func(id string) PeerTLS { return derivedPeer(t, id, seed(1)) }},
		{"plain", func(string) PeerTLS { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := listenTest(t, tc.tls("a"), nil)
			b := listenTest(t, tc.tls("b"), nil)
			echoRaft(t, b)
			b.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello "+r.Header.Get("X-Nebula-Node"))
			}))
			na := echoRaft(t, a)
			if err := appendEntries(na, b.Addr()); err != nil {
				t.Fatalf("append entries: %v", err)
			}
			resp, err := a.request(context.Background(), http.MethodPost, b.Addr(), "/internal/v1/status", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello " {
				t.Fatalf("internal call: %d %q", resp.StatusCode, body)
			}
			if got := a.Mode(); got != tc.name {
				t.Fatalf("mode %q, want %q", got, tc.name)
			}
		})
	}
}

// TestTransportRefusesStrangers: a connection without a certificate the
// cluster trusts, naming a cluster server, is closed in the handshake, and
// the refusals from one address are logged once.
func TestTransportRefusesStrangers(t *testing.T) {
	logs := &lines{}
	node := listenTest(t, derivedPeer(t, "n1", seed(1)), logs)
	echoRaft(t, node)
	node.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))

	// hashicorp/raft's own TCP transport, as any stranger has it.
	stranger, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if err := appendEntries(stranger, node.Addr()); err == nil {
		t.Fatal("a plain-text AppendEntries was answered")
	}
	if err := installSnapshot(stranger, node.Addr()); err == nil {
		t.Fatal("a plain-text InstallSnapshot was answered")
	}

	other := derivedPeer(t, "x", seed(2)) // another master key
	ca, err := pki.DeriveCA(seed(1))
	if err != nil {
		t.Fatal(err)
	}
	// The right CA, but a certificate that does not name a cluster
	// server (as one issued for an API endpoint would not).
	notServer := x509Template(t, ca)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"no client certificate", &tls.Config{MinVersion: tls.VersionTLS13}, false},
		{"another master key", other.ClientConfig(node.Addr()), false},
		{"not a server certificate", &tls.Config{Certificates: []tls.Certificate{notServer}}, false},
		// The control: the same request with a certificate of the
		// cluster reaches the endpoint (which wants the secret too).
		{"a cluster certificate", derivedPeer(t, "n2", seed(1)).ClientConfig(node.Addr()), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.InsecureSkipVerify = true // the client side is not what is tested
			tc.cfg.VerifyConnection = nil
			conn, err := tls.Dial("tcp", node.Addr(), tc.cfg)
			var answer []byte
			if err == nil {
				// TLS 1.3 clients finish before the server checks them:
				// the refusal arrives on the first read.
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				conn.Write([]byte{protoHTTP})
				io.WriteString(conn, "GET /internal/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
				answer = make([]byte, 12)
				_, err = io.ReadFull(conn, answer)
				conn.Close()
			}
			switch {
			case tc.ok && (err != nil || string(answer) != "HTTP/1.1 401"):
				t.Fatalf("answer %q, %v; want a 401 for the missing secret", answer, err)
			case !tc.ok && err == nil:
				t.Fatalf("the node answered %q", answer)
			}
		})
	}
	waitFor(t, 2*time.Second, func() error {
		if n := logs.count("refused a peer connection"); n != 1 {
			return fmt.Errorf("%d refusal lines, want 1 (rate-limited per address):\n%s", n, logs)
		}
		return nil
	})
	if !strings.Contains(logs.String(), "does not speak TLS") {
		t.Fatalf("the refusal does not say why:\n%s", logs)
	}
}

// x509Template issues a client certificate under ca that does not name
// a cluster server.
func x509Template(t *testing.T, ca *pki.CA) tls.Certificate {
	t.Helper()
	cert, key, err := ca.Issue(pki.NodeRequest{KeyType: pki.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	// Re-sign a copy without the cluster names.
	tmpl := *cert
	tmpl.DNSNames = []string{"api.example.com"}
	der, err := x509.CreateCertificate(nil, &tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTransportPlainAndTLSDoNotMix: each side of a mixed pair refuses the
// other, saying why.
func TestTransportPlainAndTLSDoNotMix(t *testing.T) {
	plainLogs, tlsLogs := &lines{}, &lines{}
	plain := listenTest(t, nil, plainLogs)
	secure := listenTest(t, derivedPeer(t, "s", seed(1)), tlsLogs)
	echoRaft(t, plain)
	echoRaft(t, secure)
	np := echoRaft(t, listenTest(t, nil, nil))
	ns := echoRaft(t, listenTest(t, derivedPeer(t, "s2", seed(1)), nil))
	if err := appendEntries(np, secure.Addr()); err == nil {
		t.Fatal("a TLS node answered a plain-text one")
	}
	if err := appendEntries(ns, plain.Addr()); err == nil {
		t.Fatal("a plain-text node answered a TLS one")
	}
	waitFor(t, 2*time.Second, func() error {
		if !strings.Contains(tlsLogs.String(), "insecure_transport") || !strings.Contains(plainLogs.String(), "insecure_transport") {
			return fmt.Errorf("the refusals do not name insecure_transport:\nTLS node: %s\nplain node: %s", tlsLogs, plainLogs)
		}
		return nil
	})
	if err := secure.Admit(MemberMeta{ID: "p", Transport: TransportPlain}); err == nil || !strings.Contains(err.Error(), "insecure_transport") {
		t.Fatalf("gossip admitted a plain-text member to a TLS node: %v", err)
	}
	if err := plain.Admit(MemberMeta{ID: "s", Transport: TransportMTLS, CA: "x"}); err == nil {
		t.Fatal("gossip admitted a TLS member to a plain-text node")
	}
	if err := plain.Admit(MemberMeta{ID: "old"}); err != nil {
		t.Fatalf("a member without a transport field reads as plain text: %v", err)
	}
}

func TestTransportAdmitChecksCA(t *testing.T) {
	a := listenTest(t, derivedPeer(t, "a", seed(1)), nil)
	same := derivedPeer(t, "b", seed(1))
	other := derivedPeer(t, "c", seed(2))
	if err := a.Admit(MemberMeta{Transport: TransportMTLS, CA: same.Issuer()}); err != nil {
		t.Fatalf("a node of the same key: %v", err)
	}
	if err := a.Admit(MemberMeta{Transport: TransportMTLS, CA: other.Issuer()}); err == nil {
		t.Fatal("a node of another key was admitted")
	}
}

// TestTransportReloadCutsRemovedCA: once a CA leaves ca_file, the
// connections made with its certificates are closed, not only refused
// from then on; a new CA added beside the old one works at once.
func TestTransportReloadCutsRemovedCA(t *testing.T) {
	dir := t.TempDir()
	ca1, _ := pki.NewCA(pki.CAOptions{CommonName: "one"})
	ca2, _ := pki.NewCA(pki.CAOptions{CommonName: "two"})
	write := func(name string, data ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p+".tmp", bytes.Join(data, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(ca *pki.CA, node string) (string, string) {
		cert, key, err := ca.Issue(pki.NodeRequest{NodeID: node})
		if err != nil {
			t.Fatal(err)
		}
		kp, _ := pki.EncodeKey(key)
		return write(node+".pem", pki.EncodeCert(cert)), write(node+"-key.pem", kp)
	}
	// peerFiles is a node with a certificate of signer, trusting cas.
	peerFiles := func(node string, signer *pki.CA, cas ...*pki.CA) *tlsutil.Peer {
		cert, key := issue(signer, node)
		var bundle [][]byte
		for _, ca := range cas {
			bundle = append(bundle, pki.EncodeCert(ca.Cert))
		}
		p, err := tlsutil.NewPeer(tlsutil.PeerConfig{CAFile: write(node+"-ca.pem", bundle...), CertFile: cert, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	serverTLS := peerFiles("server", ca1, ca1)
	server := listenTest(t, serverTLS, nil)
	echoRaft(t, server)
	client := echoRaft(t, listenTest(t, peerFiles("client", ca1, ca1), nil))
	if err := appendEntries(client, server.Addr()); err != nil {
		t.Fatal(err)
	}
	// A node made during the rotation: a certificate of the new CA,
	// trusting both.
	fresh := echoRaft(t, listenTest(t, peerFiles("fresh", ca2, ca1, ca2), nil))
	if err := appendEntries(fresh, server.Addr()); err == nil {
		t.Fatal("a certificate of a CA the server does not trust yet was accepted")
	}

	// Add the new CA beside the old: both kinds of peers get in.
	write("server-ca.pem", pki.EncodeCert(ca1.Cert), pki.EncodeCert(ca2.Cert))
	if changed, err := serverTLS.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	if n := server.Recheck(); n != 0 {
		t.Fatalf("adding a CA closed %d connections", n)
	}
	if err := appendEntries(fresh, server.Addr()); err != nil {
		t.Fatalf("after adding its CA: %v", err)
	}

	// An internal caller with a certificate of the old CA keeps a
	// connection open.
	server.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	caller := listenTest(t, peerFiles("caller", ca1, ca1, ca2), nil)
	call := func() (*http.Response, error) {
		resp, err := caller.request(context.Background(), http.MethodPost, server.Addr(), "/internal/v1/status", nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if _, err := call(); err != nil {
		t.Fatal(err)
	}

	// Move the server to a certificate of the new CA, then drop the old.
	issue(ca2, "server")
	write("server-ca.pem", pki.EncodeCert(ca2.Cert))
	if _, err := serverTLS.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := server.Recheck(); n == 0 {
		t.Fatal("removing a CA ended no connection made under it")
	}
	// The caller's pooled connection is stale: a call on it is still
	// answered (it could be one in flight), with word to close.
	resp, err := call()
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("a call on a stale connection: %v %v; want it answered with Connection: close", resp, err)
	}
	if _, err := call(); err == nil {
		t.Fatal("a new connection under the removed CA was accepted")
	}
	if err := appendEntries(client, server.Addr()); err == nil {
		t.Fatal("a certificate of a removed CA was accepted")
	}
	if err := appendEntries(fresh, server.Addr()); err != nil {
		t.Fatalf("a certificate of the remaining CA: %v", err)
	}
}
