package storagetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func tenantTests() []test {
	return []test{
		{"DefaultExists", testDefaultTenant},
		{"CreateGet", testCreateTenant},
		{"Conflict", testTenantConflict},
		{"Quota", testTenantQuota},
		{"ListPaging", testListTenants},
		{"Tokens", testTokens},
		{"TokenConflicts", testTokenConflicts},
		{"Revoke", testRevokeToken},
	}
}

func checkTenant(t *testing.T, label string, got, want *storage.Tenant) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil tenant", label)
		return
	}
	var d diffs
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "Name", got.Name, want.Name)
	cmpVal(&d, "Quota", got.Quota, want.Quota)
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	d.report(t, label)
}

func checkToken(t *testing.T, label string, got, want *storage.Token) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil token", label)
		return
	}
	var d diffs
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "Hash", got.Hash, want.Hash)
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	cmpTime(&d, "RevokedAt", got.RevokedAt, want.RevokedAt)
	d.report(t, label)
}

func createTenant(t *testing.T, r storage.Repos, tn *storage.Tenant) *storage.Tenant {
	t.Helper()
	if err := r.CreateTenant(t.Context(), tn); err != nil {
		t.Fatalf("CreateTenant(%s): %v", tn.ID, err)
	}
	return tn
}

// newToken returns a token of tenant whose hash is made from seed.
func newToken(tenant, id string, seed int) *storage.Token {
	return &storage.Token{
		TenantID:  tenant,
		ID:        id,
		Hash:      fmt.Sprintf("%064x", seed),
		CreatedAt: at(time.Duration(seed) * time.Second),
	}
}

func putToken(t *testing.T, r storage.Repos, k *storage.Token) *storage.Token {
	t.Helper()
	if err := r.PutToken(t.Context(), k); err != nil {
		t.Fatalf("PutToken(%s/%s): %v", k.TenantID, k.ID, err)
	}
	return k
}

// testDefaultTenant: the default tenant is there in a new store, with no
// quota, listed, and cannot be created again; its quota can be set.
func testDefaultTenant(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	def, err := r.GetTenant(ctx, storage.DefaultTenant)
	wantErr(t, "GetTenant(default)", err, nil)
	if def.ID != storage.DefaultTenant || def.Quota != (storage.Quota{}) {
		t.Fatalf("default tenant = %+v, want id %q and no quota", def, storage.DefaultTenant)
	}
	list, next, err := r.ListTenants(ctx, storage.Page{Limit: 10})
	wantErr(t, "ListTenants", err, nil)
	if len(list) != 1 || list[0].ID != storage.DefaultTenant || next != "" {
		t.Fatalf("ListTenants of a new store = %d tenants, next %q; want default alone", len(list), next)
	}
	err = r.CreateTenant(ctx, &storage.Tenant{ID: storage.DefaultTenant, Name: "again", CreatedAt: at(0)})
	wantErr(t, "CreateTenant(default)", err, storage.ErrConflict)
	q := storage.Quota{MaxWorkflows: 5}
	wantErr(t, "SetTenantQuota(default)", r.SetTenantQuota(ctx, storage.DefaultTenant, q), nil)
	if got, _ := r.GetTenant(ctx, storage.DefaultTenant); got == nil || got.Quota != q {
		t.Fatalf("default tenant after SetTenantQuota = %+v, want quota %+v", got, q)
	}
}

func testCreateTenant(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	want := createTenant(t, r, &storage.Tenant{
		ID: "acme", Name: "Acme Corp",
		Quota:     storage.Quota{MaxWorkflows: 10, MaxConcurrentExecutions: 3, MaxExecutionsPerHour: 1 << 40, MaxStorageMB: 512},
		CreatedAt: at(time.Second),
	})
	got, err := r.GetTenant(ctx, "acme")
	wantErr(t, "GetTenant", err, nil)
	checkTenant(t, "GetTenant", got, want)
	_, err = r.GetTenant(ctx, "nobody")
	wantErr(t, "GetTenant(missing)", err, storage.ErrNotFound)
}

func testTenantConflict(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	first := createTenant(t, r, &storage.Tenant{ID: "acme", Name: "first", CreatedAt: at(0)})
	err := r.CreateTenant(ctx, &storage.Tenant{ID: "acme", Name: "second", Quota: storage.Quota{MaxWorkflows: 1}, CreatedAt: at(time.Second)})
	wantErr(t, "CreateTenant(taken id)", err, storage.ErrConflict)
	got, _ := r.GetTenant(ctx, "acme")
	checkTenant(t, "tenant after a refused create", got, first)
}

func testTenantQuota(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	tn := createTenant(t, r, &storage.Tenant{ID: "acme", Name: "Acme", Quota: storage.Quota{MaxWorkflows: 1}, CreatedAt: at(0)})
	for _, q := range []storage.Quota{
		{MaxWorkflows: 2, MaxConcurrentExecutions: 3, MaxExecutionsPerHour: 4, MaxStorageMB: 5},
		{},
	} {
		wantErr(t, "SetTenantQuota", r.SetTenantQuota(ctx, "acme", q), nil)
		want := *tn
		want.Quota = q
		got, _ := r.GetTenant(ctx, "acme")
		checkTenant(t, "after SetTenantQuota", got, &want)
	}
	wantErr(t, "SetTenantQuota(missing)", r.SetTenantQuota(ctx, "nobody", storage.Quota{MaxWorkflows: 1}), storage.ErrNotFound)
}

// testListTenants pages through tenants whose ids sort before and after
// "default": the default tenant is first, the rest in id order, each
// once, with every page size.
func testListTenants(t *testing.T, r storage.Repos) {
	ids := []string{"zeta", "acme", "delta", "default-2", "b", "eve"}
	for i, id := range ids {
		createTenant(t, r, &storage.Tenant{ID: id, Name: strings.ToUpper(id), CreatedAt: at(time.Duration(i) * time.Second)})
	}
	want := []string{"default", "acme", "b", "default-2", "delta", "eve", "zeta"}
	for _, limit := range []int{0, 1, 2, 3, 7, 8, 100} {
		var got []string
		page := storage.Page{Limit: limit}
		for calls := 0; ; calls++ {
			if calls > len(want)+1 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			list, next, err := r.ListTenants(t.Context(), page)
			wantErr(t, "ListTenants", err, nil)
			if limit > 0 && len(list) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(list))
			}
			for _, tn := range list {
				got = append(got, tn.ID)
			}
			if next == "" {
				break
			}
			page.Cursor = next
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("limit %d: listed %v, want %v", limit, got, want)
		}
	}
	_, _, err := r.ListTenants(t.Context(), storage.Page{Cursor: "not a cursor!", Limit: 2})
	wantErr(t, "ListTenants(bad cursor)", err, storage.ErrInvalidCursor)
}

func testTokens(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	acme := createTenant(t, r, &storage.Tenant{ID: "acme", Name: "Acme", Quota: storage.Quota{MaxWorkflows: 3}, CreatedAt: at(0)})
	k2 := putToken(t, r, newToken("acme", "bbbbbbbb", 2))
	k1 := putToken(t, r, newToken("acme", "zzzzzzzz", 1))
	other := putToken(t, r, newToken(storage.DefaultTenant, "aaaaaaaa", 3))

	k, tn, err := r.TokenByHash(ctx, k2.Hash)
	wantErr(t, "TokenByHash", err, nil)
	checkToken(t, "TokenByHash", k, k2)
	checkTenant(t, "TokenByHash tenant", tn, acme)
	k, tn, err = r.TokenByHash(ctx, other.Hash)
	wantErr(t, "TokenByHash(default's)", err, nil)
	checkToken(t, "TokenByHash(default's)", k, other)
	if tn == nil || tn.ID != storage.DefaultTenant {
		t.Errorf("TokenByHash(default's) tenant = %+v, want default", tn)
	}
	_, _, err = r.TokenByHash(ctx, fmt.Sprintf("%064x", 99))
	wantErr(t, "TokenByHash(unknown)", err, storage.ErrNotFound)

	list, err := r.ListTokens(ctx, "acme")
	wantErr(t, "ListTokens", err, nil)
	if len(list) != 2 {
		t.Fatalf("ListTokens = %d tokens, want 2", len(list))
	}
	// Creation order, not id order.
	checkToken(t, "ListTokens[0]", list[0], k1)
	checkToken(t, "ListTokens[1]", list[1], k2)
	if list, err := r.ListTokens(ctx, "nobody"); err != nil || len(list) != 0 {
		t.Errorf("ListTokens(unknown tenant) = %d tokens, %v; want none", len(list), err)
	}
}

func testTokenConflicts(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createTenant(t, r, &storage.Tenant{ID: "acme", Name: "Acme", CreatedAt: at(0)})
	first := putToken(t, r, newToken("acme", "aaaaaaaa", 1))
	wantErr(t, "PutToken(same id)", r.PutToken(ctx, newToken("acme", "aaaaaaaa", 2)), storage.ErrConflict)
	wantErr(t, "PutToken(same hash)", r.PutToken(ctx, newToken("acme", "bbbbbbbb", 1)), storage.ErrConflict)
	wantErr(t, "PutToken(same hash, other tenant)", r.PutToken(ctx, newToken(storage.DefaultTenant, "cccccccc", 1)), storage.ErrConflict)
	wantErr(t, "PutToken(missing tenant)", r.PutToken(ctx, newToken("nobody", "dddddddd", 4)), storage.ErrNotFound)
	// The same id in another tenant is another token.
	putToken(t, r, newToken(storage.DefaultTenant, "aaaaaaaa", 5))
	list, _ := r.ListTokens(ctx, "acme")
	if len(list) != 1 {
		t.Fatalf("acme has %d tokens after refused puts, want 1", len(list))
	}
	checkToken(t, "token after refused puts", list[0], first)
}

func testRevokeToken(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	createTenant(t, r, &storage.Tenant{ID: "acme", Name: "Acme", CreatedAt: at(0)})
	k := putToken(t, r, newToken("acme", "aaaaaaaa", 1))
	keep := putToken(t, r, newToken("acme", "bbbbbbbb", 2))

	wantErr(t, "RevokeToken", r.RevokeToken(ctx, "acme", k.ID, at(time.Hour)), nil)
	// Again: still found, and the first time stays.
	wantErr(t, "RevokeToken again", r.RevokeToken(ctx, "acme", k.ID, at(2*time.Hour)), nil)
	want := *k
	want.RevokedAt = at(time.Hour)
	got, _, err := r.TokenByHash(ctx, k.Hash)
	wantErr(t, "TokenByHash(revoked)", err, nil)
	checkToken(t, "revoked token", got, &want)
	got, _, _ = r.TokenByHash(ctx, keep.Hash)
	checkToken(t, "the other token", got, keep)

	wantErr(t, "RevokeToken(missing)", r.RevokeToken(ctx, "acme", "zzzzzzzz", at(time.Hour)), storage.ErrNotFound)
	// A tenant cannot revoke another's token.
	wantErr(t, "RevokeToken(other tenant)", r.RevokeToken(ctx, storage.DefaultTenant, keep.ID, at(time.Hour)), storage.ErrNotFound)
	got, _, _ = r.TokenByHash(ctx, keep.Hash)
	checkToken(t, "the other token after a revocation by another tenant", got, keep)
}
