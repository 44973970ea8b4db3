// Package promqlparse holds the one PromQL parser vigil uses outside the
// engine. Prometheus v0.311+ dropped the package-level parser functions
// (parser.ParseExpr and friends) and their global feature switches in favour
// of parser.NewParser(parser.Options{...}); the zero Options keep what vigil
// had with the old globals left at their defaults: no experimental functions,
// no binop fill modifiers, no unquoted UTF-8 names.
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
