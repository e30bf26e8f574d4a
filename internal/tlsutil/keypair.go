package tlsutil

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nebula-engine/nebula/internal/pki"
)

// Keypair is a server certificate read from a certificate file (leaf
// first, then any intermediates) and a key file, for the API's https.
// Reload reads them again; handshakes after it use what it read.
type Keypair struct {
	certFile, keyFile string
	logger            *slog.Logger
	cur               atomic.Pointer[tls.Certificate]

	mu     sync.Mutex
	stamps []fileStamp
}

// NewKeypair loads the certificate and key. An error names the file at
// fault.
func NewKeypair(certFile, keyFile string, logger *slog.Logger) (*Keypair, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k := &Keypair{certFile: certFile, keyFile: keyFile, logger: logger}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the files again and reports whether the certificate
// changed. On an error the certificate in force stays.
func (k *Keypair) Reload() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stamps := statAll([]string{k.certFile, k.keyFile})
	certPEM, err := os.ReadFile(k.certFile)
	if err != nil {
		return false, fmt.Errorf("api TLS: %w", err)
	}
	keyPEM, err := os.ReadFile(k.keyFile)
	if err != nil {
		return false, fmt.Errorf("api TLS: %w", err)
	}
	chain, err := pki.ParseCerts(certPEM)
	if err != nil {
		return false, fmt.Errorf("api TLS: certificate file %s: %w", k.certFile, err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return false, fmt.Errorf("api TLS: key file %s: %w", k.keyFile, err)
	}
	if !pki.KeyMatches(chain[0], key) {
		return false, fmt.Errorf("api TLS: key file %s does not hold the key of %s", k.keyFile, k.certFile)
	}
	k.stamps = stamps
	if cur := k.cur.Load(); cur != nil && slices.Equal(cur.Certificate[0], chain[0].Raw) {
		return false, nil
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	if k.cur.Swap(cert) != nil {
		k.logger.Info("api certificate reloaded", "subject", chain[0].Subject.CommonName, "expires", chain[0].NotAfter.Format(time.RFC3339))
	}
	return true, nil
}

// ServerConfig returns the configuration the API listener serves with.
func (k *Keypair) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return k.cur.Load(), nil
		},
	}
}

// Watch reloads when the files change, checked every interval, until ctx
// ends.
func (k *Keypair) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, func() {
		k.mu.Lock()
		changed := !slices.Equal(statAll([]string{k.certFile, k.keyFile}), k.stamps)
		k.mu.Unlock()
		if !changed {
			return
		}
		if _, err := k.Reload(); err != nil {
			k.logger.Error("api TLS files changed but cannot be used; keeping the ones in force", "err", err)
		}
	})
}

// poll calls f every interval until ctx ends.
func poll(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
