//go:build !linux

package main

import (
	"log/slog"
	"time"
)

// releaseStartupPages is Linux-only (MADV_PAGEOUT).
func releaseStartupPages(*slog.Logger, time.Duration, <-chan struct{}) {}
