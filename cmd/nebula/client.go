package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// clientFlags are shared by the commands that talk to a running server.
type clientFlags struct {
	server, token, output, caCert string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.server, "server", "", "server URL (env NEBULA_ADDR; default http://127.0.0.1:8787)")
	fs.StringVar(&f.token, "token", "", "API token (env NEBULA_TOKEN)")
	fs.StringVar(&f.output, "output", "table", "output format: table or json")
	fs.StringVar(&f.caCert, "ca-cert", "", "PEM file of the CA that signed the server's https certificate (env NEBULA_CA_CERT)")
}

// client returns an API client configured from the flags and env.
func (f *clientFlags) client(cmd *cobra.Command) (*apiClient, error) {
	if f.output != "table" && f.output != "json" {
		return nil, usagef("--output must be table or json, got %q", f.output)
	}
	base := f.server
	if !cmd.Flags().Changed("server") {
		base = os.Getenv("NEBULA_ADDR")
	}
	if base == "" {
		base = "http://127.0.0.1:8787"
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	token := f.token
	if !cmd.Flags().Changed("token") {
		token = os.Getenv("NEBULA_TOKEN")
	}
	tr, err := clientTransport(flagOrEnv(cmd, "ca-cert", f.caCert))
	if err != nil {
		return nil, err
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

// clientTransport returns the HTTP transport of API clients: it trusts
// the system's CAs, and the one in caFile when given (a server whose
// certificate a private CA signed).
func clientTransport(caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usagef("--ca-cert: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--ca-cert: %s holds no PEM certificate", caFile)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// apiClient calls the HTTP API and turns its error shape into errors.
type apiClient struct {
	base, token string
	hc          *http.Client
}

// call sends a request and returns the raw JSON answer of a 2xx status.
func (c *apiClient) call(ctx context.Context, method, path string, body []byte) (json.RawMessage, error) {
	return c.callWith(ctx, method, path, "application/json", body)
}

// callWith is call with a body of another content type.
func (c *apiClient) callWith(ctx context.Context, method, path, contentType string, body []byte) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, newAPIError(resp.StatusCode, raw)
	}
	return raw, nil
}

// apiError is a non-2xx answer. Callers that must tell answers apart (a
// route an older server lacks) look at Status; users read the message.
type apiError struct {
	Status        int
	Code, Message string
}

// newAPIError reads the API's error shape from the body of a non-2xx
// answer, or keeps the body itself when it is not that shape (a proxy's
// page, say), on one line since errors are printed as one.
func newAPIError(status int, body []byte) *apiError {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return &apiError{Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	return &apiError{Status: status, Message: strings.Join(strings.Fields(string(body)), " ")}
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

func newClusterCmd() *cobra.Command {
	var f clientFlags
	cmd := groupCmd("cluster", "Inspect the cluster")
	f.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "members",
		Short: "List the coordinators, their state and the leader",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodGet, "/v1/cluster", nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				_, err := fmt.Fprintln(out, string(raw))
				return err
			}
			var v struct {
				Leader  string `json:"leader"`
				Members []struct {
					ID       string `json:"id"`
					APIAddr  string `json:"api_addr"`
					RaftAddr string `json:"raft_addr"`
					Status   string `json:"status"`
					Voter    bool   `json:"voter"`
					Leader   bool   `json:"leader"`
				} `json:"members"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("decoding /v1/cluster: %w", err)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAPI\tRAFT\tSTATUS\tVOTER\tLEADER")
			for _, m := range v.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.APIAddr, m.RaftAddr, m.Status, yesNo(m.Voter), yesNo(m.Leader))
			}
			return tw.Flush()
		},
	})
	return cmd
}

// groupCmd is a command that only holds subcommands; an unknown one is a
// usage error.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %s", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
