package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func newTenantCmd() *cobra.Command {
	var f clientFlags
	cmd := groupCmd("tenant", "Manage tenants, their quotas and tokens (admin token; servers with auth on)")
	f.register(cmd)
	token := groupCmd("token", "Issue, list and revoke a tenant's tokens")
	token.AddCommand(tokenCreateCmd(&f), tokenListCmd(&f), tokenRevokeCmd(&f))
	cmd.AddCommand(tenantCreateCmd(&f), tenantListCmd(&f), tenantGetCmd(&f), tenantQuotaCmd(&f), token)
	return cmd
}

// quotaDoc is a quota as the API shows it; 0 is unlimited.
type quotaDoc struct {
	MaxWorkflows            int64 `json:"max_workflows"`
	MaxConcurrentExecutions int64 `json:"max_concurrent_executions"`
	MaxExecutionsPerHour    int64 `json:"max_executions_per_hour"`
	MaxStorageMB            int64 `json:"max_storage_mb"`
}

// tenantDoc is a tenant as the API shows it; Token only when created.
type tenantDoc struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Quota     quotaDoc `json:"quota"`
	Token     string   `json:"token"`
	CreatedAt *string  `json:"created_at"`
}

// tokenDoc is a token as the API shows it; Token only when issued.
type tokenDoc struct {
	ID        string  `json:"id"`
	Token     string  `json:"token"`
	CreatedAt string  `json:"created_at"`
	RevokedAt *string `json:"revoked_at"`
}

// quotaFlags are the --max-... flags, each set only when given.
type quotaFlags struct {
	workflows, concurrent, perHour, storageMB int64
}

func (q *quotaFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.Int64Var(&q.workflows, "max-workflows", 0, "workflows the tenant may have (0: unlimited)")
	fs.Int64Var(&q.concurrent, "max-concurrent-executions", 0, "executions it may run at once (0: unlimited)")
	fs.Int64Var(&q.perHour, "max-executions-per-hour", 0, "executions it may start per hour (0: unlimited)")
	fs.Int64Var(&q.storageMB, "max-storage-mb", 0, "storage it may use, in MB (0: unlimited)")
}

// over lays the flags that were given over q, and reports whether any
// was.
func (q *quotaFlags) over(cmd *cobra.Command, base quotaDoc) (quotaDoc, bool, error) {
	any := false
	for _, f := range []struct {
		name string
		v    int64
		dst  *int64
	}{
		{"max-workflows", q.workflows, &base.MaxWorkflows},
		{"max-concurrent-executions", q.concurrent, &base.MaxConcurrentExecutions},
		{"max-executions-per-hour", q.perHour, &base.MaxExecutionsPerHour},
		{"max-storage-mb", q.storageMB, &base.MaxStorageMB},
	} {
		if !cmd.Flags().Changed(f.name) {
			continue
		}
		if f.v < 0 {
			return base, false, usagef("--%s must be 0 (unlimited) or more, got %d", f.name, f.v)
		}
		*f.dst = f.v
		any = true
	}
	return base, any, nil
}

// limit shows a quota value: "-" for unlimited.
func limit(v int64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}

func tenantTable(w io.Writer, list ...tenantDoc) error {
	t := newTable(w, "TENANT", "NAME", "MAX WORKFLOWS", "MAX CONCURRENT", "MAX PER HOUR", "MAX STORAGE MB", "CREATED")
	for _, tn := range list {
		q := tn.Quota
		t.row(tn.ID, tn.Name, limit(q.MaxWorkflows), limit(q.MaxConcurrentExecutions), limit(q.MaxExecutionsPerHour), limit(q.MaxStorageMB), formatTime(parseOptTime(tn.CreatedAt)))
	}
	return t.flush()
}

// printToken shows a token that was just made, and that it will not be
// shown again.
func printToken(w io.Writer, what, token string) error {
	_, err := fmt.Fprintf(w, "%s\ntoken: %s\nThis token is shown only once: store it now. Send it as \"Authorization: Bearer <token>\", or NEBULA_TOKEN / --token for the CLI.\n", what, token)
	return err
}

func tenantCreateCmd(f *clientFlags) *cobra.Command {
	var name string
	var q quotaFlags
	cmd := &cobra.Command{
		Use:     "create ID",
		Short:   "Create a tenant and print its first token (shown only once)",
		Example: "  nebula tenant create acme --name 'Acme Corp' --max-workflows 100 --max-executions-per-hour 10000",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			quota, _, err := q.over(cmd, quotaDoc{})
			if err != nil {
				return err
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			body, _ := json.Marshal(map[string]any{"id": args[0], "name": name, "quota": quota})
			var tn tenantDoc
			raw, err := getDoc(cmd.Context(), c, http.MethodPost, "/v1/tenants", body, &tn)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			return printToken(cmd.OutOrStdout(), "tenant "+tn.ID+" created", tn.Token)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "display name (default: the id)")
	q.register(cmd)
	return cmd
}

func tenantListCmd(f *clientFlags) *cobra.Command {
	var lim int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants and their quotas",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLimit(lim); err != nil {
				return err
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			page, err := listAll(cmd.Context(), c, "/v1/tenants", url.Values{}, lim)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSONLine(cmd.OutOrStdout(), page)
			}
			list := make([]tenantDoc, len(page.Items))
			for i, item := range page.Items {
				if err := json.Unmarshal(item, &list[i]); err != nil {
					return fmt.Errorf("decoding a tenant: %w", err)
				}
			}
			return tenantTable(cmd.OutOrStdout(), list...)
		},
	}
	limitFlag(cmd, &lim)
	return cmd
}

func tenantGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a tenant and its quota",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var tn tenantDoc
			raw, err := getDoc(cmd.Context(), c, http.MethodGet, "/v1/tenants/"+pathID(args[0]), nil, &tn)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			return tenantTable(cmd.OutOrStdout(), tn)
		},
	}
}

// tenantQuotaCmd changes the limits given and keeps the others.
func tenantQuotaCmd(f *clientFlags) *cobra.Command {
	var q quotaFlags
	cmd := &cobra.Command{
		Use:     "quota ID --max-... N",
		Short:   "Change a tenant's quota (limits not given stay as they are; 0 is unlimited)",
		Example: "  nebula tenant quota acme --max-concurrent-executions 20 --max-storage-mb 0",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, given, err := q.over(cmd, quotaDoc{}); err != nil {
				return err
			} else if !given {
				return usagef("give at least one of --max-workflows, --max-concurrent-executions, --max-executions-per-hour, --max-storage-mb")
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			path := "/v1/tenants/" + pathID(args[0])
			var cur tenantDoc
			if _, err := getDoc(cmd.Context(), c, http.MethodGet, path, nil, &cur); err != nil {
				return err
			}
			quota, _, _ := q.over(cmd, cur.Quota)
			body, _ := json.Marshal(quota)
			var tn tenantDoc
			raw, err := getDoc(cmd.Context(), c, http.MethodPut, path+"/quota", body, &tn)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			return tenantTable(cmd.OutOrStdout(), tn)
		},
	}
	q.register(cmd)
	return cmd
}

func tokenCreateCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "create ID",
		Short: "Issue another token for a tenant (to rotate: create, move callers, revoke the old one)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var k tokenDoc
			raw, err := getDoc(cmd.Context(), c, http.MethodPost, "/v1/tenants/"+pathID(args[0])+"/tokens", []byte("{}"), &k)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			return printToken(cmd.OutOrStdout(), "token "+k.ID+" of tenant "+args[0]+" issued", k.Token)
		},
	}
}

func tokenListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list ID",
		Short: "List a tenant's tokens (ids and dates; tokens are never shown again)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var page struct {
				Items []tokenDoc `json:"items"`
			}
			raw, err := getDoc(cmd.Context(), c, http.MethodGet, "/v1/tenants/"+pathID(args[0])+"/tokens", nil, &page)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			t := newTable(cmd.OutOrStdout(), "TOKEN", "CREATED", "REVOKED")
			for _, k := range page.Items {
				t.row(k.ID, formatTime(parseTime(k.CreatedAt)), formatTime(parseOptTime(k.RevokedAt)))
			}
			return t.flush()
		},
	}
}

func tokenRevokeCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID TOKEN_ID",
		Short: "Revoke a tenant's token: its next request is refused",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/v1/tenants/"+pathID(args[0])+"/tokens/"+pathID(args[1]), nil); err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), json.RawMessage(`{"revoked":true}`))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s of tenant %s revoked\n", args[1], args[0])
			return err
		},
	}
}
