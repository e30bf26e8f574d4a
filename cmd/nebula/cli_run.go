package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nebula-engine/nebula/engine"
)

// longPoll is how long one request waits on the server for an execution
// to end: long enough to be cheap, short enough for proxies and for the
// client's own timeout.
const longPoll = 30 * time.Second

// journalPoll is how often --follow reads the journal of a server that has
// no event stream.
const journalPoll = 200 * time.Millisecond

func newRunCmd() *cobra.Command {
	var (
		f            clientFlags
		input, key   string
		wait, follow bool
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run WORKFLOW_ID",
		Short: "Start an execution of a workflow",
		Long: `Start an execution of a workflow and print its id.

With --wait or --follow the command ends with the execution: its exit code is
0 only if the execution succeeded, 1 if it failed, was cancelled, timed out, or
was still running when --timeout passed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			body, err := startBody(input, key, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if timeout < 0 {
				return usagef("--timeout must be 0 (no limit) or more, got %s", timeout)
			}
			var deadline time.Time
			if timeout > 0 {
				deadline = time.Now().Add(timeout)
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			path := "/v1/workflows/" + pathID(args[0]) + "/executions"
			if wait && !follow {
				path += "?wait=" + pollWait(deadline)
			}
			var e executionDoc
			raw, err := getDoc(ctx, c, http.MethodPost, path, body, &e)
			if err != nil {
				return err
			}
			switch {
			case follow:
				return followExecution(ctx, c, &e, out, f.output == "json", timeout)
			case wait:
				if raw, err = awaitExecution(ctx, c, raw, &e, deadline); err != nil {
					return err
				}
				if f.output == "json" {
					err = printRaw(out, raw)
				} else {
					err = printExecution(out, &e)
				}
				if err != nil {
					return err
				}
				return outcome(&e, timeout)
			case f.output == "json":
				return printRaw(out, raw)
			}
			_, err = fmt.Fprintln(out, e.ID)
			return err
		},
	}
	f.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&input, "input", "", "the execution's input: a JSON object, or @FILE to read it from a file (@- for stdin)")
	fs.StringVar(&key, "idempotency-key", "", "starting again with the same key returns the first execution")
	fs.BoolVar(&wait, "wait", false, "wait for the execution to end, then print it")
	fs.BoolVar(&follow, "follow", false, "print the execution's progress as it happens, until it ends")
	fs.DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait or --follow, how long to wait (0: no limit)")
	return cmd
}

// startBody builds the body of a start request. Bad input is a mistake in
// the command line, found before anything is sent.
func startBody(input, key string, stdin io.Reader) ([]byte, error) {
	var req struct {
		Input          json.RawMessage `json:"input,omitempty"`
		IdempotencyKey string          `json:"idempotency_key,omitempty"`
	}
	req.IdempotencyKey = key
	if input != "" {
		doc := []byte(input)
		if name, ok := strings.CutPrefix(input, "@"); ok {
			b, err := readDocument(name, stdin)
			if err != nil {
				return nil, usagef("--input: %v", err)
			}
			doc = b
		}
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, usagef("--input is not valid JSON: %v", err)
		}
		if _, ok := v.(map[string]any); !ok {
			return nil, usagef("--input must be a JSON object, got %s", clipText(string(doc), 40))
		}
		req.Input = bytes.TrimSpace(doc)
	}
	return json.Marshal(req)
}

// pollWait is the ?wait= of the next request: longPoll, or less when the
// deadline is nearer.
func pollWait(deadline time.Time) string {
	w := longPoll
	if !deadline.IsZero() {
		w = min(w, time.Until(deadline))
	}
	return max(w, 0).Round(time.Millisecond).String()
}

// awaitExecution asks for the execution until it is terminal or the
// deadline has passed, each request waiting on the server. It updates e
// and returns the last raw answer.
func awaitExecution(ctx context.Context, c *apiClient, raw json.RawMessage, e *executionDoc, deadline time.Time) (json.RawMessage, error) {
	for !engine.ExecutionStatus(e.Status).Terminal() {
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			break
		}
		var next executionDoc
		var err error
		if raw, err = getDoc(ctx, c, http.MethodGet, "/v1/executions/"+pathID(e.ID)+"?wait="+pollWait(deadline), nil, &next); err != nil {
			return nil, err
		}
		*e = next
	}
	return raw, nil
}

// outcome is the result of a command that waited for an execution: nil
// only when it succeeded.
func outcome(e *executionDoc, timeout time.Duration) error {
	switch s := engine.ExecutionStatus(e.Status); {
	case s == engine.StatusSucceeded:
		return nil
	case s.Terminal():
		return fmt.Errorf("execution %s %s", e.ID, words(e.Status))
	}
	return fmt.Errorf("execution %s is still %s after %s", e.ID, e.Status, timeout)
}

// followExecution prints the journal of e as it grows, until the execution
// ends or timeout (0: none) passes, and returns its outcome.
func followExecution(ctx context.Context, c *apiClient, e *executionDoc, out io.Writer, asJSON bool, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fl := &follower{c: c, id: e.ID, out: out, asJSON: asJSON, starts: map[string]time.Time{}}
	for id := range e.Nodes {
		fl.width = max(fl.width, len(id))
	}
	if err := fl.run(ctx); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return outcome(e, timeout)
		}
		return err
	}
	e.Status = fl.status
	return outcome(e, timeout)
}

// follower prints an execution's journal entries, each once, as they come.
type follower struct {
	c      *apiClient
	id     string
	out    io.Writer
	asJSON bool
	width  int                  // of the node column
	seq    int64                // of the last entry printed
	begin  time.Time            // of the first entry, for the execution's duration
	starts map[string]time.Time // of attempts, by node/attempt, for their durations
	status string               // the final status, once an entry said it
}

// run reads the execution's event stream, resuming it after the last entry
// when it is cut while entries still come. A server without the stream (an
// older one answers 404), or a stream that fails without progress, leaves
// the journal, read over and over, which tells the same.
func (fl *follower) run(ctx context.Context) error {
	for {
		before := fl.seq
		err := fl.stream(ctx)
		switch {
		case fl.status != "":
			return nil
		case ctx.Err() != nil:
			return err
		case fl.seq > before:
			continue
		}
		return fl.poll(ctx)
	}
}

// stream reads the Server-Sent Events of the execution from after the last
// entry printed, until the execution ends or the stream does.
func (fl *follower) stream(ctx context.Context) error {
	resp, err := fl.c.openEvents(ctx, "/v1/executions/"+pathID(fl.id)+"/events", fl.seq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			// Only data matters: it holds the entry, with its type and
			// seq. Comments (keepalives) have an empty field name.
			if field, value, _ := strings.Cut(line, ":"); field == "data" {
				data = append(data, strings.TrimPrefix(value, " "))
			}
			continue
		}
		if len(data) > 0 {
			if err := fl.entry([]byte(strings.Join(data, "\n"))); err != nil {
				return err
			}
			data = data[:0]
		}
		if fl.status != "" {
			return nil
		}
	}
}

// openEvents opens an event stream, resuming after the event lastID
// (0: from the start).
func (c *apiClient) openEvents(ctx context.Context, path string, lastID int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// A stream lasts as long as its execution: the client's overall timeout
	// would cut it, so only ctx bounds it.
	hc := &http.Client{Transport: c.hc.Transport, CheckRedirect: c.hc.CheckRedirect}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, newAPIError(resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("%s answered %q, not an event stream", path, ct)
	}
	return resp, nil
}

// poll reads the journal every journalPoll and prints what is new.
func (fl *follower) poll(ctx context.Context) error {
	tick := time.NewTicker(journalPoll)
	defer tick.Stop()
	for {
		var page listPage
		if _, err := getDoc(ctx, fl.c, http.MethodGet, "/v1/executions/"+pathID(fl.id)+"/journal", nil, &page); err != nil {
			return err
		}
		for _, item := range page.Items {
			if err := fl.entry(item); err != nil {
				return err
			}
		}
		if fl.status != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// entry prints one journal entry unless it was printed already (a resumed
// stream, a journal read again).
func (fl *follower) entry(raw []byte) error {
	var e journalDoc
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("decoding a journal entry: %w", err)
	}
	if e.Seq <= fl.seq {
		return nil
	}
	fl.seq = e.Seq
	if s, ok := terminalEntry[e.Type]; ok {
		fl.status = s
	}
	var err error
	if fl.asJSON {
		_, err = fmt.Fprintln(fl.out, compactJSON(raw))
	} else {
		_, err = fmt.Fprintln(fl.out, fl.line(e))
	}
	return err
}

// line describes an entry for a person watching: the time, then the node
// and what happened to it, or what happened to the execution.
func (fl *follower) line(e journalDoc) string {
	at := parseTime(e.At)
	if fl.begin.IsZero() {
		fl.begin = at
	}
	clock := formatClock(at)
	attempt := e.Node + "/" + strconv.Itoa(e.Attempt)
	var text string
	switch e.Type {
	case "node_attempt_started":
		fl.starts[attempt] = at
		text = fmt.Sprintf("attempt %d started", e.Attempt)
	case "node_attempt_finished":
		text = attemptResult(e, span(fl.starts[attempt], at))
	case "execution_succeeded":
		text = took("execution succeeded", span(fl.begin, at)) + ", output " + clipText(compactJSON(e.Output), 100)
	case "execution_failed":
		text = took("execution failed", span(fl.begin, at)) + ": " + clipText(e.Error, 200)
	case "execution_cancelled":
		text = took("execution cancelled", span(fl.begin, at))
		if e.Reason != "" {
			text += ": " + clipText(e.Reason, 200)
		}
	case "execution_timed_out":
		text = took("execution timed out", span(fl.begin, at))
	default:
		// execution_started, execution_queued, cancellation_requested and
		// any type a newer server adds read well as they are.
		text = words(e.Type)
	}
	if e.Node == "" {
		return clock + "  " + text
	}
	return fmt.Sprintf("%s  %-*s  %s", clock, fl.width, e.Node, text)
}

// attemptResult describes a finished attempt that took d.
func attemptResult(e journalDoc, d string) string {
	if e.Error == "" {
		if e.Attempt > 1 {
			return took(fmt.Sprintf("succeeded on attempt %d", e.Attempt), d)
		}
		return took("succeeded", d)
	}
	text := took(fmt.Sprintf("attempt %d failed", e.Attempt), d) + ": " + clipText(e.Error, 200)
	if retry := parseTime(e.RetryAt); !retry.IsZero() {
		text += "; retry in " + formatDuration(retry.Sub(parseTime(e.At)))
	}
	return text
}

// took appends a duration, when known, to a description.
func took(text, d string) string {
	if d == "" {
		return text
	}
	return text + " (" + d + ")"
}
