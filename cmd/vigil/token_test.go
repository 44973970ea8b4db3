package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
)

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90d":                  now.AddDate(0, 0, 90),
		"36h":                  now.Add(36 * time.Hour),
		"2027-03-01":           time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
		"2027-03-01T08:00:00Z": time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC),
	} {
		got, err := parseExpiry(in, now)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: got %s", in, got)
	}
	for _, in := range []string{"0d", "-3d", "xd", "-1h", "2020-01-01", "tomorrow", ""} {
		_, err := parseExpiry(in, now)
		require.Error(t, err, in)
	}
}

func TestTokenNewExpires(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, tokenNew([]string{"new", "--expires", "30d"}, &out, &errOut), errOut.String())
	var token, hash string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			token = v
		}
		if v, ok := strings.CutPrefix(line, "hash:  "); ok {
			hash = v
		}
	}
	require.True(t, auth.Verify(token, hash))
	require.Contains(t, hash, "@")
	require.Contains(t, out.String(), "expires: ")

	require.Equal(t, 2, tokenNew([]string{"new", "--expires"}, &out, &errOut))
	require.Equal(t, 2, tokenNew([]string{"new", "--expires", "yesterday"}, &out, &errOut))
	require.Equal(t, 2, tokenNew([]string{"old"}, &out, &errOut))
}
