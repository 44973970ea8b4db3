package web

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier/slack"
)

// dialFrom opens a TCP connection to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c (after answering, or
// not) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	// io.Copy reads to EOF; a reset is a close too.
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// rawHealth sends GET /health on c and returns the status line.
func rawHealth(t *testing.T, c net.Conn) string {
	t.Helper()
	_, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}

// TestSlowClientsAreCutOff: raw TCP clients that send headers or bodies
// slowly, or stop half way, lose their connection at the read timeout; one
// address holds at most maxConnsPerClient connections, so others are still
// served; and an answer that takes longer than the read timeout still
// arrives (issue 13 item 6).
func TestSlowClientsAreCutOff(t *testing.T) {
	reloadTook := 1500 * time.Millisecond
	h := New(&Options{
		SlackInteractions: slack.NewInteractionHandler("signing-secret", nil, nil, nil),
		Reload: func() error {
			time.Sleep(reloadTook)
			return nil
		},
	}, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, h.ApplyConfig(testConfig()))
	h.server.readHeaderTimeout = 300 * time.Millisecond
	h.server.readTimeout = 600 * time.Millisecond
	h.server.maxConnsPerClient = 6
	addr, _ := startServing(t, h)

	// An attacker fills its share: bodies cut short and headers never ended.
	var held []net.Conn
	for i := range h.server.maxConnsPerClient {
		c := dialFrom(t, "127.0.0.1", addr)
		if i%2 == 0 {
			_, err := io.WriteString(c, "POST /slack/interactions HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
				"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\npayload=")
			require.NoError(t, err)
		} else {
			_, err := io.WriteString(c, "POST /slack/interactions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
			require.NoError(t, err)
		}
		held = append(held, c)
	}
	// Let the server accept them all before the next one comes.
	time.Sleep(100 * time.Millisecond)
	// One more from the same address is closed at once; another address
	// is served.
	require.True(t, closedWithin(dialFrom(t, "127.0.0.1", addr), 200*time.Millisecond),
		"a client holds more than maxConnsPerClient connections")
	require.Equal(t, "HTTP/1.1 200 OK", rawHealth(t, dialFrom(t, "127.0.0.2", addr)))

	// Every partial request loses its connection at the read timeout.
	for i, c := range held {
		require.True(t, closedWithin(c, 2*time.Second), "partial request %d still holds its connection", i)
	}
	require.Eventually(t, func() bool {
		c := dialFrom(t, "127.0.0.1", addr)
		_, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		if err != nil {
			return false
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "HTTP/1.1 200")
	}, 2*time.Second, 50*time.Millisecond, "the address got its connections back")

	// The read timeout bounds reading, not answering.
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/-/reload", nil)
	require.NoError(t, err)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.GreaterOrEqual(t, time.Since(start), reloadTook)
}
