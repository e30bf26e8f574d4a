package main

// What the client commands (workflow, run, execution) share: the JSON
// shapes they read, paging, a table writer, and the formatting of times,
// durations and JSON values for people.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// executionDoc is an execution as the API answers it (CONTRACT §5).
type executionDoc struct {
	ID              string             `json:"id"`
	WorkflowID      string             `json:"workflow_id"`
	WorkflowVersion int                `json:"workflow_version"`
	Status          string             `json:"status"`
	Input           json.RawMessage    `json:"input"`
	Output          json.RawMessage    `json:"output"`
	Error           *string            `json:"error"`
	Nodes           map[string]nodeDoc `json:"nodes"`
	CreatedAt       string             `json:"created_at"`
	FinishedAt      *string            `json:"finished_at"`
}

// nodeDoc is one node of an executionDoc.
type nodeDoc struct {
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	Output     json.RawMessage `json:"output"`
	Error      *string         `json:"error"`
	StartedAt  *string         `json:"started_at"`
	FinishedAt *string         `json:"finished_at"`
}

// duration is how long the execution took, or "" while it runs.
func (e *executionDoc) duration() string {
	return span(parseTime(e.CreatedAt), parseOptTime(e.FinishedAt))
}

// journalDoc is a journal entry: the common fields and those of the types
// the commands describe; the others are left to --output json.
type journalDoc struct {
	Seq     int64           `json:"seq"`
	Type    string          `json:"type"`
	At      string          `json:"at"`
	Node    string          `json:"node"`
	Attempt int             `json:"attempt"`
	Input   json.RawMessage `json:"input"`
	Inputs  json.RawMessage `json:"inputs"`
	Output  json.RawMessage `json:"output"`
	Error   string          `json:"error"`
	Reason  string          `json:"reason"`
	RetryAt string          `json:"retry_at"`
}

// terminalEntry maps the journal entry that ends an execution to the
// status it ends in.
var terminalEntry = map[string]string{
	"execution_succeeded": "succeeded",
	"execution_failed":    "failed",
	"execution_cancelled": "cancelled",
	"execution_timed_out": "timed_out",
}

// getDoc calls the API and decodes its answer into v, returning the raw
// answer too for --output json.
func getDoc(ctx context.Context, c *apiClient, method, path string, body []byte, v any) (json.RawMessage, error) {
	raw, err := c.call(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return raw, nil
}

// listPage is the shape of every list answer.
type listPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

// maxPage is the largest page the API serves.
const maxPage = 1000

// listAll reads a list following next_cursor until it has limit items (0:
// all of them). Each page asks for no more than is still wanted, so the
// cursor returned (that of the last page, "" at the end of the list) is
// exactly where a later listing would go on.
func listAll(ctx context.Context, c *apiClient, path string, q url.Values, limit int) (listPage, error) {
	var all listPage
	all.Items = []json.RawMessage{}
	for {
		size := maxPage
		if limit > 0 {
			size = min(size, limit-len(all.Items))
		}
		q.Set("limit", strconv.Itoa(size))
		var page listPage
		if _, err := getDoc(ctx, c, http.MethodGet, path+"?"+q.Encode(), nil, &page); err != nil {
			return listPage{}, err
		}
		all.Items = append(all.Items, page.Items...)
		all.NextCursor = page.NextCursor
		if page.NextCursor == "" || len(page.Items) == 0 || (limit > 0 && len(all.Items) >= limit) {
			return all, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

// limitFlag registers --limit on a list command.
func limitFlag(cmd *cobra.Command, limit *int) {
	cmd.Flags().IntVar(limit, "limit", 0, "list at most this many (default: all, read page by page)")
}

func checkLimit(limit int) error {
	if limit < 0 {
		return usagef("--limit must be 0 (all) or more, got %d", limit)
	}
	return nil
}

// writeJSONLine writes v as one line of JSON. CEL expressions in
// definitions read better unescaped ("a > 1", not "a \u003e 1"), as the
// server sends them.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printRaw writes a raw answer as it came, ending with one newline.
func printRaw(w io.Writer, raw json.RawMessage) error {
	_, err := fmt.Fprintf(w, "%s\n", bytes.TrimSpace(raw))
	return err
}

// printIndented writes a JSON document indented, for reading.
func printIndented(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(w)
	return err
}

// compactJSON writes a JSON value on one line; "" for an absent value.
func compactJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if len(raw) == 0 || json.Compact(&buf, raw) != nil {
		return strings.TrimSpace(string(raw))
	}
	return buf.String()
}

// clipText puts s on one line and shortens it to max runes, so that a long
// value or a multi-line error keeps a table readable.
func clipText(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// table writes aligned columns under a header.
type table struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 4, 2, ' ', 0)
	t.row(header...)
	return t
}

// row writes one line; tabs and newlines inside a cell would break the
// columns, so cells are put on one line first.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if strings.ContainsAny(c, "\t\r\n") {
			cells[i] = strings.Join(strings.Fields(c), " ")
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// flush writes the table out. Empty last cells leave padding behind them,
// which is trimmed.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range strings.Lines(t.buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := out.WriteTo(t.w)
	return err
}

// parseTime reads a timestamp of the API; a missing or bad one is zero,
// shown as unknown rather than failing a whole listing.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func parseOptTime(s *string) time.Time {
	if s == nil {
		return time.Time{}
	}
	return parseTime(*s)
}

// formatTime shows a moment in local time to the second, as lists span
// days; "" when unknown.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// formatStamp is formatTime to the millisecond, for journal entries that
// follow each other closely.
func formatStamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

// formatClock is the time of day to the millisecond, for a live view.
func formatClock(t time.Time) string {
	if t.IsZero() {
		return "??:??:??.???"
	}
	return t.Local().Format("15:04:05.000")
}

// span is the time from start to end, or "" when either is unknown.
func span(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return ""
	}
	return formatDuration(end.Sub(start))
}

// formatDuration rounds d to what a reader cares about at its scale:
// "850µs", "3ms", "1.25s", "2m3s", "1h2m".
func formatDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// words turns an API status or entry type into words: "timed_out" is
// "timed out".
func words(s string) string { return strings.ReplaceAll(s, "_", " ") }

// sortedNodes orders an execution's nodes as they ran: by start, then by
// id; nodes that never started come last.
func sortedNodes(nodes map[string]nodeDoc) []string {
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := parseOptTime(nodes[ids[i]].StartedAt), parseOptTime(nodes[ids[j]].StartedAt)
		if a.IsZero() != b.IsZero() {
			return b.IsZero()
		}
		if !a.Equal(b) {
			return a.Before(b)
		}
		return ids[i] < ids[j]
	})
	return ids
}

// pathID escapes an id for a URL path.
func pathID(id string) string { return url.PathEscape(id) }
