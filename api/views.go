package api

import (
	"encoding/json"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

// The JSON shapes of CONTRACT §5. They are built from storage records here
// so that storage never needs to know the wire format.

type nodeView struct {
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	Output     json.RawMessage `json:"output"`
	Error      *string         `json:"error"`
	StartedAt  *string         `json:"started_at"`
	FinishedAt *string         `json:"finished_at"`
}

type executionView struct {
	ID              string               `json:"id"`
	WorkflowID      string               `json:"workflow_id"`
	WorkflowVersion int                  `json:"workflow_version"`
	Status          string               `json:"status"`
	Input           json.RawMessage      `json:"input"`
	Output          json.RawMessage      `json:"output"`
	Error           *string              `json:"error"`
	IdempotencyKey  *string              `json:"idempotency_key"`
	Nodes           map[string]*nodeView `json:"nodes,omitempty"`
	CreatedAt       string               `json:"created_at"`
	FinishedAt      *string              `json:"finished_at"`
}

func viewExecution(e *storage.Execution) *executionView {
	v := &executionView{
		ID:              e.ID,
		WorkflowID:      e.WorkflowID,
		WorkflowVersion: e.WorkflowVersion,
		Status:          e.Status,
		Input:           rawOrNull(e.Input),
		Output:          rawOrNull(e.Output),
		Error:           optString(e.Error),
		IdempotencyKey:  optString(e.IdempotencyKey),
		CreatedAt:       stamp(e.CreatedAt),
		FinishedAt:      optTime(e.FinishedAt),
	}
	if e.Nodes != nil {
		v.Nodes = make(map[string]*nodeView, len(e.Nodes))
		for id, n := range e.Nodes {
			v.Nodes[id] = &nodeView{
				Status:     n.Status,
				Attempts:   n.Attempts,
				Output:     rawOrNull(n.Output),
				Error:      optString(n.Error),
				StartedAt:  optTime(n.StartedAt),
				FinishedAt: optTime(n.FinishedAt),
			}
		}
	}
	return v
}

// viewEntry flattens a journal entry: the common fields, then the
// type-specific ones from its data.
func viewEntry(e storage.JournalEntry) map[string]any {
	m := make(map[string]any, 8)
	if len(e.Data) > 0 {
		var data map[string]json.RawMessage
		if json.Unmarshal(e.Data, &data) == nil {
			for k, v := range data {
				m[k] = v
			}
		}
	}
	m["seq"] = e.Seq
	m["type"] = e.Type
	m["at"] = stamp(e.At)
	if e.Node != "" {
		m["node"] = e.Node
		m["attempt"] = e.Attempt
	}
	if e.IdempotencyKey != "" {
		m["idempotency_key"] = e.IdempotencyKey
	}
	return m
}

// viewWorkflow is the stored definition with its version.
func viewWorkflow(w *storage.Workflow) map[string]any {
	m := map[string]any{}
	var def map[string]json.RawMessage
	if json.Unmarshal(w.Definition, &def) == nil {
		for k, v := range def {
			m[k] = v
		}
	}
	m["id"] = w.ID
	m["version"] = w.Version
	m["created_at"] = stamp(w.CreatedAt)
	return m
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := stamp(t)
	return &s
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func rawOrNull(r json.RawMessage) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	return r
}
