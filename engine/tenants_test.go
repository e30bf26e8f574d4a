package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
	"github.com/nebula-engine/nebula/tenant"
)

func TestTenantsAndTokens(t *testing.T) {
	env := newActionEnv(t, nil)
	ctx := t.Context()
	q := storage.Quota{MaxWorkflows: 10, MaxExecutionsPerHour: 100}
	acme, token, err := env.svc.CreateTenant(ctx, "acme", "Acme Corp", q)
	if err != nil {
		t.Fatal(err)
	}
	if acme.ID != "acme" || acme.Name != "Acme Corp" || acme.Quota != q || acme.CreatedAt.IsZero() {
		t.Errorf("created tenant = %+v", acme)
	}
	if _, ok := tenant.TokenID(token); !ok {
		t.Fatalf("token %q is not a tenant token", token)
	}
	got, tokenID, err := env.svc.Authenticate(ctx, token)
	if err != nil || got != "acme" {
		t.Fatalf("Authenticate = %q, %v; want acme", got, err)
	}
	// The state holds the hash, never the token.
	tokens, err := env.svc.ListTokens(ctx, "acme")
	if err != nil || len(tokens) != 1 || tokens[0].ID != tokenID || tokens[0].Hash != tenant.HashToken(token) {
		t.Fatalf("ListTokens = %+v, %v", tokens, err)
	}

	// A second token works beside the first; revoking the first leaves
	// the second.
	second, secondID, err := env.svc.IssueToken(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if second == token || secondID == tokenID {
		t.Fatal("IssueToken repeated the first token")
	}
	if err := env.svc.RevokeToken(ctx, "acme", tokenID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.svc.Authenticate(ctx, token); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("revoked token: Authenticate = %v, want ErrUnauthorized", err)
	}
	if got, _, err := env.svc.Authenticate(ctx, second); err != nil || got != "acme" {
		t.Errorf("second token: Authenticate = %q, %v", got, err)
	}
	tokens, _ = env.svc.ListTokens(ctx, "acme")
	if len(tokens) != 2 || tokens[0].RevokedAt.IsZero() || !tokens[1].RevokedAt.IsZero() {
		t.Errorf("tokens after revocation: %+v", tokens)
	}

	// Another tenant cannot revoke acme's token.
	if _, _, err := env.svc.CreateTenant(ctx, "globex", "", storage.Quota{}); err != nil {
		t.Fatal(err)
	}
	if err := env.svc.RevokeToken(ctx, "globex", secondID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RevokeToken of another tenant's token = %v, want ErrNotFound", err)
	}
	if g, _ := env.svc.GetTenant(ctx, "globex"); g == nil || g.Name != "globex" {
		t.Errorf("a tenant created without a name = %+v, want its id as name", g)
	}

	// Quotas are stored; negative ones refused.
	q2 := storage.Quota{MaxConcurrentExecutions: 2}
	if tn, err := env.svc.SetTenantQuota(ctx, "acme", q2); err != nil || tn.Quota != q2 {
		t.Errorf("SetTenantQuota = %+v, %v", tn, err)
	}
	if _, err := env.svc.SetTenantQuota(ctx, "acme", storage.Quota{MaxStorageMB: -1}); !errors.Is(err, ErrInvalidTenant) {
		t.Errorf("negative quota: %v, want ErrInvalidTenant", err)
	}
	if _, err := env.svc.SetTenantQuota(ctx, "nobody", q2); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("quota of an unknown tenant: %v, want ErrNotFound", err)
	}

	list, next, err := env.svc.ListTenants(ctx, storage.Page{Limit: 10})
	if err != nil || next != "" || len(list) != 3 || list[0].ID != "default" || list[1].ID != "acme" || list[2].ID != "globex" {
		t.Errorf("ListTenants = %v, %q, %v", list, next, err)
	}
}

func TestTenantRefusals(t *testing.T) {
	env := newActionEnv(t, nil)
	ctx := t.Context()
	if _, _, err := env.svc.CreateTenant(ctx, "acme", "", storage.Quota{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, id, tname string
		q               storage.Quota
		want            error
	}{
		{"taken id", "acme", "", storage.Quota{}, storage.ErrConflict},
		{"default", "default", "", storage.Quota{}, storage.ErrConflict},
		{"bad id", "Acme!", "", storage.Quota{}, ErrInvalidTenant},
		{"long name", "x", strings.Repeat("n", 201), storage.Quota{}, ErrInvalidTenant},
		{"negative quota", "y", "", storage.Quota{MaxWorkflows: -1}, ErrInvalidTenant},
	} {
		if _, _, err := env.svc.CreateTenant(ctx, tt.id, tt.tname, tt.q); !errors.Is(err, tt.want) {
			t.Errorf("%s: CreateTenant = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, _, err := env.svc.IssueToken(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("IssueToken(unknown tenant) = %v, want ErrNotFound", err)
	}
	if _, err := env.svc.ListTokens(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ListTokens(unknown tenant) = %v, want ErrNotFound", err)
	}
	for _, token := range []string{"", "admin-token-of-some-sort", "nbt_aaaaaaaa_" + strings.Repeat("a", 52)} {
		if _, _, err := env.svc.Authenticate(ctx, token); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthorized", token, err)
		}
	}
}

// TestMachineTenantCommandsAreAtomic: a CreateTenant whose token hash is
// taken writes nothing, and refusals come back as results.
func TestMachineTenantCommandsAreAtomic(t *testing.T) {
	env := newActionEnv(t, nil)
	ctx := t.Context()
	hash := strings.Repeat("ab", 32)
	submit := func(cmd Command) error {
		res, err := env.log.Submit(ctx, cmd)
		if err != nil {
			t.Fatalf("%T: storage failure %v", cmd, err)
		}
		return res.Err
	}
	if err := submit(&CreateTenant{ID: "acme", Name: "Acme", TokenID: "aaaaaaaa", TokenHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := submit(&CreateTenant{ID: "globex", Name: "Globex", TokenID: "bbbbbbbb", TokenHash: hash}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateTenant with a taken hash = %v, want ErrConflict", err)
	}
	if _, err := env.store.GetTenant(ctx, "globex"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the refused tenant was written: %v", err)
	}
	for _, cmd := range []Command{
		&CreateTenant{ID: "bad id", TokenID: "cccccccc", TokenHash: strings.Repeat("cd", 32)},
		&CreateTenant{ID: "nohash", TokenID: "cccccccc"},
		&SetTenantQuota{ID: "acme", Quota: storage.Quota{MaxWorkflows: -5}},
		&IssueToken{Tenant: "acme", TokenID: "dddddddd", TokenHash: hash},
		&IssueToken{Tenant: "nobody", TokenID: "dddddddd", TokenHash: strings.Repeat("ef", 32)},
		&RevokeToken{Tenant: "acme", TokenID: "zzzzzzzz"},
	} {
		if err := submit(cmd); err == nil {
			t.Errorf("%T %+v applied, want a refusal", cmd, cmd)
		}
	}
}

// TestTriggersServeNewTenants: a webhook of a tenant created after the
// trigger index was built is served without a restart.
func TestTriggersServeNewTenants(t *testing.T) {
	env := newActionEnv(t, nil)
	// The local log publishes no events; pass them on as the FSM would.
	env.log.onEvents = env.svc.Hub().Publish
	ctx := t.Context()
	hook := func(tenantID string) error {
		_, err := env.svc.Webhook(ctx, tenantID, "hello", []byte(`{}`))
		return err
	}
	if err := hook("default"); !errors.Is(err, ErrNoWebhook) {
		t.Fatalf("before any workflow: %v, want ErrNoWebhook", err)
	}
	gen := env.svc.Hub().WorkflowsGeneration()
	if _, _, err := env.svc.CreateTenant(ctx, "acme", "", storage.Quota{}); err != nil {
		t.Fatal(err)
	}
	if env.svc.Hub().WorkflowsGeneration() == gen {
		t.Fatal("creating a tenant did not make the trigger index stale")
	}
	def, err := ParseDefinition([]byte(`{"id":"hi","nodes":[{"id":"a","action":"builtin.noop"}],"triggers":[{"type":"webhook","path":"hello","wait":"0s"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.PutWorkflow(ctx, "acme", def); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := env.svc.Webhook(wctx, "acme", "hello", []byte(`{}`)); err != nil {
		t.Fatalf("acme's webhook: %v", err)
	}
	if err := hook("default"); !errors.Is(err, ErrNoWebhook) {
		t.Fatalf("default tenant reached acme's webhook: %v", err)
	}
}
