package collector

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sh/vigil/config"
)

var (
	backupInfoDesc = prometheus.NewDesc("vigil_backup_schedule_info",
		"The backup schedule a config block promises (backup or disaster_recovery.backup); always 1.",
		[]string{"block", "schedule", "storage", "encryption", "compression"}, nil)
	backupRetentionDesc = prometheus.NewDesc("vigil_backup_retention_seconds",
		"How long the backups of a config block are kept.", []string{"block"}, nil)
	drObjectivesDesc = prometheus.NewDesc("vigil_dr_objectives_seconds",
		"disaster_recovery's recovery time (rto) and recovery point (rpo) objectives.", []string{"objective"}, nil)
	drReplicationDesc = prometheus.NewDesc("vigil_dr_replication_interval_seconds",
		"disaster_recovery.replication's interval; absent when replication is off.", []string{"region"}, nil)
)

// SeedInfo exports the seed's backup and disaster_recovery blocks as
// gauges, so that dashboards and rules (and the backup watch to come) can
// use the promises the config makes. It follows ApplyConfig.
type SeedInfo struct {
	cfg atomic.Pointer[config.Config]
}

// NewSeedInfo returns a SeedInfo registered on reg.
func NewSeedInfo(reg prometheus.Registerer) *SeedInfo {
	s := &SeedInfo{}
	if reg != nil {
		reg.MustRegister(s)
	}
	return s
}

// ApplyConfig makes cfg's blocks the exported ones.
func (s *SeedInfo) ApplyConfig(cfg *config.Config) error {
	s.cfg.Store(cfg)
	return nil
}

// Describe implements prometheus.Collector.
func (s *SeedInfo) Describe(ch chan<- *prometheus.Desc) {
	ch <- backupInfoDesc
	ch <- backupRetentionDesc
	ch <- drObjectivesDesc
	ch <- drReplicationDesc
}

// Collect implements prometheus.Collector.
func (s *SeedInfo) Collect(ch chan<- prometheus.Metric) {
	cfg := s.cfg.Load()
	if cfg == nil {
		return
	}
	backup := func(block string, b *config.BackupConfig) {
		if b == nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(backupInfoDesc, prometheus.GaugeValue, 1,
			block, b.Schedule, b.Storage, strconv.FormatBool(b.Encryption), strconv.FormatBool(b.Compression))
		ch <- prometheus.MustNewConstMetric(backupRetentionDesc, prometheus.GaugeValue,
			time.Duration(b.Retention).Seconds(), block)
	}
	backup("backup", cfg.Backup)
	if dr := cfg.DisasterRecovery; dr != nil {
		backup("disaster_recovery.backup", dr.Backup)
		ch <- prometheus.MustNewConstMetric(drObjectivesDesc, prometheus.GaugeValue, time.Duration(dr.RTO).Seconds(), "rto")
		ch <- prometheus.MustNewConstMetric(drObjectivesDesc, prometheus.GaugeValue, time.Duration(dr.RPO).Seconds(), "rpo")
		if r := dr.Replication; r != nil && r.Enabled {
			ch <- prometheus.MustNewConstMetric(drReplicationDesc, prometheus.GaugeValue, time.Duration(r.Interval).Seconds(), r.Region)
		}
	}
}
