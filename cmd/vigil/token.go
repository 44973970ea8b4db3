package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/auth"
)

// tokenNew is `vigil token new [--expires D]`: a fresh token and the hash
// that goes into users[].tokens, with the expiry in the hash when asked.
func tokenNew(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var expires time.Time
	switch rest := args[1:]; {
	case len(rest) == 0:
	case len(rest) == 2 && (rest[0] == "--expires" || rest[0] == "-expires"):
		at, err := parseExpiry(rest[1], time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "vigil: --expires %q: %s\n", rest[1], err)
			return 2
		}
		expires = at
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	token, _, err := auth.NewToken()
	if err != nil {
		fmt.Fprintf(stderr, "vigil: %s\n", err)
		return 1
	}
	hash := auth.HashUntil(token, expires)
	fmt.Fprintf(stdout, "token: %s\nhash:  %s\n", token, hash)
	if !expires.IsZero() {
		fmt.Fprintf(stdout, "expires: %s\n", expires.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "\nGive the token to its user; put only the hash in the config:\n  users:\n    - {name: NAME, role: ROLE, tokens: [%q]}\n", hash)
	return 0
}

// parseExpiry reads when a token stops working: a number of days ("90d"), a
// Go duration ("720h"), a date ("2027-03-01", midnight UTC) or an RFC 3339
// time. It must be in the future.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	var at time.Time
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return at, fmt.Errorf("want a positive number of days, like 90d")
		}
		at = now.AddDate(0, 0, n)
	} else if d, err := time.ParseDuration(s); err == nil {
		at = now.Add(d)
	} else if t, err := time.Parse(time.DateOnly, s); err == nil {
		at = t
	} else if t, err := time.Parse(time.RFC3339, s); err == nil {
		at = t
	} else {
		return at, fmt.Errorf("want days (90d), a duration (720h), a date (2027-03-01) or an RFC 3339 time")
	}
	if !at.After(now) {
		return at, fmt.Errorf("%s is not in the future", at.UTC().Format(time.RFC3339))
	}
	return at.Truncate(time.Second), nil
}
