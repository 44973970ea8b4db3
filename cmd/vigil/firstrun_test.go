package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
)

func TestOpenListenWarning(t *testing.T) {
	// The built-in default has no users and listens on loopback only.
	require.Equal(t, "127.0.0.1:9090", config.Default().ListenAddress())
	require.Empty(t, openListenWarning(config.Default()))

	for _, tc := range []struct {
		listen, want string
	}{
		{":9090", "vigil listens on :9090 (every interface) with authentication off"},
		{"0.0.0.0:9090", "vigil listens on 0.0.0.0:9090 (every interface)"},
		{"192.0.2.7:9090", "vigil listens on 192.0.2.7:9090 with authentication off"},
		{"localhost:9090", ""},
		{"[::1]:9090", ""},
	} {
		cfg := config.Default()
		cfg.Server.Listen = tc.listen
		got := openListenWarning(cfg)
		if tc.want == "" {
			require.Empty(t, got, tc.listen)
			continue
		}
		require.Contains(t, got, tc.want)
	}

	// With a user who has a token, authentication is on: nothing is open.
	// (Users without tokens leave a development vigil open.)
	cfg := config.Default()
	cfg.Server.Listen = ":9090"
	cfg.Users = []config.UserConfig{{Name: "alice", Role: "admin"}}
	require.NotEmpty(t, openListenWarning(cfg), "no user has a token")
	_, hash, err := auth.NewToken()
	require.NoError(t, err)
	cfg.Users[0].Tokens = []string{hash}
	require.Empty(t, openListenWarning(cfg))
}
