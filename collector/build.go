package collector

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/collector/host"
	"github.com/vigil-sh/vigil/collector/postgres"
	"github.com/vigil-sh/vigil/collector/probe"
	"github.com/vigil-sh/vigil/config"
)

// buildCollectors creates the collectors cfg turns on, the labels each one's
// metrics carry on /metrics, and a function that releases what they hold.
// Collectors are listed here explicitly, not registered by init side effects.
func buildCollectors(cfg *config.Config, logger *slog.Logger) (map[string]Collector, map[string]prometheus.Labels, func(), error) {
	collectors := map[string]Collector{}
	labels := map[string]prometheus.Labels{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, src := range sources(cfg) {
		var c Collector
		switch src.name {
		case CollectorInfrastructure:
			h, err := host.New(cfg.Collectors.Infrastructure, nil, logger.With("collector", src.name))
			if err != nil {
				closeAll()
				return nil, nil, nil, fmt.Errorf("collectors.infrastructure: %w", err)
			}
			c = h
		case CollectorDatabase:
			pg, err := postgres.New(cfg.Collectors.Database, logger.With("collector", src.name))
			if err != nil {
				closeAll()
				return nil, nil, nil, fmt.Errorf("collectors.database: %w", err)
			}
			closers = append(closers, pg.Close)
			c = pg
		case CollectorHealth:
			c = probe.New(cfg.Collectors.App.Health, src.strict)
		case CollectorTLS:
			tp, err := probe.NewTLS(cfg.Collectors.App.TLSProbe, cfg.TLSVersion())
			if err != nil {
				closeAll()
				return nil, nil, nil, fmt.Errorf("collectors.app: %w", err)
			}
			c = tp
		default:
			closeAll()
			return nil, nil, nil, fmt.Errorf("no collector named %q", src.name)
		}
		collectors[src.name] = c
		l := prometheus.Labels{"job": src.job}
		for k, v := range src.labels {
			l[k] = v
		}
		labels[src.name] = l
	}
	return collectors, labels, closeAll, nil
}
