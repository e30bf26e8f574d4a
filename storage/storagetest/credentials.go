package storagetest

import (
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func credentialTests() []test {
	return []test{
		{"PutGetListDelete", testCredentials},
		{"TenantIsolation", testCredentialTenants},
	}
}

// newCredential returns a credential whose Data is binary, as ciphertext
// is: zero bytes and invalid UTF-8 must round-trip.
func newCredential(tenant, name string, n byte) *storage.Credential {
	return &storage.Credential{
		TenantID:  tenant,
		Name:      name,
		Type:      "api-key",
		Data:      []byte{0x00, n, 0xff, 0xfe, 0x00, 'k', 'e', 'y', n},
		CreatedAt: at(time.Duration(n) * time.Second),
		UpdatedAt: at(time.Duration(n) * time.Second),
	}
}

func putCredential(t *testing.T, r storage.Repos, c *storage.Credential) *storage.Credential {
	t.Helper()
	if err := r.PutCredential(t.Context(), c); err != nil {
		t.Fatalf("PutCredential(%s/%s): %v", c.TenantID, c.Name, err)
	}
	return c
}

func testCredentials(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	db := putCredential(t, r, newCredential("t1", "db", 1))
	api := putCredential(t, r, newCredential("t1", "api", 2))
	cache := putCredential(t, r, newCredential("t1", "cache", 3))

	got, err := r.GetCredential(ctx, "t1", "db")
	wantErr(t, "GetCredential", err, nil)
	checkCredential(t, "GetCredential", got, db)

	list, err := r.ListCredentials(ctx, "t1")
	wantErr(t, "ListCredentials", err, nil)
	wantIDs(t, "ListCredentials", ids(list, credentialName), []string{"api", "cache", "db"})
	for i, want := range []*storage.Credential{api, cache, db} {
		if i < len(list) {
			checkCredential(t, "ListCredentials "+want.Name, list[i], want)
		}
	}

	// Every tenant's, by tenant then name.
	other := putCredential(t, r, newCredential("t0", "zz", 4))
	all, err := r.ListAllCredentials(ctx)
	wantErr(t, "ListAllCredentials", err, nil)
	wantIDs(t, "ListAllCredentials", ids(all, func(c *storage.Credential) string { return c.TenantID + "/" + c.Name }),
		[]string{"t0/zz", "t1/api", "t1/cache", "t1/db"})
	if len(all) > 0 {
		checkCredential(t, "ListAllCredentials t0/zz", all[0], other)
	}
	wantErr(t, "DeleteCredential t0/zz", r.DeleteCredential(ctx, "t0", "zz"), nil)

	replaced := &storage.Credential{
		TenantID:  "t1",
		Name:      "db",
		Type:      "basic-auth",
		Data:      []byte("a longer ciphertext that replaces the old one entirely"),
		CreatedAt: db.CreatedAt,
		UpdatedAt: at(time.Hour),
	}
	putCredential(t, r, replaced)
	got, err = r.GetCredential(ctx, "t1", "db")
	wantErr(t, "GetCredential(replaced)", err, nil)
	checkCredential(t, "GetCredential(replaced)", got, replaced)
	list, err = r.ListCredentials(ctx, "t1")
	wantErr(t, "ListCredentials(replaced)", err, nil)
	wantIDs(t, "ListCredentials after replace", ids(list, credentialName), []string{"api", "cache", "db"})

	wantErr(t, "DeleteCredential", r.DeleteCredential(ctx, "t1", "db"), nil)
	_, err = r.GetCredential(ctx, "t1", "db")
	wantErr(t, "GetCredential(deleted)", err, storage.ErrNotFound)
	list, err = r.ListCredentials(ctx, "t1")
	wantErr(t, "ListCredentials(deleted)", err, nil)
	wantIDs(t, "ListCredentials after delete", ids(list, credentialName), []string{"api", "cache"})
	wantErr(t, "DeleteCredential(again)", r.DeleteCredential(ctx, "t1", "db"), storage.ErrNotFound)
	_, err = r.GetCredential(ctx, "t1", "nope")
	wantErr(t, "GetCredential(missing)", err, storage.ErrNotFound)
}

func testCredentialTenants(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	a := putCredential(t, r, newCredential("tenant-a", "db", 1))

	_, err := r.GetCredential(ctx, "tenant-b", "db")
	wantErr(t, "GetCredential(other tenant)", err, storage.ErrNotFound)
	list, err := r.ListCredentials(ctx, "tenant-b")
	wantErr(t, "ListCredentials(other tenant)", err, nil)
	wantIDs(t, "ListCredentials(other tenant)", ids(list, credentialName), nil)
	wantErr(t, "DeleteCredential(other tenant)", r.DeleteCredential(ctx, "tenant-b", "db"), storage.ErrNotFound)

	b := putCredential(t, r, newCredential("tenant-b", "db", 2))
	got, err := r.GetCredential(ctx, "tenant-a", "db")
	wantErr(t, "GetCredential(tenant-a)", err, nil)
	checkCredential(t, "GetCredential(tenant-a) after tenant-b put", got, a)
	wantErr(t, "DeleteCredential(tenant-a)", r.DeleteCredential(ctx, "tenant-a", "db"), nil)
	got, err = r.GetCredential(ctx, "tenant-b", "db")
	wantErr(t, "GetCredential(tenant-b)", err, nil)
	checkCredential(t, "GetCredential(tenant-b) after tenant-a delete", got, b)
}
