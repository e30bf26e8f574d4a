package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/nebula-engine/nebula/engine"
	"github.com/nebula-engine/nebula/storage"
)

// defaultActionBodyLimit is the body limit of POST /v1/actions: real
// modules are megabytes (CONTRACT §7).
const defaultActionBodyLimit = 64 << 20

// actionView is an action as answers show it: never the module itself.
type actionView struct {
	ID           string   `json:"id"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities"`
	SHA256       string   `json:"sha256"`
	Size         int64    `json:"size"`
	CreatedAt    string   `json:"created_at"`
}

func viewAction(a *storage.Action) actionView {
	// References in the state are the canonical ones BlobRef made.
	digest, _ := storage.ParseBlobRef(a.ModuleRef)
	caps := a.Capabilities
	if caps == nil {
		caps = []string{}
	}
	return actionView{ID: a.ID, Version: a.Version, Capabilities: caps, SHA256: digest, Size: a.Size, CreatedAt: stamp(a.CreatedAt)}
}

// actionManifest is a registration without its module: the JSON body's
// other fields, or the whole "manifest" part of a multipart body.
type actionManifest struct {
	ID           string   `json:"id"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities"`
	SHA256       string   `json:"sha256"`
}

func (m actionManifest) engine() engine.ActionManifest {
	return engine.ActionManifest{ID: m.ID, Version: m.Version, Capabilities: m.Capabilities, SHA256: m.SHA256}
}

func (s *server) registerAction(w http.ResponseWriter, r *http.Request) error {
	m, module, err := readAction(r)
	if err != nil {
		return err
	}
	a, created, err := s.svc.RegisterAction(r.Context(), tenantOf(r), m.engine(), module)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, viewAction(a))
}

func (s *server) listActions(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	list, next, err := s.svc.ListActions(r.Context(), tenantOf(r), page)
	if err != nil {
		return err
	}
	items := make([]actionView, len(list))
	for i, a := range list {
		items[i] = viewAction(a)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (s *server) getAction(w http.ResponseWriter, r *http.Request) error {
	a, err := s.svc.GetAction(r.Context(), tenantOf(r), mux.Vars(r)["ref"])
	if err != nil {
		return err // the store names the action
	}
	return writeJSON(w, http.StatusOK, viewAction(a))
}

// readAction reads a registration: JSON with the module in base64, or
// multipart/form-data with a "manifest" part and a "module" part, which
// spares clients the base64 of a large module.
func readAction(r *http.Request) (actionManifest, []byte, error) {
	var media string
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		if media, _, err = mime.ParseMediaType(ct); err != nil {
			return actionManifest{}, nil, badRequest("Content-Type %q: %v", ct, err)
		}
	}
	switch media {
	case "", "application/json":
		return readActionJSON(r.Body)
	case "multipart/form-data":
		return readActionMultipart(r)
	}
	return actionManifest{}, nil, badRequest("Content-Type %q: want application/json or multipart/form-data", media)
}

// readActionJSON decodes the body as it streams in rather than reading it
// whole first: the module is the bulk of it and is held once, decoded.
func readActionJSON(body io.Reader) (actionManifest, []byte, error) {
	var v struct {
		actionManifest
		Module []byte `json:"module"` // standard base64
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return actionManifest{}, nil, badRequest("request body is empty")
		}
		return actionManifest{}, nil, bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return actionManifest{}, nil, bodyError(err)
		}
		return actionManifest{}, nil, badRequest("malformed JSON body: data after the object")
	}
	return v.actionManifest, v.Module, nil
}

func readActionMultipart(r *http.Request) (actionManifest, []byte, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return actionManifest{}, nil, badRequest("multipart body: %v", err)
	}
	var (
		m                   actionManifest
		module              []byte
		hasManifest, hasMod bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return actionManifest{}, nil, partError(err)
		}
		switch name := part.FormName(); name {
		case "manifest":
			if hasManifest {
				return actionManifest{}, nil, badRequest(`multipart body: more than one "manifest" part`)
			}
			hasManifest = true
			raw, err := io.ReadAll(part)
			if err != nil {
				return actionManifest{}, nil, partError(err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&m); err != nil {
				return actionManifest{}, nil, badRequest(`malformed JSON in the "manifest" part: %v`, err)
			}
			if dec.More() {
				return actionManifest{}, nil, badRequest(`malformed JSON in the "manifest" part: data after the object`)
			}
		case "module":
			if hasMod {
				return actionManifest{}, nil, badRequest(`multipart body: more than one "module" part`)
			}
			hasMod = true
			if module, err = io.ReadAll(part); err != nil {
				return actionManifest{}, nil, partError(err)
			}
		default:
			return actionManifest{}, nil, badRequest(`multipart body: unknown part %q (want "manifest" and "module")`, name)
		}
	}
	if !hasManifest {
		return actionManifest{}, nil, badRequest(`multipart body: no "manifest" part`)
	}
	if !hasMod {
		return actionManifest{}, nil, badRequest(`multipart body: no "module" part`)
	}
	return m, module, nil
}

// bodyError is a JSON decoding error as an answer: the body limit's own
// (413), or a malformed body.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("malformed JSON body: %v", err)
}

// partError is bodyError for a multipart body.
func partError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("multipart body: %v", err)
}
