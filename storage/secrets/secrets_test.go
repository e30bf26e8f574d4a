package secrets

import (
	"bytes"
	"context"
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
	k1, created, err := LoadKey(dir, "")
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	info, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	k2, created, err := LoadKey(dir, "")
	if err != nil || created || !bytes.Equal(k1, k2) {
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
	wrong, _, err := LoadKey(dir, strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := NewKeyring(wrong)
	if err := bad.Verify(ctx, dir); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("wrong key: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "master.check"))
	if !bytes.Equal(check, after) {
		t.Fatal("a wrong key overwrote the check file")
	}
	if _, _, err := LoadKey(dir, "short"); err == nil {
		t.Fatal("a short key was accepted")
	}
}
