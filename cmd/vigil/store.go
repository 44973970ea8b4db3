package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/pgstore"
)

// storeOpenTimeout bounds connecting to a shared store and migrating it at
// start.
const storeOpenTimeout = 30 * time.Second

// openIncidentStore opens the store of incidents, deliveries, silences and
// the key-value spaces (users and roles, audit log, deploys): the bbolt
// file in data_dir, or the PostgreSQL database of storage.incidents, which
// gateways share.
func openIncidentStore(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (notifier.Store, error) {
	dsn := string(cfg.Storage.Incidents)
	if dsn == "" {
		store, err := notifier.OpenBoltStore(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("opening the incident store in %s: %w", cfg.DataDir, err)
		}
		// One process claims nothing: vigil_store_* read 0.
		notifier.NewStoreMetrics(reg)
		return store, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	store, err := pgstore.Open(ctx, dsn, pgstore.Options{}, logger.With("component", "store"), reg)
	if err != nil {
		return nil, fmt.Errorf("opening the incident store of storage.incidents: %w", err)
	}
	lease := time.Duration(cfg.Storage.Lease)
	if lease <= 0 {
		lease = notifier.DefaultLease
	}
	logger.Info("incident store shared in PostgreSQL", "store", store.Describe(), "lease", lease)
	return store, nil
}
