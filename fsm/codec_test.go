package fsm

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage"
)

func sampleCommands() []engine.Command {
	return []engine.Command{
		&engine.PutWorkflow{Tenant: "default", ID: "greet", Definition: json.RawMessage(`{"id":"greet"}`)},
		&engine.DeleteWorkflow{Tenant: "t1", ID: "old"},
		&engine.StartExecution{Tenant: "default", ExecutionID: "e1", WorkflowID: "greet", Input: json.RawMessage(`{"n":1}`), IdempotencyKey: "k"},
		&engine.StartExecution{Tenant: "default", ExecutionID: "e2", WorkflowID: "greet"},
		&engine.ClaimTasks{Holder: "n1/abc", Max: 16, TTL: 30 * time.Second},
		&engine.CompleteTask{TaskID: "e1/a/1", Token: 1<<40 | 3, Output: json.RawMessage(`{"x":true}`)},
		&engine.CompleteTask{TaskID: "e1/a/2", Token: 7, Error: "boom", Retryable: true, Jitter: 1 << 31},
		&engine.CompleteTask{TaskID: "e1/a/3", Token: 9, Output: json.RawMessage(`1`), Claim: &engine.ClaimTasks{Holder: "n1/w", Max: 4, TTL: 30 * time.Second}},
		&engine.CancelExecution{Tenant: "default", ExecutionID: "e1", Reason: "by user"},
		&engine.FireTimers{Max: 500, Jitter: 12345},
		&engine.Continue{Max: 64},
		&engine.SetLimits{MaxConcurrentExecutions: 64, MaxWorkflowNodes: 500, MaxDefinitionBytes: 1 << 20},
		&engine.PutCredential{Tenant: "default", Name: "github", Type: "bearer", Sealed: []byte{1, 2, 3}},
		&engine.DeleteCredential{Tenant: "default", Name: "github"},
		&engine.FireCron{Tenant: "default", WorkflowID: "nightly", Trigger: 1, Tick: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), ExecutionID: "e9"},
		&engine.RenewLease{TaskID: "e1/a/1", Token: 9, TTL: time.Minute},
		&engine.ReclaimTasks{Max: 100, HolderPrefix: "n1/", KeepHolder: "n1/abc"},
		&engine.RegisterAction{Tenant: "default", ID: "community.wordcount", Version: "1.10.0-rc.1",
			Capabilities: []string{"env:LANG", "net:api.example.com"}, ModuleRef: "sha256:" + strings.Repeat("ab", 32), Size: 48 << 20},
		&engine.RegisterAction{Tenant: "t1", ID: "hub.bare", Version: "0.0.1", ModuleRef: "sha256:" + strings.Repeat("0", 64), Size: 8},
		&engine.ResealCredential{Tenant: "t1", Name: "github", Expect: []byte{1, 0, 2}, Sealed: []byte{1, 9, 9, 9}},
		&engine.CreateTenant{ID: "acme", Name: "Acme Corp", TokenID: "abcdefgh", TokenHash: strings.Repeat("0f", 32),
			Quota: storage.Quota{MaxWorkflows: 10, MaxConcurrentExecutions: 3, MaxExecutionsPerHour: 1 << 40, MaxStorageMB: 512}},
		&engine.CreateTenant{ID: "bare", TokenID: "aaaaaaaa", TokenHash: strings.Repeat("1", 64)},
		&engine.SetTenantQuota{ID: "acme", Quota: storage.Quota{MaxWorkflows: 1, MaxStorageMB: -1}},
		&engine.SetTenantQuota{ID: "default"},
		&engine.IssueToken{Tenant: "acme", TokenID: "zyxw2345", TokenHash: strings.Repeat("ab", 32)},
		&engine.RevokeToken{Tenant: "acme", TokenID: "abcdefgh"},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	cmds := sampleCommands()
	data, err := EncodeBatch(now, cmds)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Now.Equal(now) {
		t.Errorf("now = %v, want %v", b.Now, now)
	}
	if !reflect.DeepEqual(b.Commands, cmds) {
		t.Errorf("commands differ after round trip:\n got %#v\nwant %#v", b.Commands, cmds)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	good, err := EncodeBatch(time.Unix(1, 0), sampleCommands()[:1])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"unknown kind", []byte{9, 0, 0}},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"huge count", []byte{kindBatch, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"unknown command", []byte{kindBatch, 1, 1, 1, 0x42}},
		{"huge capability count", []byte{kindBatch, 1, 1, 8, typeRegisterAction, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f}},
		{"truncated capabilities", []byte{kindBatch, 1, 1, 7, typeRegisterAction, 0, 0, 0, 2, 1, 'a'}},
		{"truncated quota", []byte{kindBatch, 1, 1, 4, typeSetTenantQuota, 1, 'a', 2}},
		{"create tenant without token", []byte{kindBatch, 1, 1, 7, typeCreateTenant, 1, 'a', 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeBatch(tt.data); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
}

func TestIgnorableUnknownCommand(t *testing.T) {
	data := []byte{kindBatch, 1, 1, 2, ignorableFlag | 0x42, 0}
	b, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Commands) != 1 || b.Commands[0] != nil {
		t.Fatalf("commands = %#v, want one nil (ignored) command", b.Commands)
	}
	_, err = DecodeBatch([]byte{kindBatch, 1, 1, 1, 0x42})
	if !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("err = %v, want ErrUnknownCommand", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for i := range sampleCommands() {
		data, err := EncodeBatch(time.Unix(int64(i), 0), sampleCommands()[i:i+1])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to something that decodes
		// to the same commands.
		cmds := make([]engine.Command, 0, len(b.Commands))
		for _, c := range b.Commands {
			if c != nil {
				cmds = append(cmds, c)
			}
		}
		again, err := EncodeBatch(b.Now, cmds)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if !reflect.DeepEqual(b2.Commands, cmds) {
			t.Fatalf("round trip changed commands")
		}
	})
}
