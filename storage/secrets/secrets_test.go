package secrets

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nebula-engine/nebula/storage"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	k, err := NewKeyring(key(1))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("s3cr3t-token")
	sealed, err := k.Seal(ctx, "t1", "github", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed value holds the plaintext")
	}
	again, _ := k.Seal(ctx, "t1", "github", secret)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one value are equal: nonces repeat")
	}
	got, err := k.Open(ctx, "t1", "github", sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	other, _ := NewKeyring(key(2))
	tests := []struct {
		name         string
		k            *Keyring
		tenant, cred string
		sealed       []byte
	}{
		{"other tenant", k, "t2", "github", sealed},
		{"other credential", k, "t1", "gitlab", sealed},
		{"tampered", k, "t1", "github", tampered},
		{"wrong key", other, "t1", "github", sealed},
		{"garbage", k, "t1", "github", []byte("plain")},
	}
	for _, tt := range tests {
		if _, err := tt.k.Open(ctx, tt.tenant, tt.cred, tt.sealed); !errors.Is(err, storage.ErrSealed) {
			t.Errorf("%s: err = %v, want ErrSealed", tt.name, err)
		}
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	old, _ := NewKeyring(key(1))
	sealed, _ := old.Seal(ctx, "t", "c", []byte("v"))
	rotated, err := NewKeyring(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(ctx, "t", "c", sealed); err != nil || string(got) != "v" {
		t.Fatalf("the new keyring cannot open an old value: %q %v", got, err)
	}
	resealed, _ := rotated.Seal(ctx, "t", "c", []byte("v"))
	if id, _ := SealedKeyID(resealed); id != KeyID(key(2)) {
		t.Fatalf("sealed with %s, want the new key %s", id, KeyID(key(2)))
	}
}

func TestLoadKeyAndVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, created, err := LoadKeys(dir, "")
	if err != nil || !created || len(keys) != 1 {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	info, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	k1 := keys[0]
	again, created, err := LoadKeys(dir, "")
	if err != nil || created || !bytes.Equal(k1, again[0]) {
		t.Fatal("second start made another key")
	}
	ring, _ := NewKeyring(k1)
	if err := ring.Verify(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := ring.Verify(ctx, dir); err != nil {
		t.Fatalf("second verify: %v", err)
	}
	check, _ := os.ReadFile(filepath.Join(dir, "master.check"))

	// A different key from the environment is refused, and nothing is
	// overwritten.
	wrong, _, err := LoadKeys(dir, strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := NewKeyring(wrong[0])
	if err := bad.Verify(ctx, dir); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("wrong key: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "master.check"))
	if !bytes.Equal(check, after) {
		t.Fatal("a wrong key overwrote the check file")
	}
	if _, _, err := LoadKeys(dir, "short"); err == nil {
		t.Fatal("a short key was accepted")
	}

	// Rotation: the new key first, the old one after it. The check file
	// moves to the new key, after which the new key alone opens it.
	newKey := strings.Repeat("cd", 32)
	rotating, _, err := LoadKeys(dir, newKey+", "+hex.EncodeToString(k1))
	if err != nil || len(rotating) != 2 {
		t.Fatalf("two keys: %v %d", err, len(rotating))
	}
	ring2, _ := NewKeyring(rotating[0], rotating[1:]...)
	if err := ring2.Verify(ctx, dir); err != nil {
		t.Fatalf("verify during rotation: %v", err)
	}
	only, _, _ := LoadKeys(dir, newKey)
	ring3, _ := NewKeyring(only[0])
	if err := ring3.Verify(ctx, dir); err != nil {
		t.Fatalf("verify after rotation: %v", err)
	}
}

func TestDeriveKey(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	a, b := DeriveKey(master, "peers"), DeriveKey(master, "gossip")
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, master) {
		t.Fatal("derived keys must be 32 bytes, differ by purpose and from the master key")
	}
	if !bytes.Equal(a, DeriveKey(master, "peers")) {
		t.Fatal("derivation is not deterministic")
	}
}
