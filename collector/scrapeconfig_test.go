package collector

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

func baseConfig() *config.Config {
	return &config.Config{
		Service:     "checkout",
		Environment: "production",
		Metrics:     config.MetricsConfig{Interval: config.Duration(15 * time.Second), Path: "/metrics"},
	}
}

func withApp(app config.AppCollectorConfig) *config.Config {
	cfg := baseConfig()
	cfg.Collectors.App = &app
	return cfg
}

// wantJob is what a test expects of one scrape config.
type wantJob struct {
	job         string
	interval    time.Duration
	timeout     time.Duration
	scheme      string
	path        string
	honorLabels bool
	compression bool
	targets     []string
	// targetLabels are the labels one discovered target ends up with (after
	// the group's labels and relabeling), given discoveredLabels.
	discovered   map[string]string
	targetLabels map[string]string
	fileSD       []string
}

func TestScrapeConfigs(t *testing.T) {
	disabled := false
	enabled := true
	tests := []struct {
		name    string
		cfg     *config.Config
		self    string
		want    []wantJob
		wantErr string
	}{
		{
			name: "no app, no self",
			cfg:  baseConfig(),
		},
		{
			name: "seed app block",
			cfg: withApp(config.AppCollectorConfig{
				Targets:          []string{"localhost:8080"},
				CollectorMetrics: config.CollectorMetrics{Path: "/metrics", Labels: map[string]string{"app": "app"}},
			}),
			want: []wantJob{{
				job: "app", interval: 15 * time.Second, timeout: 10 * time.Second, scheme: "http", path: "/metrics",
				targets:      []string{"localhost:8080"},
				targetLabels: map[string]string{"app": "app", "environment": "production", "service": "checkout"},
			}},
		},
		{
			name: "port only, defaults",
			cfg:  withApp(config.AppCollectorConfig{CollectorMetrics: config.CollectorMetrics{Port: 8081}}),
			want: []wantJob{{
				job: "app", interval: 15 * time.Second, timeout: 10 * time.Second, scheme: "http", path: "/metrics",
				targets:      []string{"localhost:8081"},
				targetLabels: map[string]string{"app": "app", "environment": "production", "service": "checkout"},
			}},
		},
		{
			name: "short interval caps timeout; collector labels win over environment",
			cfg: withApp(config.AppCollectorConfig{
				Targets: []string{"10.0.0.5:9100"},
				Scheme:  "https",
				CollectorMetrics: config.CollectorMetrics{
					Path: "/prom", Interval: config.Duration(2 * time.Second),
					Labels: map[string]string{"app": "payments", "environment": "staging", "team": "core", "cost": "$5"},
				},
			}),
			want: []wantJob{{
				job: "app", interval: 2 * time.Second, timeout: 2 * time.Second, scheme: "https", path: "/prom",
				compression:  true,
				targets:      []string{"10.0.0.5:9100"},
				targetLabels: map[string]string{"app": "payments", "environment": "staging", "service": "checkout", "team": "core", "cost": "$5"},
			}},
		},
		{
			name: "explicit timeout, sub-second interval",
			cfg: func() *config.Config {
				c := withApp(config.AppCollectorConfig{Targets: []string{"127.0.0.1:1"}, Timeout: config.Duration(100 * time.Millisecond)})
				c.Metrics.Interval = config.Duration(200 * time.Millisecond)
				return c
			}(),
			want: []wantJob{{
				job: "app", interval: 200 * time.Millisecond, timeout: 100 * time.Millisecond, scheme: "http", path: "/metrics",
				targets:      []string{"127.0.0.1:1"},
				targetLabels: map[string]string{"app": "app", "environment": "production", "service": "checkout"},
			}},
		},
		{
			name: "file_sd target keeps its own app label",
			cfg:  withApp(config.AppCollectorConfig{FileSD: []string{"/etc/vigil/targets/*.json"}}),
			want: []wantJob{{
				job: "app", interval: 15 * time.Second, timeout: 10 * time.Second, scheme: "http", path: "/metrics",
				compression:  true,
				fileSD:       []string{"/etc/vigil/targets/*.json"},
				discovered:   map[string]string{"__address__": "db:9187", "app": "database"},
				targetLabels: map[string]string{"app": "database", "environment": "production", "service": "checkout"},
			}},
		},
		{
			name: "self only, custom metrics path",
			cfg: func() *config.Config {
				c := baseConfig()
				c.Metrics.Path = "/internal/metrics"
				return c
			}(),
			self: "127.0.0.1:9090",
			want: []wantJob{{
				job: "vigil", interval: 15 * time.Second, timeout: 10 * time.Second, scheme: "http", path: "/internal/metrics",
				targets:      []string{"127.0.0.1:9090"},
				targetLabels: map[string]string{"app": "vigil", "environment": "production", "service": "checkout"},
			}},
		},
		{
			name: "self explicitly enabled next to app",
			cfg: func() *config.Config {
				c := withApp(config.AppCollectorConfig{Targets: []string{"localhost:8080"}})
				c.Collectors.Self = &config.SelfCollectorConfig{Enabled: &enabled}
				return c
			}(),
			self: "localhost:9090",
			want: []wantJob{
				{
					job: "app", interval: 15 * time.Second, timeout: 10 * time.Second, scheme: "http", path: "/metrics",
					targets:      []string{"localhost:8080"},
					targetLabels: map[string]string{"app": "app", "environment": "production", "service": "checkout"},
				},
				{
					job: "vigil", interval: 15 * time.Second, timeout: 10 * time.Second, scheme: "http", path: "/metrics",
					targets:      []string{"localhost:9090"},
					targetLabels: map[string]string{"app": "vigil", "environment": "production", "service": "checkout"},
				},
			},
		},
		{
			name: "self disabled",
			cfg: func() *config.Config {
				c := baseConfig()
				c.Collectors.Self = &config.SelfCollectorConfig{Enabled: &disabled}
				return c
			}(),
			self: "localhost:9090",
		},
		{name: "nil config", cfg: nil, wantErr: "no configuration"},
		{
			name:    "nothing to scrape",
			cfg:     withApp(config.AppCollectorConfig{}),
			wantErr: "collectors.app: nothing to scrape",
		},
		{
			name:    "URL as target",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"http://localhost:8080/metrics"}}),
			wantErr: `collectors.app: targets[0]: target "http://localhost:8080/metrics" is not host:port`,
		},
		{
			name:    "bad port",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"localhost:http"}}),
			wantErr: `target "localhost:http" has no valid port`,
		},
		{
			name:    "port out of range",
			cfg:     withApp(config.AppCollectorConfig{CollectorMetrics: config.CollectorMetrics{Port: 70000}}),
			wantErr: "port 70000 is not a TCP port",
		},
		{
			name:    "bad scheme",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"a:1"}, Scheme: "ftp"}),
			wantErr: `scheme "ftp" is not http or https`,
		},
		{
			name:    "path without slash",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"a:1"}, CollectorMetrics: config.CollectorMetrics{Path: "metrics"}}),
			wantErr: `path "metrics" does not start with /`,
		},
		{
			name:    "timeout over interval",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"a:1"}, Timeout: config.Duration(time.Minute)}),
			wantErr: "timeout 1m0s is longer than the scrape interval 15s",
		},
		{
			name:    "file_sd not json or yaml",
			cfg:     withApp(config.AppCollectorConfig{FileSD: []string{"/etc/targets.txt"}}),
			wantErr: `file_sd[0]: "/etc/targets.txt" is not a .json, .yml or .yaml file`,
		},
		{
			name:    "file_sd glob in directory",
			cfg:     withApp(config.AppCollectorConfig{FileSD: []string{"/etc/*/targets.json"}}),
			wantErr: "only one * is allowed, and only in the file name",
		},
		{
			name:    "bad label name",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"a:1"}, CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"bad-name": "x"}}}),
			wantErr: `labels: "bad-name" is not a valid label name`,
		},
		{
			name:    "reserved label name",
			cfg:     withApp(config.AppCollectorConfig{Targets: []string{"a:1"}, CollectorMetrics: config.CollectorMetrics{Labels: map[string]string{"__address__": "x"}}}),
			wantErr: `labels: "__address__" is not a valid label name`,
		},
		{
			name:    "bad self target",
			cfg:     baseConfig(),
			self:    "http://localhost:9090",
			wantErr: "self scrape: target",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ScrapeConfigs(tt.cfg, tt.self)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i, w := range tt.want {
				checkScrapeConfig(t, w, got[i])
			}
		})
	}
}

func checkScrapeConfig(t *testing.T, w wantJob, sc *promconfig.ScrapeConfig) {
	t.Helper()
	require.Equal(t, w.job, sc.JobName)
	require.Equal(t, model.Duration(w.interval), sc.ScrapeInterval)
	require.Equal(t, model.Duration(w.timeout), sc.ScrapeTimeout)
	require.Equal(t, w.scheme, sc.Scheme)
	require.Equal(t, w.path, sc.MetricsPath)
	require.Equal(t, w.honorLabels, sc.HonorLabels)
	require.Equal(t, w.compression, sc.EnableCompression)
	require.True(t, sc.HonorTimestamps)
	require.Equal(t, promconfig.PrometheusText0_0_4, sc.ScrapeFallbackProtocol)
	require.Equal(t, model.UTF8Validation, sc.MetricNameValidationScheme)
	require.Equal(t, model.AllowUTF8, sc.MetricNameEscapingScheme)
	require.NotEmpty(t, sc.ScrapeProtocols, "Validate fills the accepted protocols")

	var (
		targets []string
		fileSD  []string
		group   model.LabelSet
	)
	for _, c := range sc.ServiceDiscoveryConfigs {
		switch c := c.(type) {
		case discovery.StaticConfig:
			for _, tg := range c {
				for _, tl := range tg.Targets {
					targets = append(targets, string(tl[model.AddressLabel]))
				}
				group = tg.Labels
			}
		case *file.SDConfig:
			fileSD = append(fileSD, c.Files...)
		default:
			t.Fatalf("unexpected discovery config %T", c)
		}
	}
	require.Equal(t, w.targets, targets)
	require.Equal(t, w.fileSD, fileSD)

	// Run one target's labels through the group labels and the relabeling,
	// as the scrape pool does, and compare the outcome.
	discovered := w.discovered
	if discovered == nil {
		discovered = map[string]string{model.AddressLabel: w.targets[0]}
	}
	b := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range group {
		b.Set(string(k), string(v))
	}
	for k, v := range discovered {
		b.Set(k, v)
	}
	require.True(t, relabel.ProcessBuilder(b, sc.RelabelConfigs...))
	got := b.Labels().Map()
	delete(got, model.AddressLabel)
	require.Equal(t, w.targetLabels, got)
}
