package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// Duration is a time.Duration written in definitions as a Go duration
// string such as "200ms" or "1m30s".
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string. Numbers are refused, since a bare
// number has no unit; negative durations are refused since no duration in
// a definition can be negative.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"1m30s\", got %s", data)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// Definition is a workflow as users write it (CONTRACT §3).
type Definition struct {
	ID          string       `json:"id"`
	Name        string       `json:"name,omitempty"`
	Nodes       []Node       `json:"nodes"`
	Connections []Connection `json:"connections,omitempty"`
	Triggers    []Trigger    `json:"triggers,omitempty"`
	Timeout     Duration     `json:"timeout,omitempty"`
	// Output is an optional CEL expression giving the execution's output.
	Output string `json:"output,omitempty"`
}

// Node is one step of a workflow: an action and its parameters.
type Node struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	// Params is any JSON; strings in it may hold {{ expressions }}.
	Params json.RawMessage `json:"params,omitempty"`
	Retry  *RetryPolicy    `json:"retry,omitempty"`
	// Timeout bounds one attempt.
	Timeout Duration `json:"timeout,omitempty"`
	// OnError is "fail" (also the meaning of "") or "continue".
	OnError string `json:"on_error,omitempty"`
}

// RetryPolicy says how a failed attempt is retried, with exponential
// backoff between attempts.
type RetryPolicy struct {
	MaxAttempts int      `json:"max_attempts,omitempty"`
	Backoff     Duration `json:"backoff,omitempty"`
	MaxBackoff  Duration `json:"max_backoff,omitempty"`
}

// Connection is an edge of the workflow graph. When, a CEL expression that
// must yield a bool, guards it; an empty When always fires.
type Connection struct {
	From string `json:"from"`
	To   string `json:"to"`
	When string `json:"when,omitempty"`
}

// Trigger starts executions: "webhook" with a Path, or "cron" with a
// Schedule.
type Trigger struct {
	Type     string `json:"type"`
	Path     string `json:"path,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	// Wait bounds how long a webhook caller is held for the result before
	// the answer is 202 with the execution id; "0s" answers at once. Unset,
	// it is the workflow's timeout, at most MaxWebhookWait.
	Wait *Duration `json:"wait,omitempty"`
}

// MaxWebhookWait is the longest a webhook caller is held for a result.
const MaxWebhookWait = 30 * time.Second

// ParseDefinition decodes a definition written in JSON (a document whose
// first non-space byte is '{') or in YAML. Unknown fields and trailing data
// are refused. Node params are stored in a canonical form (compact JSON,
// keys sorted) so that the same definition written in JSON or in YAML
// decodes to equal values. Errors wrap ErrMalformed.
func ParseDefinition(data []byte) (*Definition, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrMalformed)
	}
	isJSON := trimmed[0] == '{'
	doc := data // not trimmed, so that positions count every line
	if !isJSON {
		v, err := yamlToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if _, ok := v.(map[string]any); !ok {
			return nil, fmt.Errorf("%w: the document is not a mapping", ErrMalformed)
		}
		if doc, err = marshalJSON(v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}

	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, decodeError(doc, isJSON, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		for end < int64(len(doc)) && strings.IndexByte(" \t\r\n", doc[end]) >= 0 {
			end++
		}
		return nil, fmt.Errorf("%w: unexpected data after the definition%s", ErrMalformed, position(doc, isJSON, end))
	}
	for i := range d.Nodes {
		p, err := canonicalJSON(d.Nodes[i].Params)
		if err != nil {
			// The decoder has checked the syntax already.
			return nil, fmt.Errorf("%w: node %q params: %v", ErrMalformed, d.Nodes[i].ID, err)
		}
		d.Nodes[i].Params = p
	}
	// An empty list and an absent one mean the same; keep one form so a
	// definition survives a round trip through its JSON unchanged.
	if len(d.Connections) == 0 {
		d.Connections = nil
	}
	if len(d.Triggers) == 0 {
		d.Triggers = nil
	}
	return &d, nil
}

// decodeError turns an error of encoding/json into one wrapping
// ErrMalformed that says where and what.
func decodeError(doc []byte, isJSON bool, err error) error {
	var (
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("%w: %v%s", ErrMalformed, syntax, position(doc, isJSON, syntax.Offset-1))
	case errors.As(err, &typeError):
		field := typeError.Field
		if field == "" {
			field = "definition"
		}
		return fmt.Errorf("%w: %s: got %s, want %s%s", ErrMalformed, field, typeError.Value, jsonKind(typeError.Type), position(doc, isJSON, typeError.Offset-1))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: unexpected end of document", ErrMalformed)
	}
	// Unknown fields and errors of UnmarshalJSON methods carry no position.
	msg, _ := strings.CutPrefix(err.Error(), "json: ")
	return fmt.Errorf("%w: %s", ErrMalformed, msg)
}

// jsonKind names the JSON kind that decodes into a field of type t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Slice:
		return "array"
	}
	return "object"
}

// position formats the byte at offset in a JSON document as " (line L,
// column C)". Offsets in YAML documents refer to the JSON they were
// converted to, which the user never saw, so they are left out.
func position(doc []byte, isJSON bool, offset int64) string {
	if !isJSON || offset < 0 || offset >= int64(len(doc)) {
		return ""
	}
	line, col := 1, 1
	for _, b := range doc[:offset] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf(" (line %d, column %d)", line, col)
}

// canonicalJSON rewrites a JSON value compactly with object keys sorted
// and numbers kept as written. null and empty values become nil.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	return marshalJSON(v)
}

// marshalJSON encodes v compactly without escaping <, > and &, which
// encoding/json escapes by default for the sake of HTML pages.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
