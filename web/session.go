package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/vigil-sh/vigil/auth"
)

// The operator page signs a browser in with a token once and keeps a session
// cookie from then on. Sessions live in memory: a restart signs everyone out,
// which is the price of never writing anything that could stand in for a token
// to disk.
const (
	sessionCookie = "vigil_session"
	// csrfCookie carries the CSRF token of a browser that has no session yet
	// (the sign-in form) or of a vigil that runs open (no users): the form
	// must send the same value back.
	csrfCookie = "vigil_csrf"
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the store's memory.
	maxSessions = 10000
	// maxSessionsPerToken bounds one token's sessions: signing in again and
	// again with one token ends that token's oldest session, never someone
	// else's.
	maxSessionsPerToken = 16
)

// errTooManySessions is why a sign-in is refused when the store is full of
// live sessions.
var errTooManySessions = errors.New("too many signed-in sessions; try again later")

// session is one signed-in browser. It holds the sum of the token it signed
// in with, so removing the token from the configuration ends the session at
// its next request.
type session struct {
	sum     auth.Sum
	csrf    string
	expires time.Time
}

// sessionStore holds sessions keyed by the SHA-256 of their cookie value, so
// the map never holds what a browser presents.
type sessionStore struct {
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*session
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{now: now, m: map[[sha256.Size]byte]*session{}}
}

// randomToken returns 32 random bytes, URL-safe base64 encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24).
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for the token with sum and returns its cookie
// value. A token that has maxSessionsPerToken sessions loses its oldest; a
// store full of other live sessions refuses.
func (s *sessionStore) create(sum auth.Sum) (string, *session, error) {
	id := randomToken()
	now := s.now()
	sess := &session{sum: sum, csrf: randomToken(), expires: now.Add(sessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	var mine [][sha256.Size]byte
	for k, other := range s.m {
		if other.sum == sum {
			mine = append(mine, k)
		}
	}
	if len(mine) >= maxSessionsPerToken {
		oldest := mine[0]
		for _, k := range mine[1:] {
			if s.m[k].expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	if len(s.m) >= maxSessions {
		for k, other := range s.m {
			if !now.Before(other.expires) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxSessions {
			return "", nil, errTooManySessions
		}
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess, nil
}

// get returns the live session of a cookie value.
func (s *sessionStore) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	if !ok {
		return nil, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.m, key)
		return nil, false
	}
	return sess, true
}

// remove ends the session of a cookie value.
func (s *sessionStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

// fromRequest returns the session of the request's cookie and the cookie
// value.
func (s *sessionStore) fromRequest(r *http.Request) (*session, string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, ""
	}
	sess, ok := s.get(c.Value)
	if !ok {
		return nil, c.Value
	}
	return sess, c.Value
}

// sameToken compares two CSRF tokens in constant time; an empty one never
// matches.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// secureCookies reports whether cookies must only travel over TLS: when
// vigil serves TLS itself, or its external URL is https (TLS ends at a
// proxy in front of it).
func (h *Handler) secureCookies(r *http.Request) bool {
	return r.TLS != nil || (h.opts.ExternalURL != nil && h.opts.ExternalURL.Scheme == "https")
}

// setCookie writes a cookie the page's scripts cannot read and other sites'
// requests do not carry, Secure when secureCookies says so.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		HttpOnly: true,
		Secure:   h.secureCookies(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// clearCookie deletes a cookie.
func (h *Handler) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   h.secureCookies(r),
		SameSite: http.SameSiteStrictMode,
	})
}
