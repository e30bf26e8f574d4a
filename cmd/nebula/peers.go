package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nebula-engine/nebula/cluster"
	"github.com/nebula-engine/nebula/internal/config"
	"github.com/nebula-engine/nebula/internal/tlsutil"
)

// tlsPollInterval is how often certificate files are checked for a
// change; SIGHUP reloads them at once.
const tlsPollInterval = 2 * time.Second

type peerOptions struct {
	// raftAddr is the advertised Raft address: a minted certificate
	// names its host.
	raftAddr string
	// caSeeds derive the cluster CA, one per master key; secrets guard
	// the internal endpoints.
	caSeeds, secrets [][]byte
	logger           *slog.Logger
}

// listenPeers opens the peer port: mutual TLS under the configured CA or
// the one derived from the master key, or plain text when
// cluster.insecure_transport says so.
func listenPeers(cfg *config.Config, o peerOptions) (*cluster.Transport, *tlsutil.Peer, error) {
	tc := cluster.TransportConfig{
		BindAddr:      cfg.Cluster.RaftAddr,
		AdvertiseAddr: o.raftAddr,
		Secrets:       o.secrets,
		NodeID:        cfg.Cluster.NodeID,
		Logger:        o.logger,
	}
	var peerTLS *tlsutil.Peer
	if cfg.Cluster.InsecureTransport {
		o.logger.Warn("peers talk in PLAIN TEXT (cluster.insecure_transport = true): whoever reaches the Raft port " +
			"can read every entry (inputs, outputs, definitions) and, holding no key, send Raft messages that replace " +
			"this node's state; run this only on a network nobody else reaches")
	} else {
		host, _, err := net.SplitHostPort(o.raftAddr)
		if err != nil {
			return nil, nil, usagef("cluster.advertise_raft_addr: %v", err)
		}
		ct := cfg.Cluster.TLS
		peerTLS, err = tlsutil.NewPeer(tlsutil.PeerConfig{
			CAFile:               ct.CAFile,
			CertFile:             ct.CertFile,
			KeyFile:              ct.KeyFile,
			VerifyServerHostname: ct.VerifyServerHostname,
			CASeeds:              o.caSeeds,
			NodeID:               cfg.Cluster.NodeID,
			Hosts:                []string{host},
			Logger:               o.logger,
		})
		if err != nil {
			return nil, nil, usageError{err}
		}
		tc.TLS = peerTLS
	}
	t, err := cluster.Listen(tc)
	if err != nil {
		return nil, nil, err
	}
	return t, peerTLS, nil
}

// peerMode describes the peer transport for the ready line.
func peerMode(t *cluster.Transport, cfg *config.Config) string {
	switch {
	case t == nil:
		return "none"
	case t.Mode() == cluster.TransportPlain:
		return "plain-text"
	case cfg.Cluster.TLS.CAFile != "":
		return "mtls (cluster.tls.ca_file)"
	}
	return "mtls (CA derived from the master key)"
}

// watchCerts reloads the peer and API certificates when their files
// change or on SIGHUP, until ctx ends. A reload of the peer certificates
// re-gossips this node's CA and drops connections whose peers the new
// CAs no longer trust.
func watchCerts(ctx context.Context, logger *slog.Logger, peer *tlsutil.Peer, api *tlsutil.Keypair, onPeerChange func()) {
	if peer != nil {
		peer.OnChange(onPeerChange)
		go peer.Watch(ctx, tlsPollInterval)
	}
	if api != nil {
		go api.Watch(ctx, tlsPollInterval)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		logger.Info("SIGHUP: reloading certificates")
		if peer != nil {
			if changed, err := peer.Reload(); err != nil {
				logger.Error("peer certificates not reloaded; keeping the ones in force", "err", err)
			} else if !changed {
				logger.Info("peer certificates unchanged")
			}
		}
		if api != nil {
			if changed, err := api.Reload(); err != nil {
				logger.Error("api certificate not reloaded; keeping the one in force", "err", err)
			} else if !changed {
				logger.Info("api certificate unchanged")
			}
		}
	}
}
