package collector

import (
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// Names of the collectors vigil serves under CollectorsPath and the jobs that
// scrape them.
const (
	CollectorInfrastructure = "infrastructure"
	CollectorDatabase       = "database"
	CollectorHealth         = "health"
	// CollectorTLS is the probe of the app's TLS endpoint (collectors.app.tls_probe).
	CollectorTLS = "tls"
	// JobNode scrapes collectors.infrastructure.targets (node_exporters).
	JobNode = "node"
)

// source is a collector served at CollectorsPath+name and scraped by job.
type source struct {
	name     string
	job      string
	labels   map[string]string // app, environment, service, instance and the collector's own labels
	interval time.Duration
	timeout  time.Duration
	// strict: the collector fails (503) when its source is down, so that the
	// job's up follows the source.
	strict bool
}

// sources lists the collectors cfg turns on.
func sources(cfg *config.Config) []source {
	var out []source
	col := cfg.Collectors
	add := func(name, job string, m config.CollectorMetrics, defApp, instance string, timeout time.Duration, strict bool) {
		lbls := map[string]string{}
		for k, v := range m.Labels {
			lbls[k] = v
		}
		if lbls["app"] == "" {
			lbls["app"] = defApp
		}
		addCommonLabels(cfg, lbls)
		if instance != "" {
			lbls["instance"] = instance
		}
		interval := time.Duration(m.Interval)
		if interval <= 0 {
			interval = cfg.Interval()
		}
		if interval <= 0 {
			interval = defaultInterval
		}
		if timeout <= 0 {
			timeout = defaultMaxTimeout
		}
		out = append(out, source{name: name, job: job, labels: lbls, interval: interval,
			timeout: min(timeout, interval), strict: strict})
	}
	if i := col.Infrastructure; i != nil {
		host, _ := os.Hostname()
		add(CollectorInfrastructure, CollectorInfrastructure, i.CollectorMetrics, "infrastructure", host, 0, true)
	}
	if db := col.Database; db != nil {
		// The collector's own timeout plus a margin for the HTTP hop.
		add(CollectorDatabase, CollectorDatabase, db.CollectorMetrics, "database", DSNAddress(db.DSN.Value()),
			time.Duration(db.Timeout)+time.Second, true)
	}
	if a := col.App; a != nil && a.Health != nil {
		m := a.CollectorMetrics
		m.Interval = a.Health.Interval
		job, strict := CollectorHealth, false
		if !appHasMetrics(a) {
			// No metrics endpoint: the probe is the app's scrape, so the app's
			// up follows its health.
			job, strict = JobApp, true
		}
		add(CollectorHealth, job, m, defaultAppLabel, urlHost(a.Health.URL), time.Duration(a.Health.Timeout)+time.Second, strict)
	}
	if a := col.App; a != nil && a.TLSProbe != nil {
		m := a.CollectorMetrics
		m.Interval = a.TLSProbe.Interval
		add(CollectorTLS, CollectorTLS, m, defaultAppLabel, a.TLSProbe.Address, time.Duration(a.TLSProbe.Timeout)+time.Second, false)
	}
	return out
}

// appHasMetrics reports whether the app collector names a metrics endpoint.
func appHasMetrics(a *config.AppCollectorConfig) bool {
	return len(a.Targets) > 0 || a.Port != 0 || len(a.FileSD) > 0
}

// DSNAddress returns host:port of a PostgreSQL DSN, URL or key=value form,
// for the `instance` label; it never returns the password.
func DSNAddress(dsn string) string {
	if dsn == "" {
		return ""
	}
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "localhost"
		}
		if port == "" {
			port = "5432"
		}
		return net.JoinHostPort(host, port)
	}
	host, port := "localhost", "5432"
	for _, f := range strings.Fields(dsn) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "host":
			host = strings.Trim(v, "'")
		case "port":
			port = strings.Trim(v, "'")
		}
	}
	return net.JoinHostPort(host, port)
}

func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
