package postgres

import (
	"errors"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// redacted stands in for a secret in messages.
const redacted = "xxxxx"

// redactor removes the DSN and its password from text. The password may
// reach a message in several spellings (as typed, percent-encoded,
// decoded), so each is removed; the whole DSN goes first because it
// contains the others.
type redactor struct {
	secrets []string
}

// kvPassword finds password=... in a key=value DSN, quoted or not.
var kvPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

// newRedactor returns a redactor for dsn; password is the one pgx parsed,
// if it got that far.
func newRedactor(dsn, password string) *redactor {
	return newRedactorOf(append(passwords(dsn, password), dsn))
}

// passwords returns the spellings of the DSN's password that can be found.
func passwords(dsn, password string) []string {
	set := map[string]bool{}
	add := func(s string) {
		if s != "" {
			set[s] = true
		}
	}
	add(password)
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		// The raw userinfo of a URL, even one url.Parse rejects.
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				add(rest[c+1 : at])
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
		add(m[1])
		add(strings.Trim(m[1], "'"))
	}
	out := make([]string, 0, 3*len(set))
	for s := range set {
		out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
		if u, err := url.QueryUnescape(s); err == nil && u != "" {
			out = append(out, u)
		}
	}
	return out
}

// newRedactorOf returns a redactor of secrets.
func newRedactorOf(secrets []string) *redactor {
	set := map[string]bool{}
	for _, s := range secrets {
		if s != "" {
			set[s] = true
		}
	}
	r := &redactor{}
	for s := range set {
		r.secrets = append(r.secrets, s)
	}
	// Longest first: a secret that contains another goes in one piece.
	sort.Slice(r.secrets, func(i, j int) bool {
		if len(r.secrets[i]) != len(r.secrets[j]) {
			return len(r.secrets[i]) > len(r.secrets[j])
		}
		return r.secrets[i] < r.secrets[j]
	})
	return r
}

// redact returns s without the secrets.
func (r *redactor) redact(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	return s
}

// wrap returns err with the secrets removed from its message, or nil.
func (r *redactor) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.redact(err.Error()), err: err}
}

// redactedError carries a redacted message. It does not unwrap: the
// original error may quote the DSN (pgconn.ParseConfigError keeps it in a
// field), so only errors.Is reaches through, for context errors and the
// like.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is lets errors.Is see the original chain.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// safeDSN returns dsn with its password masked, for messages that must
// say which server was meant.
func safeDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			return newRedactorOf(passwords(dsn, "")).redact(u.Redacted())
		}
		return redacted
	}
	return newRedactorOf(passwords(dsn, "")).redact(kvPassword.ReplaceAllString(dsn, "password="+redacted))
}
