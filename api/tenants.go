package api

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/storage"
)

// Tenants and their tokens: ADMIN routes (see auth.go), served only with
// auth on. A token is shown once, in the answer that made it; listings
// show ids and dates, never hashes.

// tenantView is a tenant as answers show it.
type tenantView struct {
	ID    string        `json:"id"`
	Name  string        `json:"name"`
	Quota storage.Quota `json:"quota"`
	// Token is set only in the answer of POST /v1/tenants.
	Token     string  `json:"token,omitempty"`
	CreatedAt *string `json:"created_at"` // null for the default tenant
}

func viewTenant(t *storage.Tenant) tenantView {
	return tenantView{ID: t.ID, Name: t.Name, Quota: t.Quota, CreatedAt: optTime(t.CreatedAt)}
}

// tokenView is a token as answers show it.
type tokenView struct {
	ID string `json:"id"`
	// Token is set only in the answer of POST /v1/tenants/{id}/tokens.
	Token     string  `json:"token,omitempty"`
	CreatedAt string  `json:"created_at"`
	RevokedAt *string `json:"revoked_at"`
}

func viewToken(k *storage.Token) tokenView {
	return tokenView{ID: k.ID, CreatedAt: stamp(k.CreatedAt), RevokedAt: optTime(k.RevokedAt)}
}

func (s *server) createTenant(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ID    string        `json:"id"`
		Name  string        `json:"name"`
		Quota storage.Quota `json:"quota"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	t, token, err := s.svc.CreateTenant(r.Context(), body.ID, body.Name, body.Quota)
	if err != nil {
		return err
	}
	v := viewTenant(t)
	v.Token = token
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, v)
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	list, next, err := s.svc.ListTenants(r.Context(), page)
	if err != nil {
		return err
	}
	items := make([]tenantView, len(list))
	for i, t := range list {
		items[i] = viewTenant(t)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (s *server) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := s.svc.GetTenant(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err // the store names the tenant
	}
	return writeJSON(w, http.StatusOK, viewTenant(t))
}

func (s *server) setTenantQuota(w http.ResponseWriter, r *http.Request) error {
	var q storage.Quota
	if err := decodeStrict(r, &q); err != nil {
		return err
	}
	t, err := s.svc.SetTenantQuota(r.Context(), mux.Vars(r)["id"], q)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewTenant(t))
}

func (s *server) issueToken(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	token, tokenID, err := s.svc.IssueToken(r.Context(), id)
	if err != nil {
		return err
	}
	// The answer's date is the one the state recorded.
	list, err := s.svc.ListTokens(r.Context(), id)
	if err != nil {
		return err
	}
	v := tokenView{ID: tokenID}
	for _, k := range list {
		if k.ID == tokenID {
			v = viewToken(k)
		}
	}
	v.Token = token
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, v)
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListTokens(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	items := make([]tokenView, len(list))
	for i, k := range list {
		items[i] = viewToken(k)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": ""})
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if err := s.svc.RevokeToken(r.Context(), v["id"], v["token_id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
