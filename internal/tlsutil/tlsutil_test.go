package tlsutil

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/internal/pki"
)

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

type files struct {
	t   *testing.T
	dir string
}

func (f files) write(name string, data ...[]byte) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, bytes.Join(data, nil), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// issue writes a certificate of ca and its key, returning their paths.
func (f files) issue(ca *pki.CA, name string, req pki.NodeRequest) (string, string) {
	f.t.Helper()
	cert, key, err := ca.Issue(req)
	if err != nil {
		f.t.Fatal(err)
	}
	k, _ := pki.EncodeKey(key)
	return f.write(name+".pem", pki.EncodeCert(cert)), f.write(name+"-key.pem", k)
}

func TestPeerFromFilesRefusesBadSets(t *testing.T) {
	f := files{t, t.TempDir()}
	ca, _ := pki.NewCA(pki.CAOptions{CommonName: "one"})
	other, _ := pki.NewCA(pki.CAOptions{CommonName: "two"})
	caFile := f.write("ca.pem", pki.EncodeCert(ca.Cert))
	cert, key := f.issue(ca, "n1", pki.NodeRequest{NodeID: "n1"})
	otherCert, otherKey := f.issue(other, "x", pki.NodeRequest{NodeID: "x"})
	if _, err := NewPeer(PeerConfig{CAFile: caFile, CertFile: cert, KeyFile: key}); err != nil {
		t.Fatalf("a good set: %v", err)
	}
	// A certificate that does not name server.nebula.
	plain := *ca
	leaf, leafKey, _ := plain.Issue(pki.NodeRequest{})
	tmpl := *leaf
	tmpl.DNSNames = []string{"api.example.com"}
	der, err := x509.CreateCertificate(nil, &tmpl, ca.Cert, leafKey.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	apiCert := f.write("api.pem", pki.EncodeCert(&x509.Certificate{Raw: der}))
	apiKeyPEM, _ := pki.EncodeKey(leafKey)
	apiKey := f.write("api-key.pem", apiKeyPEM)

	for _, tc := range []struct {
		name string
		cfg  PeerConfig
		want string
	}{
		{"missing CA file", PeerConfig{CAFile: filepath.Join(f.dir, "none.pem"), CertFile: cert, KeyFile: key}, "no such file"},
		{"no CA nor seed", PeerConfig{}, "no CA"},
		{"CA without certificate", PeerConfig{CAFile: caFile}, "cert_file and key_file"},
		{"key of another certificate", PeerConfig{CAFile: caFile, CertFile: cert, KeyFile: otherKey}, "key_file does not hold"},
		{"certificate of another CA", PeerConfig{CAFile: caFile, CertFile: otherCert, KeyFile: otherKey}, "not valid under cluster.tls.ca_file"},
		{"not a server certificate", PeerConfig{CAFile: caFile, CertFile: apiCert, KeyFile: apiKey}, "does not name server.nebula"},
		{"a leaf as the CA", PeerConfig{CAFile: cert, CertFile: cert, KeyFile: key}, "not a CA certificate"},
		{"garbage", PeerConfig{CAFile: f.write("junk.pem", []byte("junk")), CertFile: cert, KeyFile: key}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPeer(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPeerReloadKeepsWhatWorks(t *testing.T) {
	f := files{t, t.TempDir()}
	ca, _ := pki.NewCA(pki.CAOptions{CommonName: "one"})
	next, _ := pki.NewCA(pki.CAOptions{CommonName: "two"})
	caFile := f.write("ca.pem", pki.EncodeCert(ca.Cert))
	cert, key := f.issue(ca, "n1", pki.NodeRequest{NodeID: "n1"})
	p, err := NewPeer(PeerConfig{CAFile: caFile, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	p.OnChange(func() { changes++ })
	issuer := p.Issuer()
	if changed, err := p.Reload(); changed || err != nil {
		t.Fatalf("reload of the same files: %v %v", changed, err)
	}
	// Only the new CA, while the certificate is still of the old: the
	// node could not prove itself, so the reload is refused.
	f.write("ca.pem", pki.EncodeCert(next.Cert))
	if _, err := p.Reload(); err == nil {
		t.Fatal("a CA file that no longer vouches for this node's certificate was taken")
	}
	if p.Issuer() != issuer || changes != 0 {
		t.Fatal("a failed reload changed the settings")
	}
	f.write("ca.pem", pki.EncodeCert(ca.Cert), pki.EncodeCert(next.Cert))
	if changed, err := p.Reload(); !changed || err != nil {
		t.Fatalf("adding a CA: %v %v", changed, err)
	}
	if !p.Trusts(pki.Fingerprint(next.Cert)) || !p.Trusts(issuer) || changes != 1 {
		t.Fatalf("after adding a CA: trusts new %v, old %v; %d changes", p.Trusts(pki.Fingerprint(next.Cert)), p.Trusts(issuer), changes)
	}
	f.issue(next, "n1", pki.NodeRequest{NodeID: "n1"})
	if _, err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if p.Issuer() != pki.Fingerprint(next.Cert) {
		t.Fatalf("issuer %s after the new certificate, want %s", p.Issuer(), pki.Fingerprint(next.Cert))
	}
}

func TestPeerDerived(t *testing.T) {
	a, err := NewPeer(PeerConfig{CASeeds: [][]byte{seed(1), seed(2)}, NodeID: "n1", Hosts: []string{"10.0.0.1", "n1.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPeer(PeerConfig{CASeeds: [][]byte{seed(2), seed(1)}, NodeID: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	// Mid-rotation, each signs with its first key and trusts both.
	if a.Issuer() == b.Issuer() || !a.Trusts(b.Issuer()) || !b.Trusts(a.Issuer()) {
		t.Fatalf("issuers %s %s; trusts each other %v %v", a.Issuer(), b.Issuer(), a.Trusts(b.Issuer()), b.Trusts(a.Issuer()))
	}
	leaf := a.cur.Load().cert.Leaf
	for _, h := range []string{"10.0.0.1", "n1.internal", "n1.server.nebula", pki.ServerName} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("minted certificate: %v", err)
		}
	}
	if err := b.Verify([]*x509.Certificate{leaf}); err != nil {
		t.Fatalf("b does not accept a's certificate: %v", err)
	}
	c, _ := NewPeer(PeerConfig{CASeeds: [][]byte{seed(3)}, NodeID: "n3"})
	if err := c.Verify([]*x509.Certificate{leaf}); err == nil {
		t.Fatal("a node of another key accepts a's certificate")
	}
	if changed, err := a.Reload(); changed || err != nil {
		t.Fatalf("a fresh minted certificate was renewed: %v %v", changed, err)
	}
	now := time.Now()
	if dueForRenewal(leaf, now) || !dueForRenewal(leaf, now.Add(2*mintedValidity/3+time.Hour)) {
		t.Fatal("renewal is not due at two thirds of the certificate's life")
	}
}

func TestKeypairReload(t *testing.T) {
	f := files{t, t.TempDir()}
	ca, _ := pki.NewCA(pki.CAOptions{})
	cert, key := f.issue(ca, "api", pki.NodeRequest{NodeID: "api"})
	k, err := NewKeypair(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := k.cur.Load()
	if changed, _ := k.Reload(); changed {
		t.Fatal("the same files reloaded as a change")
	}
	f.issue(ca, "api", pki.NodeRequest{NodeID: "api"})
	if changed, err := k.Reload(); !changed || err != nil {
		t.Fatalf("a new certificate: %v %v", changed, err)
	}
	got, err := k.ServerConfig().GetCertificate(nil)
	if err != nil || got == first {
		t.Fatal("the server config did not pick up the new certificate")
	}
	other, _ := pki.NewCA(pki.CAOptions{})
	_, otherKey := f.issue(other, "other", pki.NodeRequest{})
	if _, err := NewKeypair(cert, otherKey, nil); err == nil || !strings.Contains(err.Error(), "does not hold the key") {
		t.Fatalf("mismatched pair: %v", err)
	}
}
