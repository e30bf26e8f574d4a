package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Peers talk to each other on one port, the Raft address: Raft's own RPCs
// and the internal HTTP endpoints (forwarded writes, read index, status,
// blob copies) share it. Each connection is mutual TLS 1.3 unless the
// cluster runs with insecure_transport; after the handshake the dialling
// side writes one byte saying which of the two it speaks. A connection
// whose handshake fails is closed before a byte of Raft or HTTP is read
// from it.

// PeerTLS is the TLS identity and trust of a node towards its peers
// (tlsutil.Peer). Each call reflects the certificates in force at that
// moment, so that a reload applies to the next connection.
type PeerTLS interface {
	// ServerConfig is for connections this node accepts: it must
	// require and verify a client certificate from a trusted CA that
	// names a cluster server.
	ServerConfig() *tls.Config
	// ClientConfig is for a connection this node dials to addr.
	ClientConfig(addr string) *tls.Config
	// Verify checks a peer's chain, leaf first, against the CAs
	// trusted now.
	Verify(chain []*x509.Certificate) error
	// Issuer is the fingerprint of the CA that signed this node's
	// certificate; Trusts tells whether a certificate signed by the CA
	// of that fingerprint is accepted.
	Issuer() string
	Trusts(issuer string) bool
}

// Transport modes, as gossiped in MemberMeta.Transport.
const (
	TransportMTLS  = "mtls"
	TransportPlain = "plain"
)

// The first byte of a peer connection, after the TLS handshake.
const (
	protoRaft byte = 'R'
	protoHTTP byte = 'H'
	// tlsRecordHandshake is how a TLS ClientHello begins: a plain-text
	// node that reads it is talking to a TLS peer.
	tlsRecordHandshake byte = 0x16
)

// maxHandshakes bounds connections being accepted at once, so that a
// flood of idle connections cannot hold unbounded goroutines; each is
// also bounded in time by TransportConfig.Timeout.
const maxHandshakes = 256

// TransportConfig configures Listen.
type TransportConfig struct {
	// BindAddr is the host:port to listen on.
	BindAddr string
	// AdvertiseAddr is the host:port peers dial; empty means the bound
	// address.
	AdvertiseAddr string
	// TLS secures every peer connection. Nil means plain text, which
	// only cluster.insecure_transport = true asks for.
	TLS PeerTLS
	// Secrets authenticate internal HTTP calls besides the certificate:
	// the first is sent, any is accepted. They are derived from the
	// master key, so that a certificate from a CA that also serves other
	// purposes does not alone open the internal endpoints, and so that
	// plain-text clusters keep some guard. None leaves the endpoints to
	// the certificate alone.
	Secrets [][]byte
	// NodeID is sent with internal calls, for the peer's logs.
	NodeID string
	Logger *slog.Logger
	// Timeout bounds a dial and a handshake; zero picks 10s.
	Timeout time.Duration
}

// Transport carries everything between peers: Raft (through a
// raft.StreamLayer) and the internal HTTP endpoints.
type Transport struct {
	cfg    TransportConfig
	logger *slog.Logger
	ln     net.Listener
	adv    net.Addr

	raftConns chan net.Conn
	httpConns chan net.Conn
	pending   chan struct{} // handshake slots
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[*peerConn]struct{}

	refusals *rateLog
	client   atomic.Pointer[http.Client]
	scheme   string
	srv      *http.Server
}

// Listen binds the peer port and starts accepting connections. They are
// handed to Raft once a Node opens on the transport, and to the internal
// endpoints once it serves them.
func Listen(cfg TransportConfig) (*Transport, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var adv net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster: advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		adv = a
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport on %s: %w", cfg.BindAddr, err)
	}
	if adv == nil {
		adv = ln.Addr()
		if a := adv.(*net.TCPAddr); a.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("cluster: raft address %s binds every interface: give an advertise address", cfg.BindAddr)
		}
	}
	t := &Transport{
		cfg:       cfg,
		logger:    logger,
		ln:        ln,
		adv:       adv,
		raftConns: make(chan net.Conn),
		httpConns: make(chan net.Conn),
		pending:   make(chan struct{}, maxHandshakes),
		closed:    make(chan struct{}),
		conns:     make(map[*peerConn]struct{}),
		refusals:  newRateLog(time.Minute),
		scheme:    "http",
	}
	if cfg.TLS != nil {
		t.scheme = "https"
	}
	t.client.Store(t.newClient())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// newClient returns the HTTP client of internal calls, over dial.
func (t *Transport) newClient() *http.Client {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		return t.dial(ctx, addr, protoHTTP)
	}
	ht := &http.Transport{
		// Forwarded writes are many and concurrent: keep enough
		// connections (and their handshakes) for them.
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	if t.cfg.TLS != nil {
		ht.DialTLSContext = dial
	} else {
		ht.DialContext = dial
	}
	return &http.Client{Transport: ht}
}

// Addr returns the address peers reach this node at.
func (t *Transport) Addr() string { return t.adv.String() }

// Mode returns TransportMTLS or TransportPlain.
func (t *Transport) Mode() string {
	if t.cfg.TLS == nil {
		return TransportPlain
	}
	return TransportMTLS
}

// Issuer returns the fingerprint of the CA that signed this node's
// certificate, "" in plain text.
func (t *Transport) Issuer() string {
	if t.cfg.TLS == nil {
		return ""
	}
	return t.cfg.TLS.Issuer()
}

// Admit tells whether a gossip member can be a peer of this node: it must
// use the same transport and, with TLS, hold a certificate from a CA this
// node trusts. A member that cannot is refused by gossip with this error,
// instead of joining and then failing every Raft handshake.
func (t *Transport) Admit(m MemberMeta) error {
	mode := m.Transport
	if mode == "" {
		mode = TransportPlain
	}
	if mode != t.Mode() {
		return fmt.Errorf("it uses %s peer transport and this node %s: every node of a cluster must set the same cluster.insecure_transport", describeMode(mode), describeMode(t.Mode()))
	}
	if t.cfg.TLS != nil && !t.cfg.TLS.Trusts(m.CA) {
		return fmt.Errorf("its certificate was signed by CA %s, which this node does not trust (a node of another cluster: another master key, or another cluster.tls.ca_file)", m.CA)
	}
	return nil
}

func describeMode(mode string) string {
	if mode == TransportMTLS {
		return "mutual TLS"
	}
	return "plain-text (insecure_transport = true)"
}

// Close stops accepting, closes every peer connection and stops serving
// the internal endpoints.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		t.ln.Close()
		if t.srv != nil {
			t.srv.Close()
		}
		t.mu.Lock()
		for c := range t.conns {
			c.Conn.Close()
		}
		t.mu.Unlock()
		t.client.Load().CloseIdleConnections()
	})
	t.wg.Wait()
	return nil
}

// staleGrace is how long an internal HTTP connection whose peer is no
// longer trusted may go on: long enough for the request it carries to be
// answered (a forwarded write cut in flight has an unknown outcome).
const staleGrace = 30 * time.Second

// Recheck ends the connections whose peer certificate the CAs trusted now
// no longer accept, and returns how many. Call it after a reload, so that
// a CA removed stops opening the cluster at once, not only for new
// connections. Raft connections are closed at once (Raft sends again what
// a closed connection lost); an internal HTTP connection finishes the
// request it carries: it takes no new one from this node, its answers
// tell the peer to close it, and it is closed after staleGrace whatever
// happens.
func (t *Transport) Recheck() int {
	if t.cfg.TLS == nil {
		return 0
	}
	t.mu.Lock()
	var stale []*peerConn
	for c := range t.conns {
		if !c.stale.Load() && t.cfg.TLS.Verify(c.chain) != nil {
			stale = append(stale, c)
		}
	}
	t.mu.Unlock()
	renew := false
	for _, c := range stale {
		if c.proto == protoRaft {
			c.Close()
			continue
		}
		c.stale.Store(true)
		time.AfterFunc(staleGrace, func() { c.Close() })
		renew = renew || c.outbound
	}
	if renew {
		// New calls go over new connections; the old client's finish
		// what they carry and are closed once idle.
		old := t.client.Swap(t.newClient())
		old.CloseIdleConnections()
		time.AfterFunc(staleGrace, old.CloseIdleConnections)
	}
	if len(stale) > 0 {
		t.logger.Warn("ending peer connections whose certificates are no longer trusted", "count", len(stale))
	}
	return len(stale)
}

// serve serves the internal endpoints on the peer port. The handler sees
// only callers that passed the handshake and present one of the secrets.
func (t *Transport) serve(h http.Handler) {
	inner := requirePeer(t.cfg.Secrets, h)
	t.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if pc, _ := r.Context().Value(peerConnKey{}).(*peerConn); pc != nil && pc.stale.Load() {
				// See Recheck: the peer should use another connection.
				w.Header().Set("Connection", "close")
			}
			inner.ServeHTTP(w, r)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerConnKey{}, c)
		},
		ReadHeaderTimeout: t.cfg.Timeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(t.logger.Handler(), slog.LevelDebug),
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.srv.Serve(&chanListener{t: t, conns: t.httpConns})
	}()
}

// request calls a peer's internal endpoint.
func (t *Transport) request(ctx context.Context, method, addr, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.scheme+"://"+addr+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Nebula-Node", t.cfg.NodeID)
	setPeerAuth(req, t.cfg.Secrets)
	return t.client.Load().Do(req)
}

// dial connects to a peer and says which protocol follows.
func (t *Transport) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	var chain []*x509.Certificate
	if t.cfg.TLS != nil {
		tc := tls.Client(raw, t.cfg.TLS.ClientConfig(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			err = fmt.Errorf("TLS handshake with peer %s: %s", addr, describeHandshake(err))
			t.refusals.log(t.logger, "dial "+addr, "a peer's TLS handshake failed", "peer", addr, "err", err)
			return nil, err
		}
		chain = tc.ConnectionState().PeerCertificates
		conn = tc
	}
	conn.SetWriteDeadline(time.Now().Add(t.cfg.Timeout))
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetWriteDeadline(time.Time{})
	return t.track(conn, chain, proto, true), nil
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.closed:
				return
			default:
			}
			// Out of file descriptors and the like: back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.logger.Warn("peer port: accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.closed:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.pending <- struct{}{}:
		default:
			t.refusals.log(t.logger, hostOf(c.RemoteAddr()), "refused a peer connection", "remote", c.RemoteAddr().String(), "err", "too many connections in handshake")
			c.Close()
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.accept(c)
		}()
	}
}

// accept authenticates one inbound connection and hands it to Raft or to
// the internal endpoints.
func (t *Transport) accept(raw net.Conn) {
	raw.SetDeadline(time.Now().Add(t.cfg.Timeout))
	conn := raw
	var chain []*x509.Certificate
	refuse := func(reason string) {
		t.refusals.log(t.logger, hostOf(raw.RemoteAddr()), "refused a peer connection", "remote", raw.RemoteAddr().String(), "err", reason)
		raw.Close()
	}
	var b [1]byte
	err := func() error {
		// The slot is held until the peer has said what it speaks.
		defer func() { <-t.pending }()
		if t.cfg.TLS != nil {
			tc := tls.Server(raw, t.cfg.TLS.ServerConfig())
			if err := tc.Handshake(); err != nil {
				refuse("TLS handshake: " + describeHandshake(err))
				return err
			}
			chain = tc.ConnectionState().PeerCertificates
			conn = tc
		}
		_, err := io.ReadFull(conn, b[:])
		return err
	}()
	if err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	var to chan net.Conn
	switch b[0] {
	case protoRaft:
		to = t.raftConns
	case protoHTTP:
		to = t.httpConns
	case tlsRecordHandshake:
		refuse("the peer began a TLS handshake, and this node runs with cluster.insecure_transport = true: every node of a cluster must set the same")
		return
	default:
		refuse(fmt.Sprintf("not a Nebula peer (first byte %#x)", b[0]))
		return
	}
	pc := t.track(conn, chain, b[0], false)
	select {
	case to <- pc:
	case <-t.closed:
		pc.Close()
	}
}

// describeHandshake explains a handshake failure in the terms of the
// cluster's configuration.
func describeHandshake(err error) string {
	var rh tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &rh):
		return "the peer does not speak TLS (a node with cluster.insecure_transport = true, or not a Nebula node)"
	case errors.As(err, &unknown):
		return "the certificate is not signed by a CA this node trusts (a node of another cluster: another master key, or another cluster.tls.ca_file): " + err.Error()
	}
	return err.Error()
}

func hostOf(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// track registers a connection so that Close and Recheck can reach it.
func (t *Transport) track(c net.Conn, chain []*x509.Certificate, proto byte, outbound bool) *peerConn {
	pc := &peerConn{Conn: c, t: t, chain: chain, proto: proto, outbound: outbound}
	t.mu.Lock()
	t.conns[pc] = struct{}{}
	t.mu.Unlock()
	select {
	case <-t.closed:
		// Close may have run between the handshake and now.
		pc.Close()
	default:
	}
	return pc
}

// peerConn is a connection with the peer's certificate chain.
type peerConn struct {
	net.Conn
	t        *Transport
	chain    []*x509.Certificate
	proto    byte // protoRaft or protoHTTP
	outbound bool // dialled by this node
	stale    atomic.Bool
	once     sync.Once
}

// peerConnKey is the request context key of the *peerConn it came on.
type peerConnKey struct{}

func (c *peerConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// chanListener is a net.Listener over connections the Transport accepted.
type chanListener struct {
	t     *Transport
	conns chan net.Conn
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.t.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return nil }
func (l *chanListener) Addr() net.Addr { return l.t.adv }

// raftStream is the raft.StreamLayer over a Transport.
type raftStream struct {
	chanListener
}

var _ raft.StreamLayer = (*raftStream)(nil)

func (s *raftStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.t.dial(ctx, string(addr), protoRaft)
}

// Close ends the transport: Raft closes its stream layer when it shuts
// down, and peers have nothing to say to a node without Raft.
func (s *raftStream) Close() error { return s.t.Close() }

// rateLog logs an event at most once per key and period, counting the
// ones it held back.
type rateLog struct {
	every time.Duration
	mu    sync.Mutex
	seen  map[string]*rateEntry
}

type rateEntry struct {
	last       time.Time
	suppressed int
}

func newRateLog(every time.Duration) *rateLog {
	return &rateLog{every: every, seen: make(map[string]*rateEntry)}
}

func (r *rateLog) log(l *slog.Logger, key, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	e, ok := r.seen[key]
	if ok && now.Sub(e.last) < r.every {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	if !ok {
		if len(r.seen) >= 4096 {
			for k, old := range r.seen {
				if now.Sub(old.last) >= r.every {
					delete(r.seen, k)
				}
			}
		}
		e = &rateEntry{}
		r.seen[key] = e
	}
	suppressed := e.suppressed
	e.last, e.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.Warn(msg, args...)
}
