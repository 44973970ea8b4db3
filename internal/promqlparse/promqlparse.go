// Package promqlparse holds the one PromQL parser vigil uses outside the
// engine. Prometheus v0.311+ dropped the package-level parser functions
// (parser.ParseExpr and friends) and their global feature switches in favour
// of parser.NewParser(parser.Options{...}). The zero Options keep the
// switches vigil left off: no experimental functions, no binop fill
// modifiers, no unquoted UTF-8 names. What v0.316 no longer gates is
// accepted, as in Prometheus 3.16, where v0.310 refused it: duration
// expressions (`x[5m+1m]`), the anchored and smoothed range modifiers and
// first_over_time (docs/rules.md).
package promqlparse

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Parser is safe for concurrent use: every call builds its own parse state.
var Parser = parser.NewParser(parser.Options{})

// ParseExpr parses a PromQL expression.
func ParseExpr(input string) (parser.Expr, error) { return Parser.ParseExpr(input) }

// ParseMetric parses a series description such as `up{job="x"}`.
func ParseMetric(input string) (labels.Labels, error) { return Parser.ParseMetric(input) }

// ParseMetricSelector parses a selector into its label matchers.
func ParseMetricSelector(input string) ([]*labels.Matcher, error) {
	return Parser.ParseMetricSelector(input)
}

// ParseSeriesDesc parses a promtool-style series description with values.
func ParseSeriesDesc(input string) (labels.Labels, []parser.SequenceValue, error) {
	return Parser.ParseSeriesDesc(input)
}
