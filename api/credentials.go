package api

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/storage"
)

// credentialView is a credential as answers show it: never its data.
type credentialView struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func viewCredential(c *storage.Credential) credentialView {
	return credentialView{Name: c.Name, Type: c.Type, CreatedAt: stamp(c.CreatedAt), UpdatedAt: stamp(c.UpdatedAt)}
}

func (s *server) putCredential(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name string          `json:"name"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	c, err := s.svc.PutCredential(r.Context(), tenantOf(r), body.Name, body.Type, body.Data)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, viewCredential(c))
}

func (s *server) listCredentials(w http.ResponseWriter, r *http.Request) error {
	list, err := s.svc.ListCredentials(r.Context(), tenantOf(r))
	if err != nil {
		return err
	}
	items := make([]credentialView, len(list))
	for i, c := range list {
		items[i] = viewCredential(c)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": ""})
}

func (s *server) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteCredential(r.Context(), tenantOf(r), mux.Vars(r)["name"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateKey re-seals every credential under the current master key.
func (s *server) rotateKey(w http.ResponseWriter, r *http.Request) error {
	rot, err := s.svc.RotateKey(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int{"resealed": rot.Resealed, "current": rot.Current})
}
