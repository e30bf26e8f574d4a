package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/storage/blobfs"
	"github.com/nebula-engine/nebula/storage/sqlite"
)

// localLog applies each submitted command at once through a Machine, in a
// transaction of its own: a replicated log of one, without Raft.
type localLog struct {
	store   *sqlite.Store
	machine *Machine
	// onEvents, if set, receives the events of each applied command.
	onEvents func([]Event)

	mu    sync.Mutex
	index uint64
}

func (l *localLog) Submit(ctx context.Context, cmd Command) (Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index++
	st := Stamp{Now: time.Date(2026, 3, 1, 12, 0, 0, int(l.index), time.UTC), Index: l.index}
	var (
		res    Result
		events []Event
	)
	err := l.store.Update(ctx, func(tx *sqlite.Tx) error {
		var err error
		res, events, err = l.machine.Apply(ctx, tx, st, cmd)
		return err
	})
	res.Index = l.index
	if err == nil && l.onEvents != nil {
		l.onEvents(events)
	}
	return res, err
}

// actionEnv is a Service over a local log, with registry actions on.
type actionEnv struct {
	svc   *Service
	log   *localLog
	store *sqlite.Store
}

func newActionEnv(t *testing.T, change func(*ServiceConfig)) *actionEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	blobs, err := blobfs.Open(blobfs.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{KnownAction: knownBuiltins, Registered: IsRegistryAction}
	log := &localLog{store: store, machine: NewMachine(MachineConfig{Options: opts, Blobs: blobs})}
	cfg := ServiceConfig{Submitter: log, Store: store, Options: opts, Blobs: blobs, ActionsEnabled: true}
	if change != nil {
		change(&cfg)
	}
	return &actionEnv{svc: NewService(cfg), log: log, store: store}
}

// wasmModule returns bytes that pass the engine's module checks; seed
// tells modules apart.
func wasmModule(seed string) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), seed...)
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (e *actionEnv) register(t *testing.T, id, version string, module []byte, caps ...string) *storage.Action {
	t.Helper()
	a, _, err := e.svc.RegisterAction(t.Context(), "default", ActionManifest{ID: id, Version: version, Capabilities: caps}, module)
	if err != nil {
		t.Fatalf("RegisterAction(%s@%s): %v", id, version, err)
	}
	return a
}

func TestRegisterAction(t *testing.T) {
	var checked []string
	env := newActionEnv(t, func(c *ServiceConfig) {
		c.CheckModule = func(_ context.Context, _ string, module []byte, caps []string) error {
			checked = caps
			if strings.HasSuffix(string(module), "refuse me") {
				return errors.New("module imports env.forbidden")
			}
			return nil
		}
	})
	ctx := t.Context()
	module := wasmModule("wordcount")
	m := ActionManifest{
		ID: "community.wordcount", Version: "1.0.0",
		Capabilities: []string{"net:b.example.com", "env:LANG", "net:b.example.com"},
		SHA256:       strings.ToUpper(hexSHA256(module)),
	}
	a, created, err := env.svc.RegisterAction(ctx, "default", m, module)
	if err != nil || !created {
		t.Fatalf("RegisterAction = %v, created %v; want created", err, created)
	}
	wantCaps := []string{"env:LANG", "net:b.example.com"}
	if a.ID != m.ID || a.Version != m.Version || a.TenantID != "default" || !slices.Equal(a.Capabilities, wantCaps) ||
		a.ModuleRef != storage.BlobRef(module) || a.Size != int64(len(module)) || a.CreatedAt.IsZero() {
		t.Errorf("registered %+v; want capabilities %q, ref %s, size %d", a, wantCaps, storage.BlobRef(module), len(module))
	}
	if !slices.Equal(checked, wantCaps) {
		t.Errorf("CheckModule got capabilities %q, want %q", checked, wantCaps)
	}

	// The same content again, capabilities in another order: no change.
	m.Capabilities = []string{"env:LANG", "net:b.example.com"}
	again, created, err := env.svc.RegisterAction(ctx, "default", m, module)
	if err != nil || created || !again.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("RegisterAction(again) = %+v, created %v, %v; want the first record, created=false", again, created, err)
	}

	// Versions are immutable.
	m.SHA256 = ""
	if _, _, err := env.svc.RegisterAction(ctx, "default", m, wasmModule("other")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("RegisterAction(other module) = %v, want ErrConflict", err)
	}
	m.Capabilities = append(m.Capabilities, "fs:/tmp")
	if _, _, err := env.svc.RegisterAction(ctx, "default", m, module); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("RegisterAction(other capabilities) = %v, want ErrConflict", err)
	}

	// The module check's refusal is the caller's problem, and nothing is
	// registered.
	_, _, err = env.svc.RegisterAction(ctx, "default", ActionManifest{ID: "community.bad", Version: "1.0.0"}, wasmModule("refuse me"))
	if !errors.Is(err, ErrInvalidAction) || !strings.Contains(err.Error(), "env.forbidden") {
		t.Errorf("RegisterAction(refused by CheckModule) = %v, want ErrInvalidAction naming the check's reason", err)
	}
	if _, err := env.svc.GetAction(ctx, "default", "community.bad"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetAction(refused) = %v, want ErrNotFound", err)
	}
}

func TestRegisterActionInvalid(t *testing.T) {
	env := newActionEnv(t, nil)
	module := wasmModule("m")
	tests := []struct {
		name   string
		m      ActionManifest
		module []byte
		want   string // in the message
	}{
		{"no namespace", ActionManifest{ID: "wordcount", Version: "1.0.0"}, module, `id "wordcount": want "community." or "hub."`},
		{"upper case", ActionManifest{ID: "community.WordCount", Version: "1.0.0"}, module, `id "community.WordCount"`},
		{"empty name", ActionManifest{ID: "community.", Version: "1.0.0"}, module, `id "community."`},
		{"name too long", ActionManifest{ID: "hub." + strings.Repeat("a", 64), Version: "1.0.0"}, module, "1 to 63"},
		{"pinned id", ActionManifest{ID: "community.x@1.0.0", Version: "1.0.0"}, module, `id "community.x@1.0.0"`},
		{"short version", ActionManifest{ID: "community.x", Version: "1.0"}, module, `version "1.0"`},
		{"v prefix", ActionManifest{ID: "community.x", Version: "v1.0.0"}, module, `version "v1.0.0"`},
		{"build metadata", ActionManifest{ID: "community.x", Version: "1.0.0+git"}, module, `version "1.0.0+git"`},
		{"no version", ActionManifest{ID: "community.x"}, module, "empty version"},
		{"empty capability", ActionManifest{ID: "community.x", Version: "1.0.0", Capabilities: []string{"net:a", ""}}, module, "capability 1 must be 1 to 200 bytes"},
		{"long capability", ActionManifest{ID: "community.x", Version: "1.0.0", Capabilities: []string{strings.Repeat("c", 201)}}, module, "capability 0 must be 1 to 200 bytes, has 201"},
		{"too many capabilities", ActionManifest{ID: "community.x", Version: "1.0.0", Capabilities: slices.Repeat([]string{"net:a"}, 65)}, module, "65 capabilities, at most 64"},
		{"empty module", ActionManifest{ID: "community.x", Version: "1.0.0"}, nil, "module is empty"},
		{"not wasm", ActionManifest{ID: "community.x", Version: "1.0.0"}, []byte("#!/bin/sh\n"), "not WebAssembly"},
		{"sha mismatch", ActionManifest{ID: "community.x", Version: "1.0.0", SHA256: hexSHA256([]byte("else"))}, module,
			hexSHA256([]byte("else")) + " given, but the module's is " + hexSHA256(module)},
		{"sha not hex", ActionManifest{ID: "community.x", Version: "1.0.0", SHA256: "xyz"}, module, `sha256 "xyz" is not 64 hex digits`},
		{"sha short", ActionManifest{ID: "community.x", Version: "1.0.0", SHA256: "abcd"}, module, "not 64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := env.svc.RegisterAction(t.Context(), "default", tt.m, tt.module)
			if !errors.Is(err, ErrInvalidAction) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalidAction containing %q", err, tt.want)
			}
		})
	}
	if list, _, err := env.svc.ListActions(t.Context(), "default", storage.Page{}); err != nil || len(list) != 0 {
		t.Errorf("ListActions after refusals = %d actions, %v; want none", len(list), err)
	}
}

func TestRegisterActionNeedsConfig(t *testing.T) {
	m := ActionManifest{ID: "community.x", Version: "1.0.0"}
	off := newActionEnv(t, func(c *ServiceConfig) { c.ActionsEnabled = false })
	_, _, err := off.svc.RegisterAction(t.Context(), "default", m, wasmModule("m"))
	if !errors.Is(err, ErrActionsDisabled) || !strings.Contains(err.Error(), "sandbox.community_actions.enabled") {
		t.Errorf("RegisterAction with actions off = %v, want ErrActionsDisabled naming the setting", err)
	}
	noBlobs := newActionEnv(t, func(c *ServiceConfig) { c.Blobs = nil })
	if _, _, err := noBlobs.svc.RegisterAction(t.Context(), "default", m, wasmModule("m")); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("RegisterAction without blobs = %v, want ErrUnavailable", err)
	}
}

func TestGetActionByRef(t *testing.T) {
	env := newActionEnv(t, nil)
	ctx := t.Context()
	for _, v := range []string{"1.9.0", "1.10.0", "1.10.1-rc.1", "1.2.0"} {
		env.register(t, "community.x", v, wasmModule(v))
	}
	env.register(t, "hub.y", "0.1.0", wasmModule("y"), "net:y.example.com")

	for ref, want := range map[string]string{
		"community.x": "1.10.1-rc.1", "community.x@1.9.0": "1.9.0", "community.x@1.10.0": "1.10.0", "hub.y": "0.1.0",
	} {
		a, err := env.svc.GetAction(ctx, "default", ref)
		if err != nil || a.Version != want {
			t.Errorf("GetAction(%s) = %+v, %v; want version %s", ref, a, err, want)
		}
	}
	for _, ref := range []string{"community.x@2.0.0", "community.nope"} {
		if _, err := env.svc.GetAction(ctx, "default", ref); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetAction(%s) = %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := env.svc.GetAction(ctx, "other", "hub.y"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetAction(another tenant) = %v, want ErrNotFound", err)
	}
	for _, ref := range []string{"community.x@", "community.x@1", "x", "community.x@1.0.0@1.0.0"} {
		if _, err := env.svc.GetAction(ctx, "default", ref); !errors.Is(err, ErrInvalidAction) {
			t.Errorf("GetAction(%q) = %v, want ErrInvalidAction", ref, err)
		}
	}

	a, module, err := env.svc.ActionModule(ctx, "default", "community.x@1.10.0")
	if err != nil || a.Version != "1.10.0" || string(module) != string(wasmModule("1.10.0")) {
		t.Errorf("ActionModule = %+v, %q, %v; want version 1.10.0 and its module", a, module, err)
	}
	if _, _, err := env.svc.ActionModule(ctx, "default", "community.x@3.0.0"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ActionModule(missing) = %v, want ErrNotFound", err)
	}

	page, next, err := env.svc.ListActions(ctx, "default", storage.Page{Limit: 3})
	if err != nil || next == "" || len(page) != 3 || page[0].Version != "1.10.0" {
		t.Errorf("ListActions(limit 3) = %d actions, next %q, %v", len(page), next, err)
	}
}

// workflowUsing returns a definition whose node "n" runs action.
func workflowUsing(action string) *Definition {
	return &Definition{ID: "wc", Nodes: []Node{{ID: "n", Action: action}}}
}

func TestWorkflowWithRegisteredAction(t *testing.T) {
	env := newActionEnv(t, nil)
	ctx := t.Context()

	_, err := env.svc.PutWorkflow(ctx, "default", workflowUsing("community.x@1.0.0"))
	want := `unknown action "community.x@1.0.0" in node "n": not registered`
	if !errors.Is(err, ErrInvalidWorkflow) || !strings.Contains(err.Error(), want) {
		t.Fatalf("PutWorkflow before registration = %v, want ErrInvalidWorkflow containing %q", err, want)
	}
	if _, err := env.svc.PutWorkflow(ctx, "default", workflowUsing("community.x")); !errors.Is(err, ErrInvalidWorkflow) {
		t.Fatalf("PutWorkflow(latest) before registration = %v, want ErrInvalidWorkflow", err)
	}

	env.register(t, "community.x", "1.0.0", wasmModule("x"))
	for _, action := range []string{"community.x@1.0.0", "community.x"} {
		if _, err := env.svc.PutWorkflow(ctx, "default", workflowUsing(action)); err != nil {
			t.Errorf("PutWorkflow(%s) after registration: %v", action, err)
		}
	}
	_, err = env.svc.PutWorkflow(ctx, "default", workflowUsing("community.x@2.0.0"))
	if !errors.Is(err, ErrInvalidWorkflow) || !strings.Contains(err.Error(), `unknown action "community.x@2.0.0" in node "n": not registered`) {
		t.Errorf("PutWorkflow(unregistered version) = %v", err)
	}
	_, err = env.svc.PutWorkflow(ctx, "default", workflowUsing("community.x@1.0"))
	if !errors.Is(err, ErrInvalidWorkflow) || !strings.Contains(err.Error(), `action "community.x@1.0" in node "n"`) {
		t.Errorf("PutWorkflow(malformed version) = %v", err)
	}
	// Registrations are per tenant.
	if _, err := env.svc.PutWorkflow(ctx, "other", workflowUsing("community.x@1.0.0")); !errors.Is(err, ErrInvalidWorkflow) {
		t.Errorf("PutWorkflow in another tenant = %v, want ErrInvalidWorkflow", err)
	}

	// An execution schedules the registry action as a task under the
	// name the workflow gave it.
	if _, err := env.svc.PutWorkflow(ctx, "default", workflowUsing("community.x@1.0.0")); err != nil {
		t.Fatal(err)
	}
	e, _, err := env.svc.StartExecution(ctx, StartRequest{Tenant: "default", WorkflowID: "wc"})
	if err != nil || e.Status != string(StatusRunning) {
		t.Fatalf("StartExecution = %+v, %v", e, err)
	}
	tasks, err := env.store.ReadyTasks(ctx, 10)
	if err != nil || len(tasks) != 1 || tasks[0].Action != "community.x@1.0.0" {
		t.Errorf("ready tasks = %+v, %v; want one running community.x@1.0.0", tasks, err)
	}
}

// TestMachineChecksRegisteredActions proposes a workflow without the
// Service's check, as a node whose state lags would: the state machine
// refuses it on every replica alike.
func TestMachineChecksRegisteredActions(t *testing.T) {
	env := newActionEnv(t, nil)
	ctx := t.Context()
	raw, err := json.Marshal(workflowUsing("hub.y@0.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.log.Submit(ctx, &PutWorkflow{Tenant: "default", ID: "wc", Definition: raw})
	if err != nil || !errors.Is(res.Err, ErrInvalidWorkflow) || !strings.Contains(res.Err.Error(), `"hub.y@0.1.0" in node "n": not registered`) {
		t.Fatalf("apply PutWorkflow = %v, %v; want a refusal naming hub.y@0.1.0", res.Err, err)
	}
	if _, err := env.store.GetWorkflow(ctx, "default", "wc", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("refused workflow was stored: %v", err)
	}

	env.register(t, "hub.y", "0.1.0", wasmModule("y"))
	res, err = env.log.Submit(ctx, &PutWorkflow{Tenant: "default", ID: "wc", Definition: raw})
	if err != nil || res.Err != nil || res.Version != 1 {
		t.Errorf("apply PutWorkflow after registration = %+v, %v", res, err)
	}

	// A malformed registration never reaches the store.
	res, err = env.log.Submit(ctx, &RegisterAction{Tenant: "default", ID: "hub.z", ModuleRef: storage.BlobRef(nil)})
	if err != nil || !errors.Is(res.Err, ErrInvalidAction) {
		t.Errorf("apply RegisterAction without a version = %v, %v; want ErrInvalidAction", res.Err, err)
	}
}

// TestCompileRegisteredActions: a registry action passes Compile by its
// form when Options.Registered claims it, and is unknown without it.
func TestCompileRegisteredActions(t *testing.T) {
	noop := func(action string) bool { return action == "builtin.noop" }
	with := Options{KnownAction: noop, Registered: IsRegistryAction}
	for _, action := range []string{"community.x", "community.x@1.0.0", "hub.y@2.0.0-rc.1"} {
		if _, err := Compile(workflowUsing(action), with); err != nil {
			t.Errorf("Compile(%s) with Registered: %v", action, err)
		}
	}
	for _, action := range []string{"community.x@1.0", "community.x@", "builtin.noop@1.0.0", "@1.0.0"} {
		if _, err := Compile(workflowUsing(action), with); !errors.Is(err, ErrInvalidWorkflow) {
			t.Errorf("Compile(%s) with Registered = %v, want ErrInvalidWorkflow", action, err)
		}
	}
	without := Options{KnownAction: noop}
	if _, err := Compile(workflowUsing("community.x@1.0.0"), without); err == nil || !strings.Contains(err.Error(), `unknown action "community.x@1.0.0"`) {
		t.Errorf("Compile without Registered = %v, want unknown action", err)
	}
}
