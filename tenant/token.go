package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// A tenant token reads nbt_<id>_<secret>: id is 8 lowercase base32
// characters (40 random bits) that name the token in listings and
// revocations, and secret is 32 random bytes in lowercase base32 (52
// characters). Both use only [a-z2-7], so a token survives a double-click,
// a URL and a shell unquoted.
const (
	tokenPrefix    = "nbt_"
	tokenIDLen     = 8
	tokenSecretLen = 52
	tokenLen       = len(tokenPrefix) + tokenIDLen + 1 + tokenSecretLen
)

// encoding is base32 in lowercase, without padding.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrInvalidID reports a tenant id that breaks IDRule.
var ErrInvalidID = errors.New("invalid tenant id")

// idPattern is the rule for tenant ids, the same as for workflow ids.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// IDRule describes the ids ValidateID accepts, for error messages.
const IDRule = "1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit"

// ValidateID checks a tenant id; its error wraps ErrInvalidID.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		if len(id) > 80 {
			id = id[:80] + "..."
		}
		return fmt.Errorf("%w %q: %s", ErrInvalidID, id, IDRule)
	}
	return nil
}

// NewToken makes a tenant token from crypto/rand and returns it with its id
// and the hash that is stored in its place.
func NewToken() (token, id, hash string, err error) {
	var idBytes [5]byte
	var secret [32]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return "", "", "", fmt.Errorf("token: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", "", fmt.Errorf("token: %w", err)
	}
	id = encoding.EncodeToString(idBytes[:])
	token = tokenPrefix + id + "_" + encoding.EncodeToString(secret[:])
	return token, id, HashToken(token), nil
}

// HashToken returns the hex SHA-256 of a whole token: what the state keeps
// instead of the token. A token carries 256 random bits, so a fast hash is
// enough: there is no password to guess, and a slow hash (bcrypt, argon2)
// would only cost every request its time. A plain hash also lets the
// token be found by an index lookup on its hash.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenID returns the id inside a token of the nbt_ form, and whether the
// token has that form at all; a string that does not is no tenant token
// and needs no lookup.
func TokenID(token string) (string, bool) {
	if len(token) != tokenLen || !strings.HasPrefix(token, tokenPrefix) || token[len(tokenPrefix)+tokenIDLen] != '_' {
		return "", false
	}
	id := token[len(tokenPrefix) : len(tokenPrefix)+tokenIDLen]
	secret := token[len(tokenPrefix)+tokenIDLen+1:]
	if !isBase32(id) || !isBase32(secret) {
		return "", false
	}
	return id, true
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
