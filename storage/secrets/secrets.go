// Package secrets is the local secrets driver: AES-256-GCM under a 256-bit
// master key, read from the environment or from a key file that is made
// (mode 0600) on first start.
//
// A sealed value is
//
//	version (1 byte) | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag
//
// with the tenant and the credential name as additional data. The key id
// is the first 8 bytes of SHA-256 of the key, so a keyring can open values
// sealed by any key it holds while it seals with the newest.
package secrets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nebula-engine/nebula/storage"
)

const (
	version   byte = 1
	keySize        = 32
	keyIDSize      = 8
	nonceSize      = 12
	headerLen      = 1 + keyIDSize + nonceSize
)

// ErrKeyMismatch reports a master key that does not open the data already
// sealed in a data directory.
var ErrKeyMismatch = errors.New("master key does not match the sealed data")

// Keyring seals with its current key and opens with any key it holds.
type Keyring struct {
	current []byte
	aeads   map[string]cipher.AEAD // by key id
	curID   string
}

var _ storage.SecretsStore = (*Keyring)(nil)

// NewKeyring returns a keyring that seals with current and also opens
// values sealed by older (e.g. during a key rotation).
func NewKeyring(current []byte, older ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD)}
	for i, key := range append([][]byte{current}, older...) {
		if len(key) != keySize {
			return nil, fmt.Errorf("secrets: key %d is %d bytes, want %d", i, len(key), keySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		k.aeads[KeyID(key)] = aead
	}
	k.current, k.curID = current, KeyID(current)
	return k, nil
}

// KeyID names a key without revealing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:keyIDSize])
}

// CurrentKeyID is the id of the key that seals.
func (k *Keyring) CurrentKeyID() string { return k.curID }

func additionalData(tenant, name string) []byte {
	return []byte("nebula/credential\x00" + tenant + "\x00" + name)
}

// Seal encrypts plaintext for the credential (tenant, name).
func (k *Keyring) Seal(_ context.Context, tenant, name string, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerLen, headerLen+len(plaintext)+16)
	out[0] = version
	id, _ := hex.DecodeString(k.curID)
	copy(out[1:], id)
	nonce := out[1+keyIDSize : headerLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return k.aeads[k.curID].Seal(out, nonce, plaintext, additionalData(tenant, name)), nil
}

// Open decrypts a value sealed for the credential (tenant, name).
func (k *Keyring) Open(_ context.Context, tenant, name string, sealed []byte) ([]byte, error) {
	if len(sealed) < headerLen+16 || sealed[0] != version {
		return nil, fmt.Errorf("%w: not a sealed value", storage.ErrSealed)
	}
	id := hex.EncodeToString(sealed[1 : 1+keyIDSize])
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: sealed by key %s, which this node does not hold", storage.ErrSealed, id)
	}
	plain, err := aead.Open(nil, sealed[1+keyIDSize:headerLen], sealed[headerLen:], additionalData(tenant, name))
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s", storage.ErrSealed, tenant, name)
	}
	return plain, nil
}

// Current reports whether sealed was sealed with the current key.
func (k *Keyring) Current(sealed []byte) bool {
	id, ok := SealedKeyID(sealed)
	return ok && id == k.curID
}

// SealedKeyID returns the id of the key that sealed a value.
func SealedKeyID(sealed []byte) (string, bool) {
	if len(sealed) < headerLen || sealed[0] != version {
		return "", false
	}
	return hex.EncodeToString(sealed[1 : 1+keyIDSize]), true
}

// ParseKey reads a key written as 64 hex digits or as base64 (standard or
// URL alphabet) of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == keySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == keySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("secrets: a master key is %d bytes as 64 hex digits or base64", keySize)
}

// LoadKeys returns the master keys, the current one first: from env when
// set (NEBULA_MASTER_KEY: keys separated by commas), else from the key
// file in dir (one key per line), made with a new random key (mode 0600)
// when absent. Keys after the first only open values sealed before a
// rotation. created reports that a new key was made.
func LoadKeys(dir, env string) (keys [][]byte, created bool, err error) {
	if env != "" {
		keys, err := parseKeys(strings.Split(env, ","))
		if err != nil {
			return nil, false, fmt.Errorf("NEBULA_MASTER_KEY: %w", err)
		}
		return keys, false, nil
	}
	path := filepath.Join(dir, "master.key")
	b, err := os.ReadFile(path)
	if err == nil {
		keys, err := parseKeys(strings.Split(string(b), "\n"))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return keys, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("secrets: %w", err)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("secrets: %w", err)
	}
	// O_EXCL: never overwrite a key another process just made.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("secrets: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	serr := f.Sync()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = serr
	}
	if werr != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("secrets: writing %s: %w", path, werr)
	}
	return [][]byte{key}, true, nil
}

// parseKeys parses keys, skipping blank entries; there must be one.
func parseKeys(entries []string) ([][]byte, error) {
	var keys [][]byte
	for _, e := range entries {
		if strings.TrimSpace(e) == "" {
			continue
		}
		k, err := ParseKey(e)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(keys)+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("secrets: no key")
	}
	return keys, nil
}

// DeriveKey derives a 32-byte key for one purpose from a master key
// (HKDF-SHA256), so that the master key itself is never used twice and
// never leaves the node: a peer secret or a gossip key made from it tells
// nothing about it.
func DeriveKey(master []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, "nebula/"+purpose, keySize)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give; 32 bytes always can
	}
	return k
}

// Verify checks the keyring against the data directory's check file, made
// on first use: a value sealed with the key the data was made with. A
// keyring that cannot open it holds the wrong key: ErrKeyMismatch, and
// nothing is written.
func (k *Keyring) Verify(ctx context.Context, dir string) error {
	path := filepath.Join(dir, "master.check")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		sealed, err := k.Seal(ctx, "nebula", "master-check", []byte("ok"))
		if err != nil {
			return err
		}
		return os.WriteFile(path, sealed, 0o600)
	}
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	plain, err := k.Open(ctx, "nebula", "master-check", b)
	if err != nil || !bytes.Equal(plain, []byte("ok")) {
		id, _ := SealedKeyID(b)
		return fmt.Errorf("%w in %s: it was sealed with key %s, this key is %s", ErrKeyMismatch, dir, id, k.curID)
	}
	if id, _ := SealedKeyID(b); id != k.curID {
		// Opened by a previous key: the check moves to the current one,
		// so that the previous key can be dropped once credentials are
		// re-sealed.
		sealed, err := k.Seal(ctx, "nebula", "master-check", []byte("ok"))
		if err != nil {
			return err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		return os.Rename(tmp, path)
	}
	return nil
}
