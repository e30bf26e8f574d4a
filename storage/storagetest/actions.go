package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nebula-engine/nebula/storage"
)

func actionTests() []test {
	return []test{
		{"PutGet", testPutGetAction},
		{"LatestBySemver", testLatestAction},
		{"Conflict", testActionConflict},
		{"IdempotentPut", testActionIdempotent},
		{"TenantIsolation", testActionTenants},
		{"ListPaging", testListActions},
	}
}

// newAction returns a version of an action whose module is made from
// seed: two calls with the same seed describe the same module.
func newAction(tenant, id, version string, seed byte) *storage.Action {
	module := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00, seed}
	return &storage.Action{
		TenantID:     tenant,
		ID:           id,
		Version:      version,
		Capabilities: []string{"env:LANG", fmt.Sprintf("net:api-%d.example.com", seed)},
		ModuleRef:    storage.BlobRef(module),
		Size:         int64(len(module)),
		CreatedAt:    at(time.Duration(seed) * time.Second),
	}
}

func putAction(t *testing.T, r storage.Repos, a *storage.Action) *storage.Action {
	t.Helper()
	if err := r.PutAction(t.Context(), a); err != nil {
		t.Fatalf("PutAction(%s/%s@%s): %v", a.TenantID, a.ID, a.Version, err)
	}
	return a
}

func checkAction(t *testing.T, label string, got, want *storage.Action) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil action", label)
		return
	}
	var d diffs
	cmpVal(&d, "TenantID", got.TenantID, want.TenantID)
	cmpVal(&d, "ID", got.ID, want.ID)
	cmpVal(&d, "Version", got.Version, want.Version)
	// nil and empty are the same: no capabilities.
	if !slices.Equal(got.Capabilities, want.Capabilities) {
		d.add("Capabilities", fmt.Sprintf("%q", got.Capabilities), fmt.Sprintf("%q", want.Capabilities))
	}
	cmpVal(&d, "ModuleRef", got.ModuleRef, want.ModuleRef)
	cmpVal(&d, "Size", got.Size, want.Size)
	cmpTime(&d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	d.report(t, label)
}

func actionKey(a *storage.Action) string { return a.ID + "@" + a.Version }

func testPutGetAction(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	v1 := putAction(t, r, newAction("t1", "community.wordcount", "1.0.0", 1))
	bare := newAction("t1", "community.bare", "0.1.0", 2)
	bare.Capabilities = nil
	putAction(t, r, bare)

	got, err := r.GetAction(ctx, "t1", "community.wordcount", "1.0.0")
	wantErr(t, "GetAction(exact)", err, nil)
	checkAction(t, "GetAction(exact)", got, v1)
	got, err = r.GetAction(ctx, "t1", "community.wordcount", "")
	wantErr(t, "GetAction(latest)", err, nil)
	checkAction(t, "GetAction(latest)", got, v1)
	got, err = r.GetAction(ctx, "t1", "community.bare", "0.1.0")
	wantErr(t, "GetAction(no capabilities)", err, nil)
	checkAction(t, "GetAction(no capabilities)", got, bare)

	_, err = r.GetAction(ctx, "t1", "community.wordcount", "1.0.1")
	wantErr(t, "GetAction(missing version)", err, storage.ErrNotFound)
	_, err = r.GetAction(ctx, "t1", "community.nope", "")
	wantErr(t, "GetAction(missing id, latest)", err, storage.ErrNotFound)
	_, err = r.GetAction(ctx, "t1", "community.nope", "1.0.0")
	wantErr(t, "GetAction(missing id)", err, storage.ErrNotFound)
}

func testLatestAction(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	// Put out of order; byte order would pick 1.9.0 over 1.10.0, and a
	// prerelease of 1.10.0 over the release.
	versions := map[string]*storage.Action{}
	for i, v := range []string{"1.9.0", "1.10.0", "0.1.0", "1.10.0-rc.1", "1.2.0", "1.10.0-beta"} {
		versions[v] = putAction(t, r, newAction("t1", "community.x", v, byte(i)))
	}
	got, err := r.GetAction(ctx, "t1", "community.x", "")
	wantErr(t, "GetAction(latest)", err, nil)
	checkAction(t, "GetAction(latest) among 1.9.0, 1.10.0 and prereleases", got, versions["1.10.0"])

	// A prerelease of a higher version is above every lower release.
	next := putAction(t, r, newAction("t1", "community.x", "2.0.0-alpha", 9))
	got, err = r.GetAction(ctx, "t1", "community.x", "")
	wantErr(t, "GetAction(latest after 2.0.0-alpha)", err, nil)
	checkAction(t, "GetAction(latest) after 2.0.0-alpha", got, next)

	// Prereleases alone: numeric identifiers compare as numbers.
	putAction(t, r, newAction("t1", "community.pre", "1.0.0-rc.9", 1))
	rc10 := putAction(t, r, newAction("t1", "community.pre", "1.0.0-rc.10", 2))
	got, err = r.GetAction(ctx, "t1", "community.pre", "")
	wantErr(t, "GetAction(latest prerelease)", err, nil)
	checkAction(t, "GetAction(latest) of rc.9 and rc.10", got, rc10)
}

func testActionConflict(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	orig := putAction(t, r, newAction("t1", "community.x", "1.0.0", 1))

	otherModule := newAction("t1", "community.x", "1.0.0", 2)
	otherModule.Capabilities = orig.Capabilities
	wantErr(t, "PutAction(other module)", r.PutAction(ctx, otherModule), storage.ErrConflict)

	otherCaps := newAction("t1", "community.x", "1.0.0", 1)
	otherCaps.Capabilities = append(otherCaps.Capabilities, "fs:/tmp")
	wantErr(t, "PutAction(more capabilities)", r.PutAction(ctx, otherCaps), storage.ErrConflict)

	noCaps := newAction("t1", "community.x", "1.0.0", 1)
	noCaps.Capabilities = nil
	wantErr(t, "PutAction(no capabilities)", r.PutAction(ctx, noCaps), storage.ErrConflict)

	got, err := r.GetAction(ctx, "t1", "community.x", "1.0.0")
	wantErr(t, "GetAction after conflicts", err, nil)
	checkAction(t, "GetAction after conflicts", got, orig)
}

func testActionIdempotent(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	orig := putAction(t, r, newAction("t1", "community.x", "1.0.0", 1))

	again := newAction("t1", "community.x", "1.0.0", 1)
	slices.Reverse(again.Capabilities)
	again.CreatedAt = at(time.Hour)
	wantErr(t, "PutAction(same content, capabilities reordered, later)", r.PutAction(ctx, again), nil)

	got, err := r.GetAction(ctx, "t1", "community.x", "1.0.0")
	wantErr(t, "GetAction after re-put", err, nil)
	checkAction(t, "GetAction after re-put keeps the first record", got, orig)
	list, _, err := r.ListActions(ctx, "t1", storage.Page{})
	wantErr(t, "ListActions after re-put", err, nil)
	wantIDs(t, "ListActions after re-put", ids(list, actionKey), []string{"community.x@1.0.0"})
}

func testActionTenants(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	a := putAction(t, r, newAction("tenant-a", "community.x", "1.0.0", 1))

	_, err := r.GetAction(ctx, "tenant-b", "community.x", "1.0.0")
	wantErr(t, "GetAction(other tenant, exact)", err, storage.ErrNotFound)
	_, err = r.GetAction(ctx, "tenant-b", "community.x", "")
	wantErr(t, "GetAction(other tenant, latest)", err, storage.ErrNotFound)
	list, next, err := r.ListActions(ctx, "tenant-b", storage.Page{Limit: 10})
	wantErr(t, "ListActions(other tenant)", err, nil)
	if len(list) != 0 || next != "" {
		t.Errorf("ListActions(other tenant) = %q, next %q; want nothing", ids(list, actionKey), next)
	}

	// The same id and version with another module is no conflict in
	// another tenant, and a higher version there does not move A's latest.
	b := putAction(t, r, newAction("tenant-b", "community.x", "1.0.0", 2))
	putAction(t, r, newAction("tenant-b", "community.x", "9.0.0", 3))
	got, err := r.GetAction(ctx, "tenant-a", "community.x", "")
	wantErr(t, "GetAction(tenant-a, latest)", err, nil)
	checkAction(t, "GetAction(tenant-a, latest) after tenant-b puts", got, a)
	got, err = r.GetAction(ctx, "tenant-b", "community.x", "1.0.0")
	wantErr(t, "GetAction(tenant-b)", err, nil)
	checkAction(t, "GetAction(tenant-b)", got, b)
}

func testListActions(t *testing.T, r storage.Repos) {
	ctx := t.Context()
	// Put out of order, beside another tenant whose keys interleave.
	keys := [][2]string{
		{"community.b", "1.10.0"}, {"community.a", "2.0.0"}, {"hub.z", "0.0.1"},
		{"community.b", "1.9.0"}, {"community.a", "1.0.0"}, {"community.b", "1.0.0-rc.1"},
		{"community.c", "1.0.0"},
	}
	want := map[string]*storage.Action{}
	for i, k := range keys {
		a := putAction(t, r, newAction("t1", k[0], k[1], byte(i)))
		want[actionKey(a)] = a
	}
	putAction(t, r, newAction("t2", "community.a", "1.5.0", 1))
	putAction(t, r, newAction("t2", "community.bb", "1.0.0", 2))
	order := []string{
		"community.a@1.0.0", "community.a@2.0.0",
		"community.b@1.0.0-rc.1", "community.b@1.10.0", "community.b@1.9.0",
		"community.c@1.0.0", "hub.z@0.0.1",
	}

	for _, limit := range pageLimits() {
		got := walkPages(t, limit, len(order), func(cursor string) ([]*storage.Action, string, error) {
			return r.ListActions(ctx, "t1", storage.Page{Cursor: cursor, Limit: limit})
		})
		wantIDs(t, fmt.Sprintf("limit %d: actions", limit), ids(got, actionKey), order)
		for _, a := range got {
			if w := want[actionKey(a)]; w != nil {
				checkAction(t, fmt.Sprintf("limit %d: %s", limit, actionKey(a)), a, w)
			}
		}
	}
	all, next, err := r.ListActions(ctx, "t1", storage.Page{})
	wantErr(t, "ListActions(no limit)", err, nil)
	wantIDs(t, "ListActions(no limit)", ids(all, actionKey), order)
	if next != "" {
		t.Errorf("ListActions(no limit): next cursor %q, want none", next)
	}
	if _, _, err := r.ListActions(ctx, "t1", storage.Page{Cursor: "!not a cursor!", Limit: 2}); err == nil {
		t.Errorf("ListActions with a malformed cursor: no error")
	}
}
