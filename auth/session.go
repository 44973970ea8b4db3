package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// Sum is the SHA-256 of a token: what a sign-in session keeps in memory
// instead of the token, so that the session ends when the token's hash
// leaves the configuration.
type Sum [sha256.Size]byte

// SumOf returns the sum of token.
func SumOf(token string) Sum { return sha256.Sum256([]byte(token)) }

// AuthenticateSum is Authenticate for a token known by its sum.
func (a *Authenticator) AuthenticateSum(sum Sum) (User, bool) {
	u, err := a.Check(sum)
	return u, err == nil
}

// Check returns the user of the token with sum, or why there is none: an
// error wrapping ErrExpired when its hash has expired, another when no hash
// matches. It compares with every hash in constant time, without stopping at
// a match. An open authenticator answers Anonymous.
func (a *Authenticator) Check(sum Sum) (User, error) {
	if a.open {
		return a.anonymous(), nil
	}
	found := -1
	for i, c := range a.creds {
		if subtle.ConstantTimeCompare(sum[:], c.sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return User{}, errors.New("invalid token")
	}
	c := a.creds[found]
	if c.expired(a.now()) {
		return User{}, fmt.Errorf("%w on %s", ErrExpired, c.expires.UTC().Format(time.RFC3339))
	}
	return a.user(c.user), nil
}
