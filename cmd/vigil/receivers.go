package main

import (
	"fmt"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
	"github.com/vigil-sh/vigil/notifier/webhook"
)

// receivers builds the notifier's receivers from cfg.Receivers, plus the
// rollback webhook. The "log" receiver and `log:` receivers are the
// notifier's own.
func receivers(rb *rollback.Manager) func(*config.Config) (map[string]notifier.Receiver, error) {
	return func(cfg *config.Config) (map[string]notifier.Receiver, error) {
		out := map[string]notifier.Receiver{notifier.RollbackReceiver: rb.Receiver()}
		for _, rc := range cfg.Receivers {
			switch {
			case rc.Webhook != nil:
				r, err := webhook.New(rc.Name, rc.Webhook)
				if err != nil {
					return nil, fmt.Errorf("receiver %q: %w", rc.Name, err)
				}
				out[rc.Name] = r
			}
		}
		return out, nil
	}
}
