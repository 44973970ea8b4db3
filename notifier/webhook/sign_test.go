package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// verify is an independent implementation of the Standard Webhooks check.
func verify(t *testing.T, key []byte, h http.Header, body []byte) bool {
	t.Helper()
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get(HeaderID) + "." + h.Get(HeaderTimestamp) + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(h.Get(HeaderSignature)))
}

func TestSign(t *testing.T) {
	body := []byte(`{"status":"firing"}`)
	ts := time.Unix(1700000000, 0)
	for name, tc := range map[string]struct {
		secret string
		key    []byte
	}{
		"plain":  {"s3cret", []byte("s3cret")},
		"whsec_": {"whsec_" + base64.StdEncoding.EncodeToString([]byte("raw key bytes")), []byte("raw key bytes")},
	} {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			require.NoError(t, SetHeaders(h, tc.secret, "msg_1", ts, body))
			require.Equal(t, "msg_1", h.Get(HeaderID))
			require.Equal(t, "1700000000", h.Get(HeaderTimestamp))
			require.True(t, verify(t, tc.key, h, body))
			require.False(t, verify(t, tc.key, h, []byte(`{"status":"resolved"}`)), "a changed body must not verify")
		})
	}
	_, err := Sign("whsec_!!!", "id", ts, body)
	require.Error(t, err)

	h := http.Header{}
	require.NoError(t, SetHeaders(h, "", "id", ts, body))
	require.Empty(t, h.Get(HeaderSignature))
}
