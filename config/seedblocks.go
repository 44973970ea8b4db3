package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BackupConfig is the seed's backup block: what the backups promise. vigil
// validates it and exports it (vigil_backup_* gauges) so that dashboards and
// rules can use it, and its schedule gives backup_missed (drwatch.go).
type BackupConfig struct {
	// Schedule is a five-field cron expression (minute hour day month weekday).
	Schedule    string   `yaml:"schedule"`
	Retention   Duration `yaml:"retention"`
	Storage     string   `yaml:"storage"`
	Encryption  bool     `yaml:"encryption"`
	Compression bool     `yaml:"compression"`
	// Grace is how late a backup may finish after its schedule's period
	// before backup_missed fires (drwatch.go); a tenth of the period, at
	// least a minute, when not set.
	Grace Duration `yaml:"grace"`
	// Metric is the name of a gauge a backup job exposes (scraped by vigil)
	// holding the Unix time of its last successful backup; backup_missed
	// and rpo_at_risk read it beside POST /api/v1/backups.
	Metric string `yaml:"metric"`
}

// DisasterRecoveryConfig is the seed's disaster_recovery block: the recovery
// time and point objectives, the backups and the replication behind them.
// vigil validates and exports it (vigil_dr_* gauges).
type DisasterRecoveryConfig struct {
	RTO         Duration           `yaml:"rto"`
	RPO         Duration           `yaml:"rpo"`
	Backup      *BackupConfig      `yaml:"backup"`
	Replication *ReplicationConfig `yaml:"replication"`
	// RPOWarning is the fraction of the rpo above which rpo_at_risk warns
	// (drwatch.go); 0.5 when not set.
	RPOWarning float64 `yaml:"rpo_warning"`
	// RTOEscalation is the fraction of the rto after which a down incident
	// still open escalates to its ladder's last level (notifier/rto.go);
	// 0.5 when not set.
	RTOEscalation float64 `yaml:"rto_escalation"`
	// DownAlerts are the alerts whose incidents count against the rto;
	// DefaultDownAlerts when not set.
	DownAlerts []string `yaml:"down_alerts"`
}

// ReplicationConfig is disaster_recovery.replication.
type ReplicationConfig struct {
	Enabled  bool     `yaml:"enabled"`
	Region   string   `yaml:"region"`
	Interval Duration `yaml:"interval"`
}

// EncryptionConfig is the seed's encryption block. vigil acts on in_transit
// (its own certificate and the app's TLS); at_rest is checked against the
// device under data_dir and otherwise recorded (seedsecurity.go).
type EncryptionConfig struct {
	InTransit *InTransitConfig `yaml:"in_transit"`
	AtRest    *AtRestConfig    `yaml:"at_rest"`
}

// InTransitConfig is encryption.in_transit.
type InTransitConfig struct {
	// Algorithm is the lowest TLS version allowed: "TLS 1.2" or "TLS 1.3".
	Algorithm string `yaml:"algorithm"`
	// CertificateRotation is how old a certificate may grow before it must
	// be replaced; vigil's own rules alert before it is.
	CertificateRotation Duration `yaml:"certificate_rotation"`
	// CertificateStorage is where the certificates are kept (ACM, Vault);
	// recorded and exported, not read.
	CertificateStorage string `yaml:"certificate_storage"`
}

// SecurityConfig is the seed's security block: cloud security groups,
// recorded and checked against vigil's port (seedsecurity.go).
type SecurityConfig struct {
	Groups []SecurityGroupConfig `yaml:"groups"`
}

// TLSVersions are the accepted values of encryption.in_transit.algorithm.
var tlsVersions = map[string]string{
	"tls 1.2": "TLS 1.2", "tls1.2": "TLS 1.2", "tlsv1.2": "TLS 1.2",
	"tls 1.3": "TLS 1.3", "tls1.3": "TLS 1.3", "tlsv1.3": "TLS 1.3",
}

// TLSVersion returns encryption.in_transit.algorithm as "TLS 1.2" or
// "TLS 1.3", or "" when it is not set.
func (c *Config) TLSVersion() string {
	if e := c.Encryption; e != nil && e.InTransit != nil {
		return tlsVersions[strings.ToLower(strings.TrimSpace(e.InTransit.Algorithm))]
	}
	return ""
}

func (c *Config) validateSeedBlocks(r *reporter) {
	c.validateSecurityBlocks(r)
	c.validateDRWatch(r)
	if b := c.Backup; b != nil {
		validateBackup(r, "backup", b)
	}
	if dr := c.DisasterRecovery; dr != nil {
		if dr.RTO <= 0 {
			r.valueErr(0, "disaster_recovery.rto", "is required and must be more than 0 (how long a recovery may take, e.g. 4h)")
		}
		if dr.RPO <= 0 {
			r.valueErr(0, "disaster_recovery.rpo", "is required and must be more than 0 (how much data may be lost, e.g. 1h)")
		}
		if dr.Backup != nil {
			validateBackup(r, "disaster_recovery.backup", dr.Backup)
		}
		if rep := dr.Replication; rep != nil && rep.Enabled {
			if rep.Interval <= 0 {
				r.valueErr(0, "disaster_recovery.replication.interval", "must be more than 0 when replication is enabled")
			} else if dr.RPO > 0 && rep.Interval > dr.RPO {
				r.valueErr(0, "disaster_recovery.replication.interval", "%s is longer than the rpo %s: replication this slow cannot meet it",
					rep.Interval, dr.RPO)
			}
		}
	}
	if e := c.Encryption; e != nil && e.InTransit != nil {
		it := e.InTransit
		if it.Algorithm != "" && c.TLSVersion() == "" {
			r.valueErr(0, "encryption.in_transit.algorithm", "%q is not a TLS version vigil knows (use TLS 1.2 or TLS 1.3)", it.Algorithm)
		}
		if it.CertificateRotation < 0 {
			r.valueErr(0, "encryption.in_transit.certificate_rotation", "must not be negative")
		}
	}
}

func validateBackup(r *reporter, path string, b *BackupConfig) {
	if strings.TrimSpace(b.Schedule) == "" {
		r.valueErr(0, joinPath(path, "schedule"), "is required (a cron expression such as \"0 0 * * *\")")
	} else if err := checkCron(b.Schedule); err != nil {
		r.valueErr(0, joinPath(path, "schedule"), "%q is not a cron schedule: %v", b.Schedule, err)
	}
	if _, given := r.positions[joinPath(path, "retention")]; !given {
		r.valueErr(0, joinPath(path, "retention"), "is required (how long backups are kept, e.g. 30d)")
	} else if b.Retention <= 0 {
		r.valueErr(0, joinPath(path, "retention"), "must be more than 0")
	}
	if strings.TrimSpace(b.Storage) == "" {
		r.valueErr(0, joinPath(path, "storage"), "is required (where the backups go, e.g. S3)")
	}
}

// cronFields are the five fields of a cron schedule: name, lowest, highest
// and the names the field accepts (counted from lowest).
var cronFields = []struct {
	name     string
	min, max int
	names    []string
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// cronMacros are the @ shorthands cron accepts.
var cronMacros = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// checkCron checks a five-field cron schedule: each field is *, a value, a
// range a-b, a list of those, each with an optional /step; months and
// weekdays also by name.
func checkCron(s string) error {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "@") {
		for _, m := range cronMacros {
			if s == m {
				return nil
			}
		}
		return fmt.Errorf("unknown shorthand %q (use %s)", s, strings.Join(cronMacros, ", "))
	}
	fs := strings.Fields(s)
	if len(fs) != len(cronFields) {
		return fmt.Errorf("has %d fields; want 5 (minute hour day-of-month month day-of-week)", len(fs))
	}
	for i, f := range fs {
		spec := cronFields[i]
		for _, part := range strings.Split(f, ",") {
			if err := checkCronPart(part, spec.min, spec.max, spec.names); err != nil {
				return fmt.Errorf("%s %q: %w", spec.name, f, err)
			}
		}
	}
	return nil
}

func checkCronPart(part string, lo, hi int, names []string) error {
	rng, step, hasStep := strings.Cut(part, "/")
	if hasStep {
		n, err := strconv.Atoi(step)
		if err != nil || n <= 0 {
			return fmt.Errorf("step %q is not a positive number", step)
		}
	}
	if rng == "*" {
		return nil
	}
	from, to, isRange := strings.Cut(rng, "-")
	a, err := cronValue(from, lo, hi, names)
	if err != nil {
		return err
	}
	if !isRange {
		return nil
	}
	b, err := cronValue(to, lo, hi, names)
	if err != nil {
		return err
	}
	if b < a {
		return fmt.Errorf("range %s runs backwards", rng)
	}
	return nil
}

func cronValue(s string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return lo + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d is outside %d-%d", v, lo, hi)
	}
	return v, nil
}

// certificateRules are vigil's own rules that encryption.in_transit's
// certificate_rotation asks for: vigil's certificate must be replaced before
// it is older than the rotation period (the alert fires a margin before:
// a tenth of the period, at most 7 days), and must not come near expiry.
func (c *Config) certificateRules() []RuleConfig {
	e := c.Encryption
	if e == nil || e.InTransit == nil {
		return nil
	}
	var out []RuleConfig
	app := c.Collectors.App
	probed := app != nil && app.TLSProbe != nil
	appLabels := func() map[string]string { return map[string]string{"app": app.Labels["app"]} }
	if probed && c.TLSVersion() != "" {
		out = append(out, RuleConfig{
			Name: "app_tls_version_below_policy", Condition: "probe_tls_version_meets_policy == 0",
			Duration: Duration(5 * time.Minute), Severity: "warning", Labels: appLabels(),
			Summary:     "{{ $labels.app }} negotiates a TLS version below the policy",
			Description: fmt.Sprintf("{{ $labels.instance }} negotiated a TLS version below encryption.in_transit.algorithm (%s).", c.TLSVersion()),
		})
	}
	if e.InTransit.CertificateRotation <= 0 {
		return out
	}
	rotation := time.Duration(e.InTransit.CertificateRotation)
	margin := min(7*24*time.Hour, rotation/10)
	due := rotation - margin
	if probed {
		out = append(out, RuleConfig{
			Name:        "app_certificate_rotation_due",
			Condition:   fmt.Sprintf("time() - probe_tls_certificate_not_before_timestamp_seconds > %d", int64(due.Seconds())),
			Duration:    Duration(5 * time.Minute),
			Severity:    "warning",
			Labels:      appLabels(),
			Summary:     "{{ $labels.app }}'s TLS certificate is due for rotation",
			Description: fmt.Sprintf("The certificate {{ $labels.instance }} serves is older than %s; encryption.in_transit.certificate_rotation is %s.", Duration(due), Duration(rotation)),
		}, RuleConfig{
			Name:        "app_certificate_expiring",
			Condition:   fmt.Sprintf("probe_tls_certificate_expiry_days < %g", margin.Hours()/24),
			Duration:    Duration(5 * time.Minute),
			Severity:    "critical",
			Labels:      appLabels(),
			Summary:     "{{ $labels.app }}'s TLS certificate expires soon",
			Description: fmt.Sprintf("The certificate {{ $labels.instance }} serves expires in less than %s.", Duration(margin)),
		})
	}
	return append(out, []RuleConfig{
		{
			Name:        "vigil_certificate_rotation_due",
			Condition:   fmt.Sprintf("time() - vigil_tls_certificate_not_before_timestamp_seconds > %d", int64(due.Seconds())),
			Duration:    Duration(5 * time.Minute),
			Severity:    "warning",
			Labels:      map[string]string{"app": "vigil"},
			Summary:     "vigil's TLS certificate is due for rotation",
			Description: fmt.Sprintf("The certificate vigil serves ({{ $labels.subject_cn }}) is older than %s; encryption.in_transit.certificate_rotation is %s.", Duration(due), Duration(rotation)),
		},
		{
			Name:        "vigil_certificate_expiring",
			Condition:   fmt.Sprintf("vigil_tls_certificate_not_after_timestamp_seconds - time() < %d", int64(margin.Seconds())),
			Duration:    Duration(5 * time.Minute),
			Severity:    "critical",
			Labels:      map[string]string{"app": "vigil"},
			Summary:     "vigil's TLS certificate expires soon",
			Description: fmt.Sprintf("The certificate vigil serves ({{ $labels.subject_cn }}) expires in less than %s.", Duration(margin)),
		},
	}...)
}
