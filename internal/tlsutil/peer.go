// Package tlsutil holds the TLS settings of a node, reloadable while it
// runs: Peer for the mutual TLS between cluster peers, Keypair for the
// certificate the API serves.
package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nebula-engine/nebula/internal/pki"
)

// PeerConfig configures a Peer. With CAFile set, the trusted CAs, this
// node's certificate and its key come from files (bring your own CA);
// otherwise the CAs are derived from CASeeds and this node mints its own
// certificate, signed by the first of them.
type PeerConfig struct {
	// CAFile holds one or more CA certificates in PEM: a peer's
	// certificate must be signed by one of them. Several let a new CA
	// be added beside the old one, then the old one removed.
	CAFile   string
	CertFile string
	KeyFile  string
	// VerifyServerHostname also requires a dialled peer's certificate
	// to name the host it was dialled at.
	VerifyServerHostname bool

	// CASeeds derive the cluster CAs when CAFile is empty: one per
	// master key, the first signing this node's certificate.
	CASeeds [][]byte
	// NodeID and Hosts (IPs or DNS names this node is reached at) are
	// written into a minted certificate.
	NodeID string
	Hosts  []string

	Logger *slog.Logger
}

// Peer is the TLS identity and trust of one node towards its peers: TLS
// 1.3 both ways, each side presenting a certificate that a trusted CA
// signed and that names pki.ServerName. Its files are read again by
// Reload; connections made after a reload use what it read.
type Peer struct {
	cfg    PeerConfig
	logger *slog.Logger
	cur    atomic.Pointer[peerState]

	mu        sync.Mutex // serializes reloads
	loaded    [][]byte   // the bytes of the files last loaded
	stamps    []fileStamp
	listeners []func()
}

type peerState struct {
	cert    tls.Certificate
	pool    *x509.CertPool
	trusted map[string]bool // fingerprints of the CAs in pool
	cas     []string        // the same, in file order
	issuer  string          // fingerprint of the CA that signed cert
	server  *tls.Config
}

// NewPeer loads the CAs and this node's certificate. An error names the
// file or setting at fault.
func NewPeer(cfg PeerConfig) (*Peer, error) {
	p := &Peer{cfg: cfg, logger: cfg.Logger}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CAFile == "" && len(cfg.CASeeds) == 0 {
		return nil, errors.New("peer TLS: no CA: set a CA file or give a master key to derive one from")
	}
	if cfg.CAFile != "" && (cfg.CertFile == "" || cfg.KeyFile == "") {
		return nil, errors.New("peer TLS: a CA file needs this node's cert_file and key_file too")
	}
	if _, err := p.reload(true); err != nil {
		return nil, err
	}
	return p, nil
}

// Issuer returns the fingerprint of the CA that signed this node's
// certificate.
func (p *Peer) Issuer() string { return p.cur.Load().issuer }

// Trusts reports whether a certificate signed by the CA with this
// fingerprint would be accepted.
func (p *Peer) Trusts(issuer string) bool { return p.cur.Load().trusted[issuer] }

// NotAfter returns when this node's certificate expires.
func (p *Peer) NotAfter() time.Time { return p.cur.Load().cert.Leaf.NotAfter }

// OnChange registers f to run after each reload that changed something.
func (p *Peer) OnChange(f func()) {
	p.mu.Lock()
	p.listeners = append(p.listeners, f)
	p.mu.Unlock()
}

// ServerConfig returns the configuration for connections this node
// accepts. It is fixed; each handshake takes the settings current at
// that moment.
func (p *Peer) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return p.cur.Load().server, nil
		},
	}
}

// ClientConfig returns the configuration for a connection this node
// dials to a peer at addr (host:port).
func (p *Peer) ClientConfig(addr string) *tls.Config {
	st := p.cur.Load()
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{st.cert},
		RootCAs:      st.pool,
		// Every node certificate names the cluster's servers; the
		// standard verification then checks that the peer is one.
		ServerName: pki.ServerName,
		// A resumed session would skip verifying the peer against the
		// CAs of now; connections are long-lived, so full handshakes
		// cost little.
		SessionTicketsDisabled: true,
	}
	if p.cfg.VerifyServerHostname {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer presented no certificate")
			}
			if err := cs.PeerCertificates[0].VerifyHostname(host); err != nil {
				return fmt.Errorf("verify_server_hostname: %w", err)
			}
			return nil
		}
	}
	return c
}

// Verify checks a peer's certificate chain (leaf first) against the CAs
// trusted now: a connection made before a reload is kept only if it still
// passes.
func (p *Peer) Verify(chain []*x509.Certificate) error {
	return verifyChain(p.cur.Load().pool, chain)
}

func verifyChain(pool *x509.CertPool, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, DNSName: pki.ServerName,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// Reload reads the files again (or re-mints a derived certificate that
// nears its end) and reports whether anything changed. On an error the
// settings in force stay as they were.
func (p *Peer) Reload() (bool, error) { return p.reload(false) }

func (p *Peer) reload(first bool) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var (
		st    *peerState
		files [][]byte
		err   error
	)
	if p.cfg.CAFile != "" {
		paths := []string{p.cfg.CAFile, p.cfg.CertFile, p.cfg.KeyFile}
		stamps := statAll(paths)
		files = make([][]byte, len(paths))
		for i, path := range paths {
			if files[i], err = os.ReadFile(path); err != nil {
				return false, fmt.Errorf("peer TLS: %w", err)
			}
		}
		if !first && slices.EqualFunc(files, p.loaded, bytes.Equal) {
			p.stamps = stamps
			return false, nil
		}
		if st, err = stateFromFiles(files[0], files[1], files[2]); err != nil {
			return false, err
		}
		p.stamps = stamps
	} else {
		if cur := p.cur.Load(); cur != nil && !dueForRenewal(cur.cert.Leaf, time.Now()) {
			return false, nil
		}
		if st, err = p.mint(); err != nil {
			return false, err
		}
	}
	st.server = p.serverConfig(st)
	old := p.cur.Swap(st)
	p.loaded = files
	if old != nil {
		p.logger.Info("peer TLS reloaded", "issuer", st.issuer, "cas", strings.Join(st.cas, ","), "expires", st.cert.Leaf.NotAfter.Format(time.RFC3339))
		for _, f := range p.listeners {
			f()
		}
	}
	return true, nil
}

// serverConfig is what a handshake this node accepts uses: the client
// must present a certificate signed by a trusted CA, for client
// authentication, that names a cluster server.
func (p *Peer) serverConfig(st *peerState) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{st.cert},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              st.pool,
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer presented no certificate")
			}
			if err := cs.PeerCertificates[0].VerifyHostname(pki.ServerName); err != nil {
				return fmt.Errorf("the certificate does not name a cluster server (%s)", pki.ServerName)
			}
			return nil
		},
	}
}

// stateFromFiles checks and assembles CAs, certificate and key.
func stateFromFiles(caPEM, certPEM, keyPEM []byte) (*peerState, error) {
	cas, err := pki.ParseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("peer TLS: cluster.tls.ca_file: %w", err)
	}
	for _, ca := range cas {
		if !ca.IsCA {
			return nil, fmt.Errorf("peer TLS: cluster.tls.ca_file: %q is not a CA certificate", ca.Subject.CommonName)
		}
	}
	chain, err := pki.ParseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("peer TLS: cluster.tls.cert_file: %w", err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("peer TLS: cluster.tls.key_file: %w", err)
	}
	if !pki.KeyMatches(chain[0], key) {
		return nil, errors.New("peer TLS: cluster.tls.key_file does not hold the key of cluster.tls.cert_file")
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return assemble(cert, chain, cas)
}

// assemble finds the CA that signed the certificate and checks that the
// certificate can serve both ends of a peer connection.
func assemble(cert tls.Certificate, chain, cas []*x509.Certificate) (*peerState, error) {
	st := &peerState{cert: cert, pool: x509.NewCertPool(), trusted: map[string]bool{}}
	for _, ca := range cas {
		fp := pki.Fingerprint(ca)
		if st.trusted[fp] {
			continue
		}
		st.pool.AddCert(ca)
		st.trusted[fp] = true
		st.cas = append(st.cas, fp)
	}
	leaf := chain[0]
	if err := leaf.VerifyHostname(pki.ServerName); err != nil {
		return nil, fmt.Errorf("peer TLS: cluster.tls.cert_file: the certificate does not name %s (make node certificates with `nebula tls cert create`)", pki.ServerName)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	var chains [][]*x509.Certificate
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		var err error
		chains, err = leaf.Verify(x509.VerifyOptions{Roots: st.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return nil, fmt.Errorf("peer TLS: cluster.tls.cert_file is not valid under cluster.tls.ca_file for %s: %w", usageName(usage), err)
		}
	}
	root := chains[0][len(chains[0])-1]
	st.issuer = pki.Fingerprint(root)
	return st, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "server authentication"
	}
	return "client authentication"
}

// mint derives the CAs and makes this node a new certificate.
func (p *Peer) mint() (*peerState, error) {
	cas := make([]*x509.Certificate, 0, len(p.cfg.CASeeds))
	var signer *pki.CA
	for i, seed := range p.cfg.CASeeds {
		ca, err := pki.DeriveCA(seed)
		if err != nil {
			return nil, fmt.Errorf("peer TLS: %w", err)
		}
		if i == 0 {
			signer = ca
		}
		cas = append(cas, ca.Cert)
	}
	req := pki.NodeRequest{NodeID: p.cfg.NodeID, KeyType: pki.Ed25519, Validity: mintedValidity}
	for _, h := range p.cfg.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			req.IPs = append(req.IPs, ip)
		} else if h != "" {
			req.DNSNames = append(req.DNSNames, h)
		}
	}
	leaf, key, err := signer.Issue(req)
	if err != nil {
		return nil, fmt.Errorf("peer TLS: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return assemble(cert, []*x509.Certificate{leaf}, cas)
}

// mintedValidity is the life of a certificate a node mints for itself; it
// makes a new one when a third is left (see Watch).
const mintedValidity = 90 * 24 * time.Hour

func dueForRenewal(leaf *x509.Certificate, now time.Time) bool {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Sub(now) < life/3
}

// Watch reloads when the files change (checked every interval), renews a
// minted certificate before it expires, and warns daily about a
// certificate from files that expires within 30 days. It returns when ctx
// ends.
func (p *Peer) Watch(ctx context.Context, interval time.Duration) {
	var warned time.Time
	poll(ctx, interval, func() {
		if p.cfg.CAFile == "" {
			if _, err := p.Reload(); err != nil {
				p.logger.Error("renewing this node's peer certificate", "err", err)
			}
			return
		}
		p.mu.Lock()
		changed := !slices.Equal(statAll([]string{p.cfg.CAFile, p.cfg.CertFile, p.cfg.KeyFile}), p.stamps)
		p.mu.Unlock()
		if changed {
			if _, err := p.Reload(); err != nil {
				p.logger.Error("peer TLS files changed but cannot be used; keeping the ones in force", "err", err)
			}
		}
		if left := time.Until(p.NotAfter()); left < 30*24*time.Hour && time.Since(warned) > 24*time.Hour {
			warned = time.Now()
			p.logger.Warn("this node's peer certificate expires soon: replace cluster.tls.cert_file", "expires", p.NotAfter().Format(time.RFC3339))
		}
	})
}

// fileStamp is what tells that a file changed without reading it.
type fileStamp struct {
	size    int64
	modTime time.Time
	ok      bool
}

func statAll(paths []string) []fileStamp {
	out := make([]fileStamp, len(paths))
	for i, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out[i] = fileStamp{size: fi.Size(), modTime: fi.ModTime(), ok: true}
		}
	}
	return out
}
