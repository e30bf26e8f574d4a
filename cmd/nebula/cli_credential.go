package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newCredentialCmd() *cobra.Command {
	var f clientFlags
	cmd := groupCmd("credential", "Store credentials that actions use by name (their values are never shown)")
	f.register(cmd)
	cmd.AddCommand(credentialSetCmd(&f), credentialListCmd(&f), credentialDeleteCmd(&f), credentialRotateKeyCmd(&f))
	return cmd
}

// credentialSetCmd stores a credential. Its fields come from flags, and a
// secret field left out is read from the terminal without echo (or from
// stdin), so that it stays out of the shell's history.
func credentialSetCmd(f *clientFlags) *cobra.Command {
	var typ, token, username, password, header, value string
	cmd := &cobra.Command{
		Use:   "set NAME --type bearer|basic|header",
		Short: "Store a credential (replacing one of the same name)",
		Example: "  nebula credential set github --type bearer            # prompts for the token\n" +
			"  nebula credential set registry --type basic --username ci\n" +
			"  nebula credential set api --type header --header X-Api-Key",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var data map[string]string
			switch typ {
			case "bearer":
				if token == "" {
					if token, err = readSecret("token"); err != nil {
						return err
					}
				}
				data = map[string]string{"token": token}
			case "basic":
				if username == "" {
					return usagef("--username is required for a basic credential")
				}
				if password == "" {
					if password, err = readSecret("password"); err != nil {
						return err
					}
				}
				data = map[string]string{"username": username, "password": password}
			case "header":
				if header == "" {
					return usagef("--header NAME is required for a header credential")
				}
				if value == "" {
					if value, err = readSecret("value of " + header); err != nil {
						return err
					}
				}
				data = map[string]string{"name": header, "value": value}
			default:
				return usagef("--type must be bearer, basic or header, got %q", typ)
			}
			body, _ := json.Marshal(map[string]any{"name": args[0], "type": typ, "data": data})
			raw, err := c.call(cmd.Context(), http.MethodPost, "/v1/credentials", body)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "credential %s (%s) stored\n", args[0], typ)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&typ, "type", "", "bearer, basic or header")
	fs.StringVar(&token, "token", "", "bearer token (prompted for when left out)")
	fs.StringVar(&username, "username", "", "basic: user name")
	fs.StringVar(&password, "password", "", "basic: password (prompted for when left out)")
	fs.StringVar(&header, "header", "", "header: the header's name")
	fs.StringVar(&value, "value", "", "header: its value (prompted for when left out)")
	return cmd
}

// readSecret reads one line: without echo from a terminal, else from
// stdin.
func readSecret(what string) (string, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprintf(os.Stderr, "%s: ", what)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", usagef("reading the %s: %v", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	var line string
	if _, err := fmt.Fscanln(os.Stdin, &line); err != nil || line == "" {
		return "", usagef("the %s is required (a flag, or a line on stdin)", what)
	}
	return line, nil
}

func credentialListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List credentials (names and types only)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var page struct {
				Items []struct {
					Name      string `json:"name"`
					Type      string `json:"type"`
					UpdatedAt string `json:"updated_at"`
				} `json:"items"`
			}
			raw, err := getDoc(cmd.Context(), c, http.MethodGet, "/v1/credentials", nil, &page)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "TYPE", "UPDATED")
			for _, it := range page.Items {
				t.row(it.Name, it.Type, formatTime(parseTime(it.UpdatedAt)))
			}
			return t.flush()
		},
	}
}

func credentialDeleteCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a credential",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/v1/credentials/"+pathID(args[0]), nil); err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), json.RawMessage(`{"deleted":true}`))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "credential %s deleted\n", args[0])
			return err
		},
	}
}

// credentialRotateKeyCmd re-seals every credential under the current
// master key: the last step of a key rotation.
func credentialRotateKeyCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-seal every credential under the current master key (after a new key is made current)",
		Long: "Rotating the master key, with the cluster serving throughout:\n" +
			"  1. on every node in turn, restart with NEBULA_MASTER_KEY=OLD,NEW (the old key still current)\n" +
			"  2. on every node in turn, restart with NEBULA_MASTER_KEY=NEW,OLD (the new key seals)\n" +
			"  3. nebula credential rotate-key (re-seals every credential under NEW)\n" +
			"  4. on every node in turn, restart with NEBULA_MASTER_KEY=NEW\n" +
			"The same with one key per line in <data>/master.key. Safe to run again.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, "/v1/cluster/rotate-key", []byte("{}"))
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			var rot struct{ Resealed, Current int }
			if err := json.Unmarshal(raw, &rot); err != nil {
				return fmt.Errorf("decoding the answer: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d credentials re-sealed under the current key (%d already were)\n", rot.Resealed, rot.Current)
			return err
		},
	}
}
