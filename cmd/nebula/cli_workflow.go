package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/nebula-engine/nebula/engine"
)

// workflowDoc is the part of a stored workflow that listings show.
type workflowDoc struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Version   int               `json:"version"`
	Nodes     []json.RawMessage `json:"nodes"`
	CreatedAt string            `json:"created_at"`
}

func newWorkflowCmd() *cobra.Command {
	var f clientFlags
	cmd := groupCmd("workflow", "Save, list, show and delete workflows")
	f.register(cmd)
	cmd.AddCommand(workflowApplyCmd(&f), workflowListCmd(&f), workflowGetCmd(&f), workflowDeleteCmd(&f))
	return cmd
}

func workflowApplyCmd(f *clientFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Save a workflow written in JSON or YAML; saving an id again makes a new version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if file == "" {
				return usagef("workflow apply needs -f FILE (- for stdin)")
			}
			doc, err := readDocument(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			// The server reads JSON only: a YAML file is parsed here, with
			// the parser the server uses, and sent as JSON. The id, if the
			// file has one, picks PUT over POST.
			def, err := engine.ParseDefinition(doc)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			body, err := json.Marshal(def)
			if err != nil {
				return err
			}
			method, path := http.MethodPost, "/v1/workflows"
			if def.ID != "" {
				method, path = http.MethodPut, "/v1/workflows/"+pathID(def.ID)
			}
			var wf workflowDoc
			raw, err := getDoc(cmd.Context(), c, method, path, body, &wf)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "workflow %s version %d\n", wf.ID, wf.Version)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the workflow definition, JSON or YAML (- reads stdin)")
	return cmd
}

// readDocument reads a file named on the command line, "-" being stdin.
// A file that cannot be read is a mistake in the command line.
func readDocument(name string, stdin io.Reader) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usagef("reading %s: %v", name, err)
	}
	return b, nil
}

func workflowListCmd(f *clientFlags) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflows (their latest versions)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if err := checkLimit(limit); err != nil {
				return err
			}
			page, err := listAll(cmd.Context(), c, "/v1/workflows", url.Values{}, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				return writeJSONLine(out, page)
			}
			t := newTable(out, "ID", "NAME", "VERSION", "NODES", "CREATED")
			for _, item := range page.Items {
				var wf workflowDoc
				if err := json.Unmarshal(item, &wf); err != nil {
					return fmt.Errorf("decoding a workflow of the list: %w", err)
				}
				t.row(wf.ID, wf.Name, strconv.Itoa(wf.Version), strconv.Itoa(len(wf.Nodes)), formatTime(parseTime(wf.CreatedAt)))
			}
			return t.flush()
		},
	}
	limitFlag(cmd, &limit)
	return cmd
}

func workflowGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a workflow's latest definition",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodGet, "/v1/workflows/"+pathID(args[0]), nil)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			// A definition is a document to read, not a row: indented.
			return printIndented(cmd.OutOrStdout(), raw)
		},
	}
}

func workflowDeleteCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a workflow",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodDelete, "/v1/workflows/"+pathID(args[0]), nil)
			if err != nil {
				return err
			}
			if f.output == "json" {
				// The answer has no body (204); print one if a server sends it.
				if len(raw) > 0 {
					return printRaw(cmd.OutOrStdout(), raw)
				}
				return nil
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "workflow %s deleted\n", args[0])
			return err
		},
	}
}
