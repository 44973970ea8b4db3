package web

import (
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// How the page writes sample values: as Grafana's panels do by default, so
// the page and the dashboards show the same figure. 99.99999999999848 reads
// "100", 0.012345 reads "0.0123": three significant digits or so, trailing
// zeros dropped, and a unit when the metric's name gives one.

// unit is what a sample value measures, as the metric's name says.
type unit int

const (
	unitNone unit = iota
	// unitPercent is a value from 0 to 100 (the seed's cpu_usage, error_rate).
	unitPercent
	// unitRatio is a value from 0 to 1, shown as a percentage (*_ratio).
	unitRatio
	// unitSeconds is a duration in seconds (*_seconds, *_duration).
	unitSeconds
	// unitBytes is a size in bytes (*_bytes).
	unitBytes
)

// unitOfMetric reads a unit from a metric name the way the seed and the
// Prometheus naming conventions write them; counters (_total, _count) are
// counts whatever their name says.
func unitOfMetric(name string) unit {
	name = strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_bucket")
	switch {
	case name == "" || strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_count"):
		return unitNone
	case strings.HasSuffix(name, "_seconds") || strings.HasSuffix(name, "_duration"):
		return unitSeconds
	case strings.HasSuffix(name, "_usage") || strings.HasSuffix(name, "_percent") || name == "error_rate" || strings.HasSuffix(name, "_error_rate"):
		return unitPercent
	case strings.HasSuffix(name, "_ratio"):
		return unitRatio
	case strings.HasSuffix(name, "_bytes"):
		return unitBytes
	}
	return unitNone
}

// unitOfExpr is the unit of the metrics an expression reads when they all
// agree, such as cpu_usage{app="app"} > 80 or
// histogram_quantile(0.99, rate(query_duration_seconds_bucket[5m])); none
// otherwise.
func unitOfExpr(expr parser.Expr) unit {
	u, first := unitNone, true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		got := unitOfMetric(vs.Name)
		if first {
			u, first = got, false
		} else if got != u {
			u = unitNone
		}
		return nil
	})
	return u
}

// formatValue writes v as Grafana writes it in unit u.
func formatValue(v float64, u unit) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	switch u {
	case unitPercent:
		return roundValue(v) + "%"
	case unitRatio:
		return roundValue(v*100) + "%"
	case unitSeconds:
		return formatSeconds(v)
	case unitBytes:
		return formatBytes(v)
	}
	return roundValue(v)
}

// roundValue is Grafana's toFixed with no decimals set: as many decimals as
// put three significant digits before the rounding (none for whole numbers
// and from 100 up), then trailing zeros dropped.
func roundValue(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	a := math.Abs(v)
	if a >= 1e15 || a < 1e-9 {
		// Past what decimals can say briefly.
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	decimals := 0
	if v != math.Trunc(v) {
		decimals = max(0, 2-int(math.Floor(math.Log10(a))))
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// formatSeconds is Grafana's "s" unit: ns, µs and ms below a second, s below
// a minute, then min, hour and day.
func formatSeconds(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0 s"
	case a < 1e-6:
		return roundValue(v*1e9) + " ns"
	case a < 1e-3:
		return roundValue(v*1e6) + " µs"
	case a < 1:
		return roundValue(v*1e3) + " ms"
	case a < 60:
		return roundValue(v) + " s"
	case a < 3600:
		return roundValue(v/60) + " min"
	case a < 86400:
		return roundValue(v/3600) + " hour"
	}
	return roundValue(v/86400) + " day"
}

// formatBytes is Grafana's "bytes" unit (IEC): B, KiB, MiB, …
func formatBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return roundValue(v) + " " + units[i]
}
