package inprocess

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nebula-engine/nebula/sandbox"
)

func TestRunner(t *testing.T) {
	fetch := func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
		var p struct{ Host string }
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		if err := sandbox.Check(ctx, sandbox.Capability("net:"+p.Host)); err != nil {
			return nil, err
		}
		return json.RawMessage(`{"ok":true}`), nil
	}
	r := New(Config{
		Actions: map[string]Action{
			"builtin.fetch": {Run: fetch, Capabilities: []sandbox.Capability{"net:*"}},
			"builtin.panic": {Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { panic("boom") }},
			"builtin.junk":  {Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { return json.RawMessage("{"), nil }},
			"builtin.big": {Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(`"` + strings.Repeat("x", 100) + `"`), nil
			}},
			"builtin.empty": {Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, nil }},
			"other.fetch":   {Run: fetch, Capabilities: []sandbox.Capability{"net:*"}},
		},
		Policy: sandbox.Policy{
			Trusted: sandbox.Class{Name: "trusted", Patterns: []string{"builtin.*"}, Isolation: sandbox.IsolationNone,
				Allow: []sandbox.Capability{"net:api.github.com"}},
			Default: sandbox.Class{Name: "default", Isolation: sandbox.IsolationIsolated},
		},
		MaxOutputBytes: 64,
	})
	tests := []struct {
		action, params, want, wantErr string
	}{
		{"builtin.fetch", `{"host":"api.github.com"}`, `{"ok":true}`, ""},
		{"builtin.fetch", `{"host":"example.com"}`, "", "capability not granted: net:example.com"},
		{"builtin.panic", `{}`, "", "action builtin.panic panicked: boom"},
		{"builtin.junk", `{}`, "", "returned invalid JSON"},
		{"builtin.big", `{}`, "", "output limit"},
		{"builtin.empty", `{}`, "null", ""},
		{"builtin.missing", `{}`, "", "unknown action: builtin.missing"},
		{"other.fetch", `{"host":"api.github.com"}`, "", "isolated by the sandbox policy"},
	}
	for _, tt := range tests {
		t.Run(tt.action+tt.params, func(t *testing.T) {
			out, err := r.Run(t.Context(), sandbox.Request{Action: tt.action, Params: json.RawMessage(tt.params)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("output %s, want %s", out, tt.want)
			}
		})
	}
	if _, err := r.Run(t.Context(), sandbox.Request{Action: "builtin.missing"}); !errors.Is(err, sandbox.ErrUnknownAction) {
		t.Errorf("unknown action: %v does not wrap ErrUnknownAction", err)
	}
}
