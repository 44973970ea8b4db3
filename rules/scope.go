// Package rules turns vigil's seed-format alert rules into Prometheus rules,
// scopes them to the rule's own app and environment, loads Prometheus rule
// files, runs them with Prometheus's rules manager and runs rule unit tests in
// promtool's format.
package rules

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// Label names a seed rule's scope is read from and written to.
const (
	AppLabel         = "app"
	EnvironmentLabel = "environment"
)

// Scope adds app=<app> and environment=<env> matchers to every vector
// selector in expr (including those inside range selectors and subqueries)
// that has no matcher of any kind on that label. An empty app or env adds
// nothing for that label. expr is changed in place.
func Scope(expr parser.Expr, app, env string) {
	if expr == nil || (app == "" && env == "") {
		return
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		addMatcher(vs, AppLabel, app)
		addMatcher(vs, EnvironmentLabel, env)
		return nil
	})
}

// addMatcher adds name="value" to vs unless value is empty or vs already
// constrains name: a user's own matcher, regex or negative, always wins.
func addMatcher(vs *parser.VectorSelector, name, value string) {
	if value == "" {
		return
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == name {
			return
		}
	}
	vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchEqual, name, value))
}

// ScopeString parses the PromQL expression q, scopes it as Scope does and
// returns it printed back.
func ScopeString(q string, app, env string) (string, error) {
	expr, err := promqlparse.ParseExpr(q)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", q, err)
	}
	Scope(expr, app, env)
	return expr.String(), nil
}
