package auth

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Sum is the SHA-256 of a token: what a sign-in session keeps in memory
// instead of the token, so that the session ends when the token's hash
// leaves the configuration.
type Sum [sha256.Size]byte

// SumOf returns the sum of token.
func SumOf(token string) Sum { return sha256.Sum256([]byte(token)) }

// AuthenticateSum is Authenticate for a token known by its sum. It compares
// with every hash in constant time, as Authenticate does. An open
// authenticator answers Anonymous.
func (a *Authenticator) AuthenticateSum(sum Sum) (User, bool) {
	if a.open {
		return a.anonymous(), true
	}
	found := -1
	for _, c := range a.creds {
		if subtle.ConstantTimeCompare(sum[:], c.sum[:]) == 1 {
			found = c.user
		}
	}
	if found < 0 {
		return User{}, false
	}
	return a.user(found), true
}
