package main

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/nebula-engine/nebula/internal/config"
	"github.com/nebula-engine/nebula/internal/pki"
)

// The tls commands make a CA and node certificates for clusters that
// bring their own ([cluster.tls]) and for the API's https. A cluster that
// sets only NEBULA_MASTER_KEY needs neither: its CA is derived from the key.

func newTLSCmd() *cobra.Command {
	cmd := groupCmd("tls", "Make a CA and node certificates for peer mutual TLS and the API's https")
	ca := groupCmd("ca", "Manage a certificate authority")
	ca.AddCommand(newTLSCACreateCmd())
	cert := groupCmd("cert", "Manage node certificates")
	cert.AddCommand(newTLSCertCreateCmd())
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCmd() *cobra.Command {
	var (
		days   int
		name   string
		outDir string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a CA: nebula-ca.pem (give it to every node as cluster.tls.ca_file) and nebula-ca-key.pem (keep it safe)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return usagef("--days must be at least 1, got %d", days)
			}
			certPath := filepath.Join(outDir, "nebula-ca.pem")
			keyPath := filepath.Join(outDir, "nebula-ca-key.pem")
			if err := refuseExisting(certPath, keyPath); err != nil {
				return err
			}
			ca, err := pki.NewCA(pki.CAOptions{CommonName: name, Validity: time.Duration(days) * 24 * time.Hour})
			if err != nil {
				return err
			}
			if err := writeKeypair(certPath, keyPath, pki.EncodeCert(ca.Cert), ca.Key); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA %q (fingerprint %s, valid until %s)\n  certificate: %s\n  key:         %s\n",
				ca.Cert.Subject.CommonName, pki.Fingerprint(ca.Cert), ca.Cert.NotAfter.Format(time.DateOnly), certPath, keyPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&days, "days", 1825, "days the CA is valid")
	f.StringVar(&name, "common-name", "", "the CA's name (default \"Nebula CA\" and a serial)")
	f.StringVar(&outDir, "out-dir", ".", "where to write the files")
	return cmd
}

func newTLSCertCreateCmd() *cobra.Command {
	var (
		node, caFile, caKeyFile, outDir string
		ips, dns                        []string
		days                            int
	)
	cmd := &cobra.Command{
		Use:   "create --node ID [--ip IP]… [--dns NAME]…",
		Short: "Make a node certificate signed by the CA: ID.pem (cluster.tls.cert_file) and ID-key.pem (cluster.tls.key_file)",
		Long: "Make a node certificate signed by the CA. It names server.nebula (what peers check),\n" +
			"ID.server.nebula, localhost, 127.0.0.1 and the given addresses and names, and serves\n" +
			"both ends of a connection; it also serves the API's https (api.tls_cert_file).",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usagef("--node is required: the node's id (cluster.node_id)")
			}
			if !config.ValidNodeID(node) {
				return usagef("--node: %q must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'", node)
			}
			if days < 1 {
				return usagef("--days must be at least 1, got %d", days)
			}
			req := pki.NodeRequest{NodeID: node, DNSNames: dns, Validity: time.Duration(days) * 24 * time.Hour}
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return usagef("--ip: %q is not an IP address", s)
				}
				req.IPs = append(req.IPs, ip)
			}
			certPEM, err := os.ReadFile(caFile)
			if err != nil {
				return usagef("--ca: %v", err)
			}
			keyPEM, err := os.ReadFile(caKeyFile)
			if err != nil {
				return usagef("--ca-key: %v", err)
			}
			ca, err := pki.LoadCA(certPEM, keyPEM)
			if err != nil {
				return usagef("--ca %s, --ca-key %s: %v", caFile, caKeyFile, err)
			}
			certPath := filepath.Join(outDir, node+".pem")
			keyPath := filepath.Join(outDir, node+"-key.pem")
			if err := refuseExisting(certPath, keyPath); err != nil {
				return err
			}
			cert, key, err := ca.Issue(req)
			if err != nil {
				return err
			}
			if err := writeKeypair(certPath, keyPath, pki.EncodeCert(cert), key); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "certificate for %s signed by %q (valid until %s)\n  names:       %v %v\n  certificate: %s\n  key:         %s\n",
				node, ca.Cert.Subject.CommonName, cert.NotAfter.Format(time.DateOnly), cert.DNSNames, cert.IPAddresses, certPath, keyPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "the node's id (required)")
	f.StringSliceVar(&ips, "ip", nil, "an IP address the node is reached at (repeatable)")
	f.StringSliceVar(&dns, "dns", nil, "a DNS name the node is reached at (repeatable)")
	f.IntVar(&days, "days", 365, "days the certificate is valid")
	f.StringVar(&caFile, "ca", "nebula-ca.pem", "the CA's certificate")
	f.StringVar(&caKeyFile, "ca-key", "nebula-ca-key.pem", "the CA's key")
	f.StringVar(&outDir, "out-dir", ".", "where to write the files")
	return cmd
}

// refuseExisting fails when any of the files exists: a key is never
// overwritten.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return usagef("%s exists: remove it or choose another --out-dir", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return usagef("%v", err)
		}
	}
	return nil
}

// writeKeypair writes a certificate (mode 0644) and its key (0600), each
// only if it does not exist yet.
func writeKeypair(certPath, keyPath string, certPEM []byte, key crypto.Signer) error {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o755); err != nil {
		return usagef("%v", err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode fs.FileMode
	}{{keyPath, keyPEM, 0o600}, {certPath, certPEM, 0o644}} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return usagef("%v", err)
		}
		_, err = fh.Write(f.data)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
