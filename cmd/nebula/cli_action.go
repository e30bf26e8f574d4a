package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newActionCmd() *cobra.Command {
	var f clientFlags
	cmd := groupCmd("action", "Register community actions (WebAssembly modules) and list them")
	f.register(cmd)
	cmd.AddCommand(actionRegisterCmd(&f), actionListCmd(&f), actionGetCmd(&f))
	return cmd
}

// actionDoc is an action as the API shows it.
type actionDoc struct {
	ID           string   `json:"id"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities"`
	SHA256       string   `json:"sha256"`
	Size         int64    `json:"size"`
	CreatedAt    string   `json:"created_at"`
}

func actionRegisterCmd(f *clientFlags) *cobra.Command {
	var id, version string
	var caps []string
	cmd := &cobra.Command{
		Use:   "register MODULE.wasm --id community.NAME --version X.Y.Z",
		Short: "Register a WebAssembly module as a community action",
		Example: "  GOOS=wasip1 GOARCH=wasm go build -o wordcount.wasm ./examples/actions/wordcount\n" +
			"  nebula action register wordcount.wasm --id community.wordcount --version 1.0.0\n" +
			"  nebula action register fetch.wasm --id community.fetch --version 1.0.0 --capability net:api.github.com",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" || version == "" {
				return usagef("--id and --version are required")
			}
			module, err := os.ReadFile(args[0])
			if err != nil {
				return usagef("reading the module: %v", err)
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			// Multipart carries the module as bytes: no base64 growth
			// against the body limit.
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			manifest, _ := json.Marshal(map[string]any{"id": id, "version": version, "capabilities": caps})
			if err := mw.WriteField("manifest", string(manifest)); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("module", args[0])
			if err != nil {
				return err
			}
			part.Write(module)
			if err := mw.Close(); err != nil {
				return err
			}
			raw, err := c.callWith(cmd.Context(), http.MethodPost, "/v1/actions", mw.FormDataContentType(), body.Bytes())
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			var a actionDoc
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("decoding the answer: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "action %s@%s registered (sha256 %s, %d bytes)\n", a.ID, a.Version, a.SHA256, a.Size)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&id, "id", "", "community.NAME or hub.NAME")
	fs.StringVar(&version, "version", "", "MAJOR.MINOR.PATCH")
	fs.StringArrayVar(&caps, "capability", nil, "a capability the module needs, e.g. net:api.github.com (repeatable)")
	return cmd
}

func actionListCmd(f *clientFlags) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered actions, every version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLimit(limit); err != nil {
				return err
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			page, err := listAll(cmd.Context(), c, "/v1/actions", url.Values{}, limit)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSONLine(cmd.OutOrStdout(), page)
			}
			t := newTable(cmd.OutOrStdout(), "ACTION", "VERSION", "CAPABILITIES", "SIZE", "REGISTERED")
			for _, item := range page.Items {
				var a actionDoc
				if err := json.Unmarshal(item, &a); err != nil {
					return fmt.Errorf("decoding an action: %w", err)
				}
				t.row(a.ID, a.Version, strings.Join(a.Capabilities, ","), fmt.Sprint(a.Size), formatTime(parseTime(a.CreatedAt)))
			}
			return t.flush()
		},
	}
	limitFlag(cmd, &limit)
	return cmd
}

func actionGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID[@VERSION]",
		Short: "Show an action (its latest version unless one is given)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var a actionDoc
			raw, err := getDoc(cmd.Context(), c, http.MethodGet, "/v1/actions/"+url.PathEscape(args[0]), nil, &a)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			t := newTable(cmd.OutOrStdout(), "ACTION", "VERSION", "CAPABILITIES", "SHA256", "SIZE", "REGISTERED")
			t.row(a.ID, a.Version, strings.Join(a.Capabilities, ","), a.SHA256, fmt.Sprint(a.Size), formatTime(parseTime(a.CreatedAt)))
			return t.flush()
		},
	}
}
