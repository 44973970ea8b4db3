package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
)

// Defaults of alerts.forward, Prometheus's own (alertmanager_config's
// timeout, --alertmanager.notification-queue-capacity).
const (
	DefaultForwardTimeout       = 10 * time.Second
	DefaultForwardQueueCapacity = 10000
)

// ForwardConfig is alerts.forward: a sidecar sends its firing and resolved
// alerts to every listed gateway (Alertmanager's API v2, POST
// /api/v2/alerts), as Prometheus sends to every Alertmanager of a cluster,
// and then notifies nobody itself unless NotifyLocally.
type ForwardConfig struct {
	// URLs are the gateways, http(s)://host:port with an optional path
	// prefix; each gets every alert.
	URLs []string `yaml:"urls"`
	// Token is sent as "Authorization: Bearer <token>"; TokenFile is read
	// at each send (a rotated token needs no reload). Give one or neither.
	Token     Secret `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// NotifyLocally keeps the sidecar's own escalation and receivers as
	// well; by default a forwarding sidecar notifies nobody itself.
	NotifyLocally bool `yaml:"notify_locally"`
	// Timeout bounds one POST; default 10s.
	Timeout Duration `yaml:"timeout"`
	// QueueCapacity is how many alerts wait per gateway before the oldest
	// are dropped (prometheus_notifications_dropped_total); default 10000.
	QueueCapacity int `yaml:"queue_capacity"`
	// TLSConfig is Prometheus's tls_config (as in remote_write).
	TLSConfig *ForwardTLSConfig `yaml:"tls_config"`
}

// ForwardTLSConfig is the part of Prometheus's tls_config a forwarder uses.
type ForwardTLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// ForwardTimeout returns timeout, or its default.
func (f *ForwardConfig) ForwardTimeout() time.Duration {
	if f.Timeout <= 0 {
		return DefaultForwardTimeout
	}
	return time.Duration(f.Timeout)
}

// ForwardQueueCapacity returns queue_capacity, or its default.
func (f *ForwardConfig) ForwardQueueCapacity() int {
	if f.QueueCapacity <= 0 {
		return DefaultForwardQueueCapacity
	}
	return f.QueueCapacity
}

// validateForward checks alerts.forward.
func (c *Config) validateForward(r *reporter) {
	f := c.Alerts.Forward
	if f == nil {
		return
	}
	const path = "alerts.forward"
	if len(f.URLs) == 0 {
		r.valueErr(0, joinPath(path, "urls"), "lists no gateway; give at least one URL such as http://vigil-gateway:9090")
	}
	seen := map[string]int{}
	for i, raw := range f.URLs {
		p := indexPath(joinPath(path, "urls"), i)
		u, err := url.Parse(raw)
		switch {
		case raw == "":
			r.valueErr(0, p, "is empty")
			continue
		case err != nil:
			r.valueErr(0, p, "%q is not a URL: %v", redactUserinfo(raw), err)
			continue
		case u.Scheme != "http" && u.Scheme != "https":
			r.valueErr(0, p, "%q must be an http or https URL", redactUserinfo(raw))
			continue
		case u.Host == "":
			r.valueErr(0, p, "%q has no host", raw)
			continue
		case u.User != nil:
			r.valueErr(0, p, "%q carries a user or password; use token or token_file", u.Redacted())
			continue
		case u.RawQuery != "" || u.Fragment != "":
			r.valueErr(0, p, "%q must not have a query or fragment (vigil posts to <url>/api/v2/alerts)", raw)
			continue
		}
		if err := promconfig.CheckTargetAddress(model.LabelValue(u.Host)); err != nil {
			r.valueErr(0, p, "%q: %v", raw, err)
			continue
		}
		key := strings.TrimSuffix(u.String(), "/")
		if first, dup := seen[key]; dup {
			r.valueErr(0, p, "%q is listed twice (first as urls[%d])", raw, first)
		}
		seen[key] = i
	}
	if f.Token != "" && f.TokenFile != "" {
		r.keyErr(0, joinPath(path, "token_file"), "token and token_file are both set; give one")
	}
	if f.Timeout < 0 {
		r.valueErr(0, joinPath(path, "timeout"), "%q must not be negative", f.Timeout)
	}
	if f.QueueCapacity < 0 {
		r.valueErr(0, joinPath(path, "queue_capacity"), "%d must not be negative", f.QueueCapacity)
	}
	files := map[string]string{"token_file": f.TokenFile}
	if t := f.TLSConfig; t != nil {
		files["tls_config.ca_file"] = t.CAFile
		files["tls_config.cert_file"] = t.CertFile
		files["tls_config.key_file"] = t.KeyFile
		if (t.CertFile == "") != (t.KeyFile == "") {
			r.valueErr(0, joinPath(path, "tls_config"), "cert_file and key_file go together; give both or neither")
		}
	}
	dir := filepath.Dir(c.File)
	for _, key := range sortedKeys(files) {
		if files[key] == "" {
			continue
		}
		p := resolvePath(dir, files[key])
		if key == "token_file" {
			// Read now so that a missing or empty token is told at load,
			// with its line; Prometheus's client reads it again at each send.
			data, err := readLimited(p, MaxSecretFileSize)
			switch {
			case err != nil:
				r.valueErr(0, joinPath(path, key), "cannot read the token: %v", err)
			case strings.TrimSpace(string(data)) == "":
				r.valueErr(0, joinPath(path, key), "%s is empty", p)
			}
			continue
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			r.valueErr(0, joinPath(path, key), "cannot read the file: %v", err)
		case !fi.Mode().IsRegular():
			r.valueErr(0, joinPath(path, key), "%s is %v (it is %s)", p, ErrNotRegular, fileKind(fi.Mode()))
		}
	}
}

// resolveForwardPaths makes alerts.forward's files relative to the config
// file's directory.
func (c *Config) resolveForwardPaths(dir string) {
	f := c.Alerts.Forward
	if f == nil {
		return
	}
	f.TokenFile = resolvePath(dir, f.TokenFile)
	if t := f.TLSConfig; t != nil {
		t.CAFile = resolvePath(dir, t.CAFile)
		t.CertFile = resolvePath(dir, t.CertFile)
		t.KeyFile = resolvePath(dir, t.KeyFile)
	}
}

// ForwardTargets are alerts.forward as Prometheus's notifier takes it: one
// alertmanager_config per URL (each URL may have its own scheme and path
// prefix) with global.external_labels, and the static targets of each, keyed
// as the notifier keys its alertmanager sets ("config-0", ...). With no
// forward block the config has no alertmanagers.
func (c *Config) ForwardTargets() (*promconfig.Config, map[string][]*targetgroup.Group, error) {
	pc := &promconfig.Config{GlobalConfig: promconfig.DefaultGlobalConfig}
	pc.GlobalConfig.ExternalLabels = labels.FromMap(c.Global.ExternalLabels)
	pc.GlobalConfig.MetricNameValidationScheme = model.UTF8Validation
	tgs := map[string][]*targetgroup.Group{}
	f := c.Alerts.Forward
	if f == nil {
		return pc, tgs, nil
	}
	hc := commonconfig.DefaultHTTPClientConfig
	switch {
	case f.TokenFile != "":
		hc.Authorization = &commonconfig.Authorization{Type: "Bearer", CredentialsFile: f.TokenFile}
	case f.Token != "":
		hc.Authorization = &commonconfig.Authorization{Type: "Bearer", Credentials: commonconfig.Secret(f.Token)}
	}
	if t := f.TLSConfig; t != nil {
		hc.TLSConfig = commonconfig.TLSConfig{
			CAFile:             t.CAFile,
			CertFile:           t.CertFile,
			KeyFile:            t.KeyFile,
			ServerName:         t.ServerName,
			InsecureSkipVerify: t.InsecureSkipVerify,
		}
	}
	if err := hc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("alerts.forward: %w", err)
	}
	// URLs of one scheme and path prefix share one alertmanager_config, as
	// the targets of one Prometheus alertmanagers entry do: a reload that
	// keeps them keeps their queues.
	type set struct {
		scheme, prefix string
		hosts          []model.LabelSet
	}
	var sets []*set
	for i, raw := range f.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("alerts.forward.urls[%d]: %w", i, err)
		}
		prefix := strings.TrimSuffix(u.Path, "/")
		var s *set
		for _, o := range sets {
			if o.scheme == u.Scheme && o.prefix == prefix {
				s = o
			}
		}
		if s == nil {
			s = &set{scheme: u.Scheme, prefix: prefix}
			sets = append(sets, s)
		}
		s.hosts = append(s.hosts, model.LabelSet{model.AddressLabel: model.LabelValue(u.Host)})
	}
	for i, s := range sets {
		am := promconfig.DefaultAlertmanagerConfig
		am.HTTPClientConfig = hc
		am.Scheme = s.scheme
		am.PathPrefix = s.prefix
		am.Timeout = model.Duration(f.ForwardTimeout())
		pc.AlertingConfig.AlertmanagerConfigs = append(pc.AlertingConfig.AlertmanagerConfigs, &am)
		tgs[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{Targets: s.hosts, Source: "alerts.forward"}}
	}
	return pc, tgs, nil
}
