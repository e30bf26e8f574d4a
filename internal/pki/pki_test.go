package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestDeriveCAIsDeterministic(t *testing.T) {
	a, err := DeriveCA(seed(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := DeriveCA(seed(1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Cert.Raw, b.Cert.Raw) {
		t.Fatal("the same seed derived two different CA certificates")
	}
	c, err := DeriveCA(seed(2))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Cert.Raw, c.Cert.Raw) || a.Cert.Subject.CommonName == c.Cert.Subject.CommonName {
		t.Fatal("two seeds derived the same CA, or CAs of the same name")
	}
	if !a.Cert.IsCA || a.Cert.SerialNumber.Sign() <= 0 {
		t.Fatalf("derived certificate: IsCA %v, serial %v", a.Cert.IsCA, a.Cert.SerialNumber)
	}
	if _, err := DeriveCA(seed(1)[:16]); err == nil {
		t.Fatal("a short seed was accepted")
	}
}

func TestIssueVerifies(t *testing.T) {
	derived, err := DeriveCA(seed(3))
	if err != nil {
		t.Fatal(err)
	}
	made, err := NewCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA(CAOptions{CommonName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ca   *CA
		kt   KeyType
	}{
		{"derived ed25519", derived, Ed25519},
		{"made ecdsa", made, ECDSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, key, err := tc.ca.Issue(NodeRequest{NodeID: "n1", IPs: []net.IP{net.ParseIP("10.0.0.1")}, DNSNames: []string{"node1.example.com"}, KeyType: tc.kt})
			if err != nil {
				t.Fatal(err)
			}
			if !KeyMatches(cert, key) {
				t.Fatal("the key does not match its certificate")
			}
			pool := x509.NewCertPool()
			pool.AddCert(tc.ca.Cert)
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: ServerName, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Fatalf("verify for %v: %v", usage, err)
				}
			}
			for _, host := range []string{"n1.server.nebula", "node1.example.com", "10.0.0.1", "127.0.0.1", "localhost"} {
				if err := cert.VerifyHostname(host); err != nil {
					t.Errorf("%s: %v", host, err)
				}
			}
			if err := cert.VerifyHostname("10.0.0.2"); err == nil {
				t.Error("names an address it was not issued for")
			}
			otherPool := x509.NewCertPool()
			otherPool.AddCert(other.Cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: otherPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				t.Fatal("verified against another CA")
			}
		})
	}
}

func TestIssueStaysWithinCA(t *testing.T) {
	ca, err := NewCA(CAOptions{Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.Issue(NodeRequest{Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("certificate outlives its CA: %v > %v", cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestPEMRoundTrip(t *testing.T) {
	ca, err := NewCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(EncodeCert(ca.Cert), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(loaded.Cert) != Fingerprint(ca.Cert) {
		t.Fatal("fingerprint changed across PEM")
	}
	other, _ := NewCA(CAOptions{})
	otherKey, _ := EncodeKey(other.Key)
	if _, err := LoadCA(EncodeCert(ca.Cert), otherKey); err == nil {
		t.Fatal("a CA with another CA's key was loaded")
	}
	leaf, leafKey, _ := ca.Issue(NodeRequest{})
	leafKeyPEM, _ := EncodeKey(leafKey)
	if _, err := LoadCA(EncodeCert(leaf), leafKeyPEM); err == nil {
		t.Fatal("a node certificate was loaded as a CA")
	}
	bundle := append(EncodeCert(ca.Cert), EncodeCert(other.Cert)...)
	certs, err := ParseCerts(bundle)
	if err != nil || len(certs) != 2 {
		t.Fatalf("bundle: %d certificates, %v", len(certs), err)
	}
	if _, err := ParseCerts([]byte("not pem")); err == nil {
		t.Fatal("text without PEM parsed")
	}
	if _, err := ParseKey(EncodeCert(ca.Cert)); err == nil {
		t.Fatal("a certificate parsed as a key")
	}
}

// FuzzParse feeds arbitrary bytes to the PEM parsers that read
// certificate, key and CA files: they must fail cleanly, never panic.
func FuzzParse(f *testing.F) {
	ca, err := NewCA(CAOptions{})
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, _ := EncodeKey(ca.Key)
	f.Add(EncodeCert(ca.Cert))
	f.Add(keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if certs, err := ParseCerts(data); err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		ParseKey(data)
		LoadCA(data, data)
	})
}
