package tenant

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	shape := regexp.MustCompile(`^nbt_[a-z2-7]{8}_[a-z2-7]{52}$`)
	seen := map[string]bool{}
	for range 100 {
		token, id, hash, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(token) {
			t.Fatalf("token %q does not have the nbt_<id>_<secret> shape", token)
		}
		if got, ok := TokenID(token); !ok || got != id {
			t.Fatalf("TokenID(%q) = %q, %v; want %q", token, got, ok, id)
		}
		if hash != HashToken(token) || len(hash) != 64 || strings.Contains(hash, token) {
			t.Fatalf("hash %q is not the hex SHA-256 of the token", hash)
		}
		if seen[token] || seen[id] {
			t.Fatalf("token or id repeated after %d tokens", len(seen))
		}
		seen[token], seen[id] = true, true
	}
}

func TestTokenIDRefusesOtherStrings(t *testing.T) {
	good, _, _, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"", "nbt_", good[:len(good)-1], good + "a", "xbt_" + good[4:],
		strings.ToUpper(good), good[:12] + "-" + good[13:], good[:20] + "1" + good[21:],
		"an-admin-token-of-any-shape",
	} {
		if _, ok := TokenID(s); ok {
			t.Errorf("TokenID(%q) accepted", s)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"default", "a", "acme-corp", "t_1", "0", strings.Repeat("a", 63)} {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", "_a", "Acme", "a b", "a/b", "a.b", strings.Repeat("a", 64), "é"} {
		if err := ValidateID(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ValidateID(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}
