package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nebula-engine/nebula/engine"
)

// cancelWait bounds how long `execution cancel` waits for the cancellation
// to be applied, so that it can print the final status.
const cancelWait = 10 * time.Second

func newExecutionCmd() *cobra.Command {
	var f clientFlags
	cmd := groupCmd("execution", "List, inspect and cancel executions")
	f.register(cmd)
	cmd.AddCommand(executionListCmd(&f), executionGetCmd(&f), executionJournalCmd(&f), executionCancelCmd(&f))
	return cmd
}

// executionStatuses are the values of --status.
var executionStatuses = []string{
	string(engine.StatusPending), string(engine.StatusRunning), string(engine.StatusSucceeded),
	string(engine.StatusFailed), string(engine.StatusCancelled), string(engine.StatusTimedOut),
}

func executionListCmd(f *clientFlags) *cobra.Command {
	var (
		workflow, status string
		limit            int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List executions, oldest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if err := checkLimit(limit); err != nil {
				return err
			}
			if status != "" && !slices.Contains(executionStatuses, status) {
				return usagef("--status must be one of %s, got %q", strings.Join(executionStatuses, ", "), status)
			}
			q := url.Values{}
			if workflow != "" {
				q.Set("workflow", workflow)
			}
			if status != "" {
				q.Set("status", status)
			}
			page, err := listAll(cmd.Context(), c, "/v1/executions", q, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				return writeJSONLine(out, page)
			}
			t := newTable(out, "ID", "WORKFLOW", "VERSION", "STATUS", "CREATED", "DURATION")
			for _, item := range page.Items {
				var e executionDoc
				if err := json.Unmarshal(item, &e); err != nil {
					return fmt.Errorf("decoding an execution of the list: %w", err)
				}
				t.row(e.ID, e.WorkflowID, strconv.Itoa(e.WorkflowVersion), e.Status, formatTime(parseTime(e.CreatedAt)), e.duration())
			}
			return t.flush()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&workflow, "workflow", "", "only executions of this workflow")
	fs.StringVar(&status, "status", "", "only executions with this status ("+strings.Join(executionStatuses, ", ")+")")
	limitFlag(cmd, &limit)
	return cmd
}

func executionGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show an execution: status, output, error and its nodes",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var e executionDoc
			raw, err := getDoc(cmd.Context(), c, http.MethodGet, "/v1/executions/"+pathID(args[0]), nil, &e)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			return printExecution(cmd.OutOrStdout(), &e)
		},
	}
}

// inlineOutput is the longest output shown on the line of its label;
// a longer one is shown indented below it.
const inlineOutput = 100

// printExecution writes a summary of an execution, then a table of its
// nodes in the order they ran.
func printExecution(w io.Writer, e *executionDoc) error {
	var b bytes.Buffer
	field := func(name, value string) { fmt.Fprintf(&b, "%-11s%s\n", name+":", value) }
	field("execution", e.ID)
	field("workflow", fmt.Sprintf("%s (version %d)", e.WorkflowID, e.WorkflowVersion))
	field("status", e.Status)
	field("created", formatStamp(parseTime(e.CreatedAt)))
	if finished := parseOptTime(e.FinishedAt); !finished.IsZero() {
		field("finished", formatStamp(finished))
		field("duration", e.duration())
	}
	field("input", clipText(compactJSON(e.Input), inlineOutput))
	if out := compactJSON(e.Output); out != "" && out != "null" {
		if len(out) <= inlineOutput {
			field("output", out)
		} else {
			b.WriteString("output:\n  ")
			if err := json.Indent(&b, e.Output, "  ", "  "); err != nil {
				return err
			}
			b.WriteByte('\n')
		}
	}
	if e.Error != nil {
		field("error", strings.Join(strings.Fields(*e.Error), " "))
	}
	if _, err := b.WriteTo(w); err != nil {
		return err
	}
	if len(e.Nodes) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "NODE", "STATUS", "ATTEMPTS", "DURATION", "ERROR")
	for _, id := range sortedNodes(e.Nodes) {
		n := e.Nodes[id]
		var msg string
		if n.Error != nil {
			msg = clipText(*n.Error, inlineOutput)
		}
		t.row(id, n.Status, strconv.Itoa(n.Attempts), span(parseOptTime(n.StartedAt), parseOptTime(n.FinishedAt)), msg)
	}
	return t.flush()
}

func executionJournalCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "journal ID",
		Short: "Show an execution's journal: what happened, in order",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var page listPage
			raw, err := getDoc(cmd.Context(), c, http.MethodGet, "/v1/executions/"+pathID(args[0])+"/journal", nil, &page)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			t := newTable(cmd.OutOrStdout(), "SEQ", "AT", "TYPE", "NODE", "ATTEMPT", "DETAIL")
			for _, item := range page.Items {
				var e journalDoc
				if err := json.Unmarshal(item, &e); err != nil {
					return fmt.Errorf("decoding a journal entry: %w", err)
				}
				var attempt string
				if e.Node != "" {
					attempt = strconv.Itoa(e.Attempt)
				}
				t.row(strconv.FormatInt(e.Seq, 10), formatStamp(parseTime(e.At)), e.Type, e.Node, attempt, entryDetail(e))
			}
			return t.flush()
		},
	}
}

// entryDetail is the gist of a journal entry's type-specific fields.
func entryDetail(e journalDoc) string {
	var d string
	switch e.Type {
	case "execution_started", "execution_queued":
		if e.Input != nil {
			d = "input " + compactJSON(e.Input)
		}
	case "node_attempt_started":
		if in := compactJSON(e.Inputs); in != "" && in != "null" {
			d = "inputs " + in
		}
	case "node_attempt_finished", "execution_succeeded":
		if e.Error != "" {
			d = "error: " + e.Error
			if retry := parseTime(e.RetryAt); !retry.IsZero() {
				d += "; retry at " + formatClock(retry)
			}
		} else {
			d = "output " + compactJSON(e.Output)
		}
	case "execution_failed", "execution_timed_out":
		d = "error: " + e.Error
	case "execution_cancelled":
		d = e.Reason
	}
	return clipText(d, inlineOutput)
}

func executionCancelCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel an execution; a finished one is left as it is",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var e executionDoc
			raw, err := getDoc(ctx, c, http.MethodPost, "/v1/executions/"+pathID(args[0])+"/cancel", nil, &e)
			if err != nil {
				return err
			}
			// The answer may come from a node that has not applied the
			// cancellation yet; the status printed should be the one it
			// leads to.
			if raw, err = awaitExecution(ctx, c, raw, &e, time.Now().Add(cancelWait)); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case f.output == "json":
				return printRaw(out, raw)
			case e.Status == string(engine.StatusCancelled):
				_, err = fmt.Fprintf(out, "execution %s cancelled\n", e.ID)
			case engine.ExecutionStatus(e.Status).Terminal():
				_, err = fmt.Fprintf(out, "execution %s ended before it was cancelled: %s\n", e.ID, words(e.Status))
			default:
				_, err = fmt.Fprintf(out, "execution %s: cancellation requested, status %s\n", e.ID, e.Status)
			}
			return err
		},
	}
}
