//go:build tools

// Package vigil pins modules that later issues build on (Slack and Loki
// clients) without linking them into today's binary: `go mod tidy` reads
// files under every build tag, `go build` does not read this one.
package vigil

import (
	_ "github.com/slack-go/slack"
	_ "github.com/slack-go/slack/slacktest"
)
