package postgres

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/testutil"
)

func TestRedactor(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  string
		pw   string // as pgx parsed it
		in   string
		want string
	}{
		{
			name: "whole DSN",
			dsn:  "postgres://u:s3cret@h/db", pw: "s3cret",
			in: "cannot use postgres://u:s3cret@h/db", want: "cannot use xxxxx",
		},
		{
			name: "password alone",
			dsn:  "postgres://u:s3cret@h/db", pw: "s3cret",
			in: "auth with s3cret failed", want: "auth with xxxxx failed",
		},
		{
			name: "percent-encoded and decoded",
			dsn:  "postgres://u:p%40ss%2Fw@h/db", pw: "p@ss/w",
			in: "p@ss/w and p%40ss%2Fw", want: "xxxxx and xxxxx",
		},
		{
			name: "key=value, quoted",
			dsn:  "host=h user=u password='a b\\'c' dbname=d", pw: "a b'c",
			in: "got 'a b\\'c' then a b'c", want: "got xxxxx then xxxxx",
		},
		{
			name: "key=value, unparsable: password found by pattern",
			dsn:  "host=h password=zz9plural port=x", pw: "",
			in: "bad: password=zz9plural", want: "bad: password=xxxxx",
		},
		{
			name: "URL pgx cannot parse: raw userinfo",
			dsn:  "postgres://u:qq7unique@h:bad/db", pw: "",
			in: "at u:qq7unique@h", want: "at u:xxxxx@h",
		},
		{
			name: "no password: nothing else changes",
			dsn:  "postgres://u@h/db", pw: "",
			in: "user u on h", want: "user u on h",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, newRedactor(tc.dsn, tc.pw).redact(tc.in))
		})
	}
}

func TestSafeDSN(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
		{"postgresql://u:s3cret@h:5432/db", "postgresql://u:xxxxx@h:5432/db"},
		{"host=h user=u password='s 3' dbname=d", "host=h user=u password=xxxxx dbname=d"},
		{"postgres://u:s3cret@h:port/db", "xxxxx"},
	} {
		require.Equal(t, tc.want, safeDSN(tc.dsn), tc.dsn)
	}
}

func TestRedactedErrorIs(t *testing.T) {
	r := newRedactor("postgres://u:pw@h/db", "pw")
	err := r.wrap(fmt.Errorf("query with pw: %w", context.DeadlineExceeded))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, "query with xxxxx: context deadline exceeded", err.Error())
	require.NoError(t, r.wrap(nil))
}

// TestPasswordNeverLeaks points the collector at servers that refuse a
// unique password, one of them quoting it back, and at a closed port, and
// looks for the password in the error, the log and the metrics.
func TestPasswordNeverLeaks(t *testing.T) {
	const secret = "Zq8-vigil-leak-canary-41d7"
	quiet := refusingServer(t, false)
	echo := refusingServer(t, true)
	closed := closedPort(t)
	special := secret + "@:/?"

	for _, tc := range []struct {
		name   string
		dsn    string
		server *refuser // nil: nothing answers
		pw     string   // the password the server must have received
	}{
		{name: "URL, server refuses", dsn: "postgres://app:" + secret + "@" + quiet.addr + "/db?sslmode=disable", server: quiet, pw: secret},
		{name: "URL, server quotes the password back", dsn: "postgresql://app:" + secret + "@" + echo.addr + "/db?sslmode=disable", server: echo, pw: secret},
		{name: "URL, percent-encoded password", dsn: "postgres://app:" + url.QueryEscape(special) + "@" + echo.addr + "/db?sslmode=disable", server: echo, pw: special},
		{name: "key=value", dsn: fmt.Sprintf("host=%s port=%s user=app password='%s' dbname=db sslmode=disable", echo.host, echo.port, secret), server: echo, pw: secret},
		{name: "connection refused", dsn: "postgres://app:" + secret + "@" + closed + "/db?sslmode=disable"},
		{name: "unparsable DSN", dsn: "postgres://app:" + secret + "@127.0.0.1:notaport/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.Buffer
			logger := debugLogger(&logs)
			c, err := New(&config.DatabaseCollectorConfig{DSN: config.Secret(tc.dsn)}, logger)
			if err == nil {
				defer c.Close()
				var fs families
				fs, err = gather(context.Background(), c)
				require.Empty(t, fs)
			}
			require.Error(t, err)
			// What the collector Set does with a failed collection.
			logger.Warn("collection failed", "collector", "database", "err", err)

			if tc.server != nil {
				require.Contains(t, tc.server.received(), tc.pw, "the server must have been sent the password")
			}
			if tc.server == echo {
				require.Contains(t, err.Error(), "(password "+redacted+")", "the quoted password is replaced")
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), logs.String()} {
				require.NotContains(t, text, "leak-canary")
				require.NotContains(t, text, url.QueryEscape(special))
			}
			require.Contains(t, logs.String(), "collection failed")
		})
	}
}

// refuser is a fake PostgreSQL server that asks for a cleartext password
// and refuses it, optionally quoting it in the error.
type refuser struct {
	addr, host, port string

	mtx       sync.Mutex
	passwords []string
}

func (r *refuser) received() []string {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	return append([]string(nil), r.passwords...)
}

func refusingServer(t *testing.T, echo bool) *refuser {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	r := &refuser{addr: ln.Addr().String()}
	r.host, r.port, _ = net.SplitHostPort(r.addr)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(conn, echo)
		}
	}()
	return r
}

func (r *refuser) serve(conn net.Conn, echo bool) {
	defer conn.Close()
	be := pgproto3.NewBackend(conn, conn)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.SSLRequest); ok {
			if _, err := conn.Write([]byte("N")); err != nil {
				return
			}
			continue
		}
		break
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if be.Flush() != nil || be.SetAuthType(pgproto3.AuthTypeCleartextPassword) != nil {
		return
	}
	msg, err := be.Receive()
	if err != nil {
		return
	}
	pm, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return
	}
	r.mtx.Lock()
	r.passwords = append(r.passwords, pm.Password)
	r.mtx.Unlock()
	text := `password authentication failed for user "app"`
	if echo {
		text += " (password " + pm.Password + ")"
	}
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: text})
	_ = be.Flush() // the client may be gone
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mtx sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mtx.Lock()
		defer mtx.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mtx.Lock()
			conns = append(conns, conn)
			mtx.Unlock()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
