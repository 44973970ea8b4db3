package collector

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
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
	firewallRuleDesc = prometheus.NewDesc("vigil_firewall_rule_info",
		"A rule of the firewall block or of a security group (block); recorded, not enforced by vigil; always 1.",
		[]string{"block", "direction", "port", "protocol", "cidr", "description"}, nil)
	networkPolicyPortDesc = prometheus.NewDesc("vigil_network_policy_port_info",
		"A port a network.policies entry lets in; recorded, not applied by vigil; always 1.",
		[]string{"policy", "namespace", "pod_selector", "protocol", "port"}, nil)
	atRestDesc = prometheus.NewDesc("vigil_encryption_at_rest_info",
		"encryption.at_rest as configured; recorded, not verified except for data_dir (vigil_data_dir_encrypted); always 1.",
		[]string{"algorithm", "key_storage"}, nil)
	keyRotationDesc = prometheus.NewDesc("vigil_encryption_key_rotation_seconds",
		"encryption.at_rest.key_rotation; recorded, not verified.", nil, nil)
	certStorageDesc = prometheus.NewDesc("vigil_encryption_certificate_storage_info",
		"encryption.in_transit.certificate_storage; recorded, not read; always 1.", []string{"storage"}, nil)
	dataDirEncryptedDesc = prometheus.NewDesc("vigil_data_dir_encrypted",
		"1 when vigil's data_dir lies on a dm-crypt device (or one built on it), 0 when on a plain device; absent when vigil cannot tell (no block device of its own, not Linux).",
		[]string{"data_dir", "mountpoint", "device"}, nil)
)

// SeedInfo exports the seed's backup, disaster_recovery, firewall,
// network, security.groups and encryption blocks as gauges, so that
// dashboards and rules (and the backup watch to come) can use the promises
// the config makes, and checks whether data_dir lies on an encrypted device.
// It follows ApplyConfig.
type SeedInfo struct {
	// metrics are built from the config by ApplyConfig; they do not change
	// between configs, so a scrape only sends them.
	metrics atomic.Pointer[[]prometheus.Metric]
	paths   blockPaths
	logger  *slog.Logger
}

// dataDirState is the outcome of the last data_dir check.
type dataDirState struct {
	dir   string
	dev   dataDirDevice
	known bool
}

// NewSeedInfo returns a SeedInfo registered on reg; logger (nil for none)
// hears when vigil cannot tell whether data_dir is encrypted.
func NewSeedInfo(reg prometheus.Registerer, logger *slog.Logger) *SeedInfo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &SeedInfo{paths: linuxBlockPaths, logger: logger}
	if reg != nil {
		reg.MustRegister(s)
	}
	return s
}

// ApplyConfig makes cfg's blocks the exported ones and checks the device
// under its data_dir (once per config: a mount does not change under a
// running vigil).
func (s *SeedInfo) ApplyConfig(cfg *config.Config) error {
	st := &dataDirState{dir: cfg.DataDir}
	if cfg.DataDir != "" {
		dev, err := checkDataDir(s.paths, cfg.DataDir)
		switch {
		case err == nil:
			st.dev, st.known = dev, true
		case cfg.Encryption != nil && cfg.Encryption.AtRest != nil:
			// The rule data_dir_not_encrypted cannot fire without the series: say so.
			level := slog.LevelWarn
			if !errors.Is(err, errUnknownDevice) {
				level = slog.LevelError
			}
			s.logger.Log(context.Background(), level, "encryption.at_rest: cannot tell whether data_dir is encrypted; vigil_data_dir_encrypted is not exported",
				"data_dir", cfg.DataDir, "err", err)
		default:
			s.logger.Debug("cannot tell whether data_dir is encrypted", "data_dir", cfg.DataDir, "err", err)
		}
	}
	var ms []prometheus.Metric
	ch := make(chan prometheus.Metric)
	go func() {
		defer close(ch)
		s.collectConfig(ch, cfg)
		s.collectSecurity(ch, cfg, st)
	}()
	for m := range ch {
		ms = append(ms, m)
	}
	s.metrics.Store(&ms)
	return nil
}

// Describe implements prometheus.Collector.
func (s *SeedInfo) Describe(ch chan<- *prometheus.Desc) {
	ch <- backupInfoDesc
	ch <- backupRetentionDesc
	ch <- drObjectivesDesc
	ch <- drReplicationDesc
	ch <- firewallRuleDesc
	ch <- networkPolicyPortDesc
	ch <- atRestDesc
	ch <- keyRotationDesc
	ch <- certStorageDesc
	ch <- dataDirEncryptedDesc
}

// Collect implements prometheus.Collector.
func (s *SeedInfo) Collect(ch chan<- prometheus.Metric) {
	if ms := s.metrics.Load(); ms != nil {
		for _, m := range *ms {
			ch <- m
		}
	}
}

// collectConfig sends the backup and disaster_recovery series of cfg.
func (s *SeedInfo) collectConfig(ch chan<- prometheus.Metric, cfg *config.Config) {
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

func (s *SeedInfo) collectSecurity(ch chan<- prometheus.Metric, cfg *config.Config, st *dataDirState) {
	// Two rules of one block that differ only in a key not exported would
	// be one series twice; the first wins.
	seen := map[string]bool{}
	rules := func(block, direction string, rs []config.FirewallRule) {
		for _, r := range rs {
			cidr := r.Source
			if direction == "outbound" {
				cidr = r.Destination
			}
			lv := []string{block, direction, r.Port.String(), strings.ToLower(r.Protocol), cidr, r.Description}
			if key := strings.Join(lv, "\xff"); !seen[key] {
				seen[key] = true
				ch <- prometheus.MustNewConstMetric(firewallRuleDesc, prometheus.GaugeValue, 1, lv...)
			}
		}
	}
	if f := cfg.Firewall; f != nil {
		rules("firewall", "inbound", f.Inbound)
		rules("firewall", "outbound", f.Outbound)
	}
	for _, g := range cfg.Security.Groups {
		rules("security.groups."+g.Name, "inbound", g.Ingress)
		rules("security.groups."+g.Name, "outbound", g.Egress)
	}
	if n := cfg.Network; n != nil {
		for _, p := range n.Policies {
			sel := make([]string, 0, len(p.PodSelector.MatchLabels))
			for _, k := range slices.Sorted(maps.Keys(p.PodSelector.MatchLabels)) {
				sel = append(sel, k+"="+p.PodSelector.MatchLabels[k])
			}
			for _, in := range p.Ingress {
				for _, pp := range in.Ports {
					proto := strings.ToUpper(pp.Protocol)
					if proto == "" {
						proto = "TCP"
					}
					port := strconv.Itoa(pp.Port)
					if pp.EndPort > pp.Port {
						port += "-" + strconv.Itoa(pp.EndPort)
					}
					lv := []string{p.Name, p.Namespace, strings.Join(sel, ","), proto, port}
					if key := "np\xff" + strings.Join(lv, "\xff"); !seen[key] {
						seen[key] = true
						ch <- prometheus.MustNewConstMetric(networkPolicyPortDesc, prometheus.GaugeValue, 1, lv...)
					}
				}
			}
		}
	}
	if e := cfg.Encryption; e != nil {
		if a := e.AtRest; a != nil {
			ch <- prometheus.MustNewConstMetric(atRestDesc, prometheus.GaugeValue, 1, a.Algorithm, a.KeyStorage)
			if a.KeyRotation > 0 {
				ch <- prometheus.MustNewConstMetric(keyRotationDesc, prometheus.GaugeValue, time.Duration(a.KeyRotation).Seconds())
			}
		}
		if it := e.InTransit; it != nil && it.CertificateStorage != "" {
			ch <- prometheus.MustNewConstMetric(certStorageDesc, prometheus.GaugeValue, 1, it.CertificateStorage)
		}
	}
	if st.known {
		v := 0.0
		if st.dev.Encrypted {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(dataDirEncryptedDesc, prometheus.GaugeValue, v, st.dir, st.dev.MountPoint, st.dev.Device)
	}
}
