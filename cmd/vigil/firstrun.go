package main

import (
	"fmt"
	"net"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
)

// openListenWarning names the address vigil listens on when it is reachable
// beyond this machine while authentication is off (no users, development),
// and returns "" otherwise. The built-in default listens on 127.0.0.1; a
// config that asks for more (compose's development setup does) still runs,
// but says plainly what is open.
func openListenWarning(cfg *config.Config) string {
	if !auth.Open(cfg) {
		return ""
	}
	if cfg.ListensOnLoopback() {
		return ""
	}
	addr := cfg.ListenAddress()
	host, _, _ := net.SplitHostPort(addr)
	what := addr
	if host == "" || host == "0.0.0.0" || host == "::" {
		what = addr + " (every interface)"
	}
	return fmt.Sprintf("OPEN TO THE NETWORK: vigil listens on %s with authentication off: anyone who can reach it "+
		"has every permission; listen on 127.0.0.1 or configure users", what)
}
