package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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
)

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
// value.
func (s *sessionStore) create(sum auth.Sum) (string, *session) {
	id := randomToken()
	sess := &session{sum: sum, csrf: randomToken(), expires: s.now().Add(sessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.evict()
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
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

// evict drops expired sessions, or else the one closest to expiring.
func (s *sessionStore) evict() {
	now := s.now()
	var oldest [sha256.Size]byte
	var oldestExp time.Time
	for k, sess := range s.m {
		if !now.Before(sess.expires) {
			delete(s.m, k)
			continue
		}
		if oldestExp.IsZero() || sess.expires.Before(oldestExp) {
			oldest, oldestExp = k, sess.expires
		}
	}
	if len(s.m) >= maxSessions {
		delete(s.m, oldest)
	}
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

// setCookie writes a cookie the page's scripts cannot read and other sites'
// requests do not carry. It is Secure when vigil serves TLS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// clearCookie deletes a cookie.
func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}
