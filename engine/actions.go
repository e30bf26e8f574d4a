package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nebula-engine/nebula/storage"
)

// Community actions are WebAssembly modules registered per tenant under an
// id in the registry's namespaces ("community.wordcount") and a semantic
// version. The module goes to the blob store; the log and the state carry
// its reference, capabilities and size. A workflow names one as "id" (the
// highest version when an attempt runs) or "id@version".

var actionIDPattern = regexp.MustCompile(`^(community|hub)\.[a-z0-9][a-z0-9_-]{0,62}$`)

// actionIDRule describes the ids actionIDPattern accepts.
const actionIDRule = `want "community." or "hub." then 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit`

const (
	// maxCapabilityLen bounds one capability; the module check, not
	// this one, decides what a capability may say.
	maxCapabilityLen = 200
	// maxCapabilities bounds the capabilities of one action: they are in
	// the log and every answer that shows the action.
	maxCapabilities = 64
)

// wasmMagic starts every WebAssembly binary module.
var wasmMagic = []byte("\x00asm")

// IsRegistryAction reports whether name is in one of the registry's
// namespaces ("community." or "hub."). It suits Options.Registered.
func IsRegistryAction(name string) bool {
	return strings.HasPrefix(name, "community.") || strings.HasPrefix(name, "hub.")
}

// ActionManifest describes a module being registered.
type ActionManifest struct {
	ID      string
	Version string
	// Capabilities are what the module may use; duplicates are dropped
	// and the rest sorted.
	Capabilities []string
	// SHA256, when set, is the hex SHA-256 the module must have: it
	// catches a module damaged or swapped on the way.
	SHA256 string
}

// check validates the manifest and the module against it, and returns the
// capabilities sorted and without duplicates.
func (m ActionManifest) check(module []byte) ([]string, error) {
	if !actionIDPattern.MatchString(m.ID) {
		return nil, fmt.Errorf("%w: id %q: %s", ErrInvalidAction, truncate(m.ID, 80), actionIDRule)
	}
	if err := storage.ValidateActionVersion(m.Version); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAction, err)
	}
	if len(m.Capabilities) > maxCapabilities {
		return nil, fmt.Errorf("%w: %d capabilities, at most %d", ErrInvalidAction, len(m.Capabilities), maxCapabilities)
	}
	for i, c := range m.Capabilities {
		if c == "" || len(c) > maxCapabilityLen {
			return nil, fmt.Errorf("%w: capability %d must be 1 to %d bytes, has %d", ErrInvalidAction, i, maxCapabilityLen, len(c))
		}
	}
	caps := slices.Compact(slices.Sorted(slices.Values(m.Capabilities)))
	if len(module) == 0 {
		return nil, fmt.Errorf("%w: the module is empty", ErrInvalidAction)
	}
	if !bytes.HasPrefix(module, wasmMagic) {
		return nil, fmt.Errorf("%w: the module is not WebAssembly (it does not start with \"\\0asm\")", ErrInvalidAction)
	}
	if m.SHA256 != "" {
		sum := sha256.Sum256(module)
		want, err := hex.DecodeString(m.SHA256)
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("%w: sha256 %q is not %d hex digits", ErrInvalidAction, truncate(m.SHA256, 80), 2*sha256.Size)
		}
		if !bytes.Equal(want, sum[:]) {
			return nil, fmt.Errorf("%w: sha256 %s given, but the module's is %s", ErrInvalidAction, strings.ToLower(m.SHA256), hex.EncodeToString(sum[:]))
		}
	}
	return caps, nil
}

// truncate shortens s for an error message: it may come from a request
// body, and an error should not carry megabytes of it.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// parseActionRef splits "id" or "id@version"; version is "" for the
// highest.
func parseActionRef(ref string) (id, version string, err error) {
	id, version, pinned := strings.Cut(ref, "@")
	if !actionIDPattern.MatchString(id) {
		return "", "", fmt.Errorf("%w: action %q: %s", ErrInvalidAction, ref, actionIDRule)
	}
	if pinned {
		if err := storage.ValidateActionVersion(version); err != nil {
			return "", "", fmt.Errorf("%w: action %q: %w", ErrInvalidAction, ref, err)
		}
	}
	return id, version, nil
}

// RegisterAction checks a module with its manifest, stores it in the blob
// store and registers it as version m.Version of m.ID. It reports
// created=false when that version existed with the same module and
// capabilities; with others it fails wrapping storage.ErrConflict.
// Invalid manifests and modules fail wrapping ErrInvalidAction.
func (s *Service) RegisterAction(ctx context.Context, tenant string, m ActionManifest, module []byte) (*storage.Action, bool, error) {
	if !s.actionsEnabled {
		return nil, false, ErrActionsDisabled
	}
	caps, err := m.check(module)
	if err != nil {
		return nil, false, err
	}
	if s.blobs == nil {
		return nil, false, fmt.Errorf("%w: no blob store for action modules", storage.ErrUnavailable)
	}
	if s.checkModule != nil {
		if err := s.checkModule(ctx, m.ID, module, caps); err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err() // the caller left; the module is not at fault
			}
			return nil, false, fmt.Errorf("%w: module of %s@%s: %w", ErrInvalidAction, m.ID, m.Version, err)
		}
	}
	// The blob is durable before its reference enters the log, so every
	// node that applies the registration can read the module.
	ref, err := s.blobs.Put(ctx, module)
	if err != nil {
		return nil, false, fmt.Errorf("storing the module of %s@%s: %w", m.ID, m.Version, err)
	}
	res, err := s.submit(ctx, &RegisterAction{
		Tenant: tenant, ID: m.ID, Version: m.Version, Capabilities: caps, ModuleRef: ref, Size: int64(len(module)),
	})
	if err != nil {
		return nil, false, err
	}
	a, err := s.store.GetAction(ctx, tenant, m.ID, m.Version)
	if err != nil {
		return nil, false, err
	}
	return a, res.Created, nil
}

// ListActions returns a page of the tenant's actions, every version,
// ordered by id then version.
func (s *Service) ListActions(ctx context.Context, tenant string, page storage.Page) ([]*storage.Action, string, error) {
	return s.store.ListActions(ctx, tenant, page)
}

// GetAction returns the action ref names: "id" for its highest version,
// or "id@version". A malformed ref fails wrapping ErrInvalidAction.
func (s *Service) GetAction(ctx context.Context, tenant, ref string) (*storage.Action, error) {
	id, version, err := parseActionRef(ref)
	if err != nil {
		return nil, err
	}
	return s.store.GetAction(ctx, tenant, id, version)
}

// ActionModule resolves ref as GetAction does and loads the module's bytes
// from the blob store: what a runner needs to run an attempt.
func (s *Service) ActionModule(ctx context.Context, tenant, ref string) (*storage.Action, []byte, error) {
	a, err := s.GetAction(ctx, tenant, ref)
	if err != nil {
		return nil, nil, err
	}
	if s.blobs == nil {
		return nil, nil, fmt.Errorf("%w: no blob store for action modules", storage.ErrUnavailable)
	}
	module, err := s.blobs.Get(ctx, a.ModuleRef)
	if err != nil {
		return nil, nil, fmt.Errorf("module of %s@%s: %w", a.ID, a.Version, err)
	}
	return a, module, nil
}

// unregisteredAction checks that every registry action def uses is
// registered for the tenant in repo. It returns a refusal wrapping
// ErrInvalidWorkflow that names the first node whose action is missing,
// and apart from it any error reading repo.
func unregisteredAction(ctx context.Context, repo storage.ActionRepo, tenant string, def *Definition, registered func(string) bool) (refusal, err error) {
	if registered == nil {
		return nil, nil
	}
	seen := make(map[string]bool)
	for _, n := range def.Nodes {
		id, version, _ := strings.Cut(n.Action, "@")
		if !registered(id) || seen[n.Action] {
			continue
		}
		_, err := repo.GetAction(ctx, tenant, id, version)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: unknown action %q in node %q: not registered", ErrInvalidWorkflow, n.Action, n.ID), nil
		}
		if err != nil {
			return nil, err
		}
		seen[n.Action] = true
	}
	return nil, nil
}
