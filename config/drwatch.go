package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// The rules the backup and disaster_recovery blocks give vigil's own group.
const (
	BackupMissedRuleName       = "backup_missed"
	RPOAtRiskRuleName          = "rpo_at_risk"
	ReplicationLaggingRuleName = "replication_lagging"
)

// The series the DR watch rules read: vigil's own (notifier/backup) and the
// database collector's (collector/postgres).
const (
	BackupLastSuccessMetric = "vigil_backup_last_success_timestamp_seconds"
	BackupWatchStartMetric  = "vigil_backup_watch_start_timestamp_seconds"
	ArchiverLastMetric      = "archiver_last_archived_timestamp_seconds"
	ArchiverPendingMetric   = "archiver_wal_pending"
	ReplicaLagMetric        = "replication_lag_seconds"
	ReplayLagMetric         = "replication_replay_lag_seconds"
)

// DefaultDownAlerts are the alerts whose incidents count against the rto
// when disaster_recovery.down_alerts is not set: the seed's instance_down
// and database_down and vigil's own app_down.
var DefaultDownAlerts = []string{"instance_down", "database_down", "app_down"}

// DefaultRPOWarning and DefaultRTOEscalation are the fractions used when
// disaster_recovery.rpo_warning and rto_escalation are not set.
const (
	DefaultRPOWarning    = 0.5
	DefaultRTOEscalation = 0.5
)

// RPOWarningFraction returns rpo_warning or its default.
func (dr *DisasterRecoveryConfig) RPOWarningFraction() float64 {
	if dr.RPOWarning > 0 {
		return dr.RPOWarning
	}
	return DefaultRPOWarning
}

// RTOEscalationFraction returns rto_escalation or its default.
func (dr *DisasterRecoveryConfig) RTOEscalationFraction() float64 {
	if dr.RTOEscalation > 0 {
		return dr.RTOEscalation
	}
	return DefaultRTOEscalation
}

// DownAlertNames returns down_alerts or DefaultDownAlerts.
func (dr *DisasterRecoveryConfig) DownAlertNames() []string {
	if len(dr.DownAlerts) > 0 {
		return dr.DownAlerts
	}
	return DefaultDownAlerts
}

// BackupDeadline is how long after a successful backup the next one must
// have succeeded: the schedule's period (CronPeriod) plus the grace.
func (b *BackupConfig) BackupDeadline() (time.Duration, error) {
	period, err := CronPeriod(b.Schedule)
	if err != nil {
		return 0, err
	}
	grace := time.Duration(b.Grace)
	if grace <= 0 {
		grace = max(time.Minute, period/10)
	}
	return period + grace, nil
}

// validateDRWatch checks the keys the DR watch adds to the seed's blocks.
func (c *Config) validateDRWatch(r *reporter) {
	for _, blk := range []struct {
		path string
		b    *BackupConfig
	}{{"backup", c.Backup}, {"disaster_recovery.backup", drBackup(c.DisasterRecovery)}} {
		if blk.b == nil {
			continue
		}
		if checkCron(blk.b.Schedule) == nil {
			if _, err := CronPeriod(blk.b.Schedule); err != nil {
				r.valueErr(0, joinPath(blk.path, "schedule"), "%v", err)
			}
		}
		if blk.b.Grace < 0 {
			r.valueErr(0, joinPath(blk.path, "grace"), "must not be negative")
		}
		if m := blk.b.Metric; m != "" && !model.IsValidLegacyMetricName(m) {
			r.valueErr(0, joinPath(blk.path, "metric"), "%q is not a metric name", m)
		}
	}
	dr := c.DisasterRecovery
	if dr == nil {
		return
	}
	if dr.RPOWarning < 0 || dr.RPOWarning >= 1 {
		r.valueErr(0, "disaster_recovery.rpo_warning", "%g must be a fraction of the rpo between 0 and 1 (e.g. 0.5)", dr.RPOWarning)
	}
	if dr.RTOEscalation < 0 || dr.RTOEscalation >= 1 {
		r.valueErr(0, "disaster_recovery.rto_escalation", "%g must be a fraction of the rto between 0 and 1 (e.g. 0.5)", dr.RTOEscalation)
	}
	for i, a := range dr.DownAlerts {
		if strings.TrimSpace(a) == "" {
			r.valueErr(0, indexPath("disaster_recovery.down_alerts", i), "an alert name is required")
		}
	}
}

func drBackup(dr *DisasterRecoveryConfig) *BackupConfig {
	if dr == nil {
		return nil
	}
	return dr.Backup
}

// lastBackupExpr is the newest successful backup's Unix time as vigil
// knows it: POST /api/v1/backups and the blocks' metrics, or, before any
// backup, when vigil started watching.
func (c *Config) lastBackupExpr() string {
	names := []string{BackupLastSuccessMetric}
	for _, b := range []*BackupConfig{c.Backup, drBackup(c.DisasterRecovery)} {
		if b != nil && b.Metric != "" && !slices.Contains(names, b.Metric) {
			names = append(names, b.Metric)
		}
	}
	sel := names[0]
	if len(names) > 1 {
		sel = fmt.Sprintf("{__name__=~%q}", strings.Join(names, "|"))
	}
	return fmt.Sprintf("(max(%s) or max(%s))", sel, BackupWatchStartMetric)
}

// replicationLagExpr is the lag of the replicas: replication_lag_seconds
// when vigil watches a replica, replication_replay_lag_seconds (per
// replica) when it watches the primary.
const replicationLagExpr = "(" + ReplicaLagMetric + " or " + ReplayLagMetric + ")"

// drRules are the rules the backup and disaster_recovery blocks ask for:
// backup_missed per backup schedule, rpo_at_risk (warning, then critical)
// and replication_lagging. They go into vigil's own rule group, so they
// are listed, silenced and reloaded like any other.
func (c *Config) drRules() []RuleConfig {
	var out []RuleConfig
	seen := map[string]bool{}
	for _, blk := range []struct {
		name string
		b    *BackupConfig
	}{{"backup", c.Backup}, {"disaster_recovery.backup", drBackup(c.DisasterRecovery)}} {
		if blk.b == nil {
			continue
		}
		deadline, err := blk.b.BackupDeadline()
		if err != nil || seen[blk.b.Schedule+"/"+deadline.String()] {
			continue
		}
		seen[blk.b.Schedule+"/"+deadline.String()] = true
		out = append(out, RuleConfig{
			Name:        BackupMissedRuleName,
			Condition:   fmt.Sprintf("time() - %s > %d", c.lastBackupExpr(), int64(deadline.Seconds())),
			Severity:    "critical",
			Labels:      map[string]string{"block": blk.name},
			Summary:     "No successful backup within the backup schedule",
			Description: fmt.Sprintf("The last successful backup is {{ $value | humanizeDuration }} old; %s.schedule %q with its grace allows %s.", blk.name, blk.b.Schedule, Duration(deadline)),
		})
	}
	dr := c.DisasterRecovery
	if dr == nil || dr.RPO <= 0 {
		return out
	}
	// What would be lost now: the least exposure of what protects the data.
	sources := []string{
		fmt.Sprintf(`label_replace(time() - %s, "source", "backup", "", "")`, c.lastBackupExpr()),
		fmt.Sprintf(`label_replace((time() - max(%s)) * max(%s), "source", "wal_archive", "", "")`, ArchiverLastMetric, ArchiverPendingMetric),
	}
	rep := dr.Replication
	if rep != nil && rep.Enabled {
		sources = append(sources, fmt.Sprintf(`label_replace(min(%s), "source", "replication", "", "")`, replicationLagExpr))
	}
	exposure := "min(" + strings.Join(sources, " or ") + ")"
	rpo := time.Duration(dr.RPO)
	warnAt := time.Duration(float64(rpo) * dr.RPOWarningFraction())
	out = append(out, RuleConfig{
		Name:        RPOAtRiskRuleName,
		Condition:   fmt.Sprintf("%s > %s <= %s", exposure, seconds(warnAt), seconds(rpo)),
		Severity:    "warning",
		Summary:     "Data at risk is nearing the RPO",
		Description: fmt.Sprintf("The newest protected copy (backup, archived WAL or replica) is {{ $value | humanizeDuration }} behind, over %g of the rpo %s.", dr.RPOWarningFraction(), Duration(rpo)),
	}, RuleConfig{
		Name:        RPOAtRiskRuleName,
		Condition:   fmt.Sprintf("%s > %s", exposure, seconds(rpo)),
		Severity:    "critical",
		Summary:     "Data at risk exceeds the RPO",
		Description: fmt.Sprintf("The newest protected copy (backup, archived WAL or replica) is {{ $value | humanizeDuration }} behind, more than the rpo %s.", Duration(rpo)),
	})
	if rep != nil && rep.Enabled && rep.Interval > 0 {
		out = append(out, RuleConfig{
			Name:        ReplicationLaggingRuleName,
			Condition:   fmt.Sprintf("%s > %s", replicationLagExpr, seconds(time.Duration(rep.Interval))),
			Duration:    Duration(time.Minute),
			Severity:    "warning",
			Summary:     "A replica lags more than the replication interval",
			Description: fmt.Sprintf("Replication lag is {{ $value | humanizeDuration }}, above disaster_recovery.replication.interval %s.", rep.Interval),
		})
	}
	return out
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// cronSpec is a parsed five-field cron schedule.
type cronSpec struct {
	minute, hour, dom, month, dow [61]bool
	domStar, dowStar              bool
}

var cronMacroSpecs = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

func parseCron(s string) (*cronSpec, error) {
	if err := checkCron(s); err != nil {
		return nil, err
	}
	s = strings.TrimSpace(s)
	if m, ok := cronMacroSpecs[s]; ok {
		s = m
	}
	fs := strings.Fields(s)
	spec := &cronSpec{domStar: strings.HasPrefix(fs[2], "*"), dowStar: strings.HasPrefix(fs[4], "*")}
	sets := []*[61]bool{&spec.minute, &spec.hour, &spec.dom, &spec.month, &spec.dow}
	for i, f := range fs {
		def := cronFields[i]
		for _, part := range strings.Split(f, ",") {
			rng, stepStr, hasStep := strings.Cut(part, "/")
			step := 1
			if hasStep {
				step, _ = strconv.Atoi(stepStr)
			}
			lo, hi := def.min, def.max
			if rng != "*" {
				from, to, isRange := strings.Cut(rng, "-")
				lo, _ = cronValue(from, def.min, def.max, def.names)
				hi = lo
				if isRange {
					hi, _ = cronValue(to, def.min, def.max, def.names)
				} else if hasStep {
					hi = def.max
				}
			}
			for v := lo; v <= hi; v += step {
				sets[i][v] = true
			}
		}
	}
	if spec.dow[7] {
		spec.dow[0] = true
	}
	return spec, nil
}

func (c *cronSpec) dayMatches(t time.Time) bool {
	if !c.month[int(t.Month())] {
		return false
	}
	dom, dow := c.dom[t.Day()], c.dow[int(t.Weekday())]
	switch {
	case c.domStar && c.dowStar:
		return true
	case c.domStar:
		return dow
	case c.dowStar:
		return dom
	default:
		// Both restricted: cron runs on either.
		return dom || dow
	}
}

// CronPeriod returns the longest time between two runs of a five-field
// cron schedule (in UTC): 24h for "0 0 * * *", 1m for "* * * * *", 72h for
// "0 9 * * 1-5" (Friday to Monday). A backup later than this is missed.
func CronPeriod(schedule string) (time.Duration, error) {
	spec, err := parseCron(schedule)
	if err != nil {
		return 0, err
	}
	// Nine years from a fixed day cover every calendar (29 February);
	// after the first run, 400 days show every gap of the others.
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var first, prev time.Time
	var longest time.Duration
	for d := 0; d < 9*366; d++ {
		day := start.AddDate(0, 0, d)
		if !first.IsZero() && day.Sub(first) > 400*24*time.Hour && longest > 0 {
			break
		}
		if !spec.dayMatches(day) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !spec.hour[h] {
				continue
			}
			for m := 0; m < 60; m++ {
				if !spec.minute[m] {
					continue
				}
				t := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
				if first.IsZero() {
					first = t
				} else {
					longest = max(longest, t.Sub(prev))
				}
				prev = t
			}
		}
	}
	if longest == 0 {
		return 0, fmt.Errorf("%q never runs twice", schedule)
	}
	return longest, nil
}
