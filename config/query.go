package config

import "time"

// Defaults of the query block: a sidecar's values, not Prometheus's (50
// million samples, 2 minutes, 20 queries at once), which let one query take
// gigabytes. One query of DefaultQueryMaxSamples holds about 16 MB of
// samples (and as much again while its slices grow), so
// DefaultQueryMaxConcurrency of them fit beside vigil's own ~60 MB in a
// 128 MiB container.
const (
	DefaultQueryMaxSamples     = 1_000_000
	DefaultQueryTimeout        = 30 * time.Second
	DefaultQueryMaxConcurrency = 2
	DefaultQueryLookbackDelta  = 5 * time.Minute
	// DefaultQueryMaxLength bounds one PromQL expression (or match[]
	// selector). PromQL's parser and evaluator take time that grows faster
	// than the length (a 90 KB `1+1+...` takes half a minute); 16 KiB
	// parses in tens of milliseconds and holds any dashboard's query.
	DefaultQueryMaxLength = Size(16 << 10)
	// DefaultQueryMaxFormSize bounds a query request's form: the URL's
	// query string and the body together.
	DefaultQueryMaxFormSize = Size(256 << 10)
)

// QueryConfig bounds what the Prometheus HTTP API (/api/v1/query and the
// others Grafana calls) may cost, so that no caller with view_metrics can
// starve vigil of memory or CPU. Rule evaluation has its own engine and is
// not bound by these. A value left out is its default.
type QueryConfig struct {
	// MaxSamples is how many samples one query may hold in memory at once
	// (Prometheus's --query.max-samples).
	MaxSamples int `yaml:"max_samples"`
	// Timeout cuts off a query that runs longer (--query.timeout).
	Timeout Duration `yaml:"timeout"`
	// MaxConcurrency is how many queries run at once; more wait up to
	// Timeout (--query.max-concurrency).
	MaxConcurrency int `yaml:"max_concurrency"`
	// LookbackDelta is how far back an instant vector looks for a sample
	// (--query.lookback-delta).
	LookbackDelta Duration `yaml:"lookback_delta"`
	// MaxLength bounds one expression or selector, in bytes.
	MaxLength Size `yaml:"max_length"`
	// MaxFormSize bounds a query request's query string plus body, in bytes.
	MaxFormSize Size `yaml:"max_form_size"`
}

// defaultQuery is the query block with every default.
func defaultQuery() QueryConfig {
	return QueryConfig{
		MaxSamples:     DefaultQueryMaxSamples,
		Timeout:        Duration(DefaultQueryTimeout),
		MaxConcurrency: DefaultQueryMaxConcurrency,
		LookbackDelta:  Duration(DefaultQueryLookbackDelta),
		MaxLength:      DefaultQueryMaxLength,
		MaxFormSize:    DefaultQueryMaxFormSize,
	}
}

func (c *Config) validateQuery(r *reporter) {
	q := c.Query
	if q.MaxSamples <= 0 {
		r.valueErr(0, "query.max_samples", "%d must be more than 0", q.MaxSamples)
	}
	if q.Timeout <= 0 {
		r.valueErr(0, "query.timeout", "%q must be more than 0", q.Timeout)
	}
	if q.MaxConcurrency <= 0 {
		r.valueErr(0, "query.max_concurrency", "%d must be more than 0", q.MaxConcurrency)
	}
	if q.LookbackDelta <= 0 {
		r.valueErr(0, "query.lookback_delta", "%q must be more than 0", q.LookbackDelta)
	}
	if q.MaxLength <= 0 {
		r.valueErr(0, "query.max_length", "%q must be more than 0", q.MaxLength)
	}
	if q.MaxFormSize < q.MaxLength {
		r.valueErr(0, "query.max_form_size", "%q must be at least query.max_length (%s)", q.MaxFormSize, q.MaxLength)
	}
}
