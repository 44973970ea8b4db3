// Package auth turns vigil's users, roles and permissions into decisions: it
// makes API tokens and their hashes, and resolves a presented token to a user
// and the permissions of that user's roles.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

const (
	// TokenPrefix starts every token NewToken makes, so a leaked token is
	// recognisable by secret scanners and by people.
	TokenPrefix = "vgl_"
	// HashPrefix starts every token hash and names its algorithm.
	HashPrefix = "sha256:"
	// expirySep ends a hash that expires, before the RFC 3339 time it stops
	// working at: "sha256:<hex>@2027-03-01T00:00:00Z".
	expirySep = "@"

	tokenBytes = 32
)

// NewToken returns a fresh API token and the hash that goes into the
// configuration's users[].tokens. The token is TokenPrefix and 32 bytes from
// crypto/rand in unpadded base64url; the hash is HashPrefix and the hex SHA-256
// of the whole token.
//
// A fast hash is right here: a token carries 256 random bits, so there is no
// dictionary to try and a slow password hash would only slow every request.
func NewToken() (token, hash string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("auth: reading random bytes for a token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, Hash(token), nil
}

// Hash returns the hash of token in the configuration's format.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return HashPrefix + hex.EncodeToString(sum[:])
}

// Verify reports whether token hashes to hash. The comparison takes the same
// time wherever the two differ.
func Verify(token, hash string) bool {
	want, err := parseHash(hash)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// HashUntil returns the hash of token in the configuration's format, valid
// until expires (a zero time: for ever).
func HashUntil(token string, expires time.Time) string {
	return tokenHash{sum: sha256.Sum256([]byte(token)), expires: expires}.String()
}

// tokenHash is one entry of users[].tokens: the sum of the token and, if it
// expires, when.
type tokenHash struct {
	sum     [sha256.Size]byte
	expires time.Time
}

// String is the entry in its canonical form: lower-case hex, the expiry in
// UTC.
func (t tokenHash) String() string {
	s := HashPrefix + hex.EncodeToString(t.sum[:])
	if !t.expires.IsZero() {
		s += expirySep + t.expires.UTC().Format(time.RFC3339)
	}
	return s
}

// expired reports whether the token no longer works at now.
func (t tokenHash) expired(now time.Time) bool {
	return !t.expires.IsZero() && !now.Before(t.expires)
}

// parseTokenHash decodes an entry of users[].tokens: HashPrefix, the hex
// SHA-256 of the token, and optionally "@" and the RFC 3339 time the token
// stops working. Its errors never quote the value: a token pasted where its
// hash belongs must not reach a log.
func parseTokenHash(entry string) (tokenHash, error) {
	var t tokenHash
	hash, expires, hasExpiry := strings.Cut(entry, expirySep)
	hexSum, ok := strings.CutPrefix(hash, HashPrefix)
	if !ok {
		return t, fmt.Errorf("is not a %q token hash (is it the token itself? put its hash here)", HashPrefix+"<hex>")
	}
	b, err := hex.DecodeString(hexSum)
	if err != nil || len(b) != sha256.Size {
		return t, fmt.Errorf("is not a %q token hash: want %d hex digits after the prefix", HashPrefix+"<hex>", 2*sha256.Size)
	}
	copy(t.sum[:], b)
	if hasExpiry {
		at, err := time.Parse(time.RFC3339, expires)
		if err != nil {
			return t, fmt.Errorf("has an expiry that is not an RFC 3339 time after %q (like 2027-03-01T00:00:00Z)", expirySep)
		}
		t.expires = at
	}
	return t, nil
}

// parseHash decodes an entry of users[].tokens and returns the token's sum.
func parseHash(entry string) ([sha256.Size]byte, error) {
	t, err := parseTokenHash(entry)
	return t.sum, err
}
