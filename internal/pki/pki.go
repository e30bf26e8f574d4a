// Package pki makes the certificates that cluster peers prove themselves
// with: a cluster CA (made at random, or derived from a seed so that every
// holder of the master key derives the same one) and node certificates
// signed by it. It uses only crypto/x509.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// ServerName is the DNS name every node certificate carries: a peer
// accepts a certificate only if it names a cluster server, so that a
// certificate the same CA issued for something else (an API endpoint, a
// client) does not open the cluster.
const ServerName = "server.nebula"

// NodeName is the DNS name that identifies one node in its certificate.
func NodeName(nodeID string) string { return nodeID + "." + ServerName }

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// derivedEpoch bounds the derived CA's validity. Fixed dates, not the
// clock: every node must derive the very same certificate.
var (
	derivedNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	derivedNotAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

// DeriveCA returns the CA that seed determines: an Ed25519 key made from
// the seed and a self-signed certificate whose every field comes from it
// (Ed25519 signatures are deterministic), so that every node holding the
// seed derives the same CA byte for byte. seed must be 32 bytes of secret
// key material, such as an HKDF output.
func DeriveCA(seed []byte) (*CA, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("pki: derive CA: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		// A positive serial that is the same on every node.
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		Subject: pkix.Name{
			Organization: []string{"Nebula"},
			// The key's digest keeps CAs of different master keys
			// apart by name as well as by key (rotation holds two).
			CommonName: "Nebula cluster CA " + hex.EncodeToString(sum[:4]),
		},
		NotBefore:             derivedNotBefore,
		NotAfter:              derivedNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          sum[:20],
	}
	der, err := x509.CreateCertificate(deterministic{}, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("pki: derive CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: derive CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// deterministic is a reader that must not be read: Ed25519 signing uses
// no randomness, and a read would make the CA differ between nodes.
type deterministic struct{}

func (deterministic) Read([]byte) (int, error) {
	return 0, errors.New("pki: a derived certificate must not use randomness")
}

// CAOptions configures NewCA.
type CAOptions struct {
	// CommonName names the CA; empty picks "Nebula CA <serial>".
	CommonName string
	// Validity is how long the CA is valid from now; zero picks 5 years.
	Validity time.Duration
}

// NewCA makes a CA with a new ECDSA P-256 key.
func NewCA(opts CAOptions) (*CA, error) {
	if opts.Validity == 0 {
		opts.Validity = 5 * 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	if opts.CommonName == "" {
		opts.CommonName = "Nebula CA " + serial.Text(16)[:8]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Nebula"}, CommonName: opts.CommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// KeyType is the kind of key a node certificate gets.
type KeyType int

const (
	// ECDSA P-256: what browsers, curl and every TLS stack accept (use
	// it for certificates that also serve the API).
	ECDSA KeyType = iota
	// Ed25519: the cheapest to make and to handshake with; every Go
	// peer accepts it.
	Ed25519
)

// NodeRequest describes a node certificate.
type NodeRequest struct {
	// NodeID, when set, adds the DNS name NodeName(NodeID).
	NodeID string
	// IPs and DNSNames are added to the certificate's names, beside
	// ServerName, localhost and 127.0.0.1.
	IPs      []net.IP
	DNSNames []string
	// Validity is how long the certificate is valid from now; zero picks
	// one year.
	Validity time.Duration
	KeyType  KeyType
}

// Issue makes a key and a certificate for a node, signed by ca. The
// certificate serves both ends of a peer connection (server and client
// authentication) and names ServerName.
func (ca *CA) Issue(req NodeRequest) (*x509.Certificate, crypto.Signer, error) {
	if req.Validity == 0 {
		req.Validity = 365 * 24 * time.Hour
	}
	var (
		key crypto.Signer
		err error
	)
	switch req.KeyType {
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pki: node key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	names := []string{ServerName}
	cn := ServerName
	if req.NodeID != "" {
		cn = NodeName(req.NodeID)
		names = append(names, cn)
	}
	names = append(names, "localhost")
	for _, d := range req.DNSNames {
		if d = strings.TrimSpace(d); d != "" && !contains(names, d) {
			names = append(names, d)
		}
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, ip := range req.IPs {
		if !containsIP(ips, ip) {
			ips = append(ips, ip)
		}
	}
	now := time.Now()
	notAfter := now.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"Nebula"}, CommonName: cn},
		// An hour back: peers' clocks differ a little.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    names,
		IPAddresses: ips,
	}
	if _, ok := key.(ed25519.PrivateKey); ok {
		// Key encipherment is for RSA key exchange only.
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue: %w", err)
	}
	return cert, key, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func containsIP(list []net.IP, ip net.IP) bool {
	for _, v := range list {
		if v.Equal(ip) {
			return true
		}
	}
	return false
}

// Fingerprint is a short name for a certificate: the first 8 bytes of the
// SHA-256 of its DER, in hex. Gossip carries it to tell which CA signed a
// node's certificate.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:8])
}

// EncodeCert returns the certificate as PEM.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// EncodeKey returns the private key as PKCS #8 PEM.
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCerts returns every certificate in PEM data, in order. Blocks of
// other types are skipped; data without a certificate is an error.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParseKey returns the private key in PEM data: PKCS #8, or the PKCS #1
// and SEC 1 forms that other tools write.
func ParseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign", key)
		}
		return signer, nil
	}
}

// LoadCA parses a CA from its certificate and key in PEM, checking that
// they belong together and that the certificate is a CA's.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, errors.New("the certificate is not a CA's (basic constraints say otherwise)")
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("the key does not belong to the certificate")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// publicKeysEqual compares two public keys of any supported kind.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	return publicKeysEqual(cert.PublicKey, key.Public())
}
