package rules

import (
	"errors"
	"fmt"
	"maps"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
)

// Annotation and label names a seed rule's own fields become.
const (
	SeverityLabel         = "severity"
	SummaryAnnotation     = "summary"
	DescriptionAnnotation = "description"
	RunbookAnnotation     = "runbook_url"
	DashboardAnnotation   = "dashboard"
)

// TranslateRule turns a seed-format rule into a Prometheus alerting rule: the
// condition, scoped to the rule's labels.app and labels.environment, is the
// expression; duration is `for`; severity joins the labels; summary,
// description, runbook (as runbook_url) and dashboard join the annotations,
// winning over an annotation of the same name. The result is validated as
// Prometheus validates rule files (label names, templates).
func TranslateRule(r config.RuleConfig) (rulefmt.Rule, error) {
	if r.Name == "" {
		return rulefmt.Rule{}, errors.New("name must be set")
	}
	if r.Condition == "" {
		return rulefmt.Rule{}, errors.New("condition must be set")
	}
	if r.Duration < 0 {
		return rulefmt.Rule{}, fmt.Errorf("duration %s is negative", r.Duration)
	}
	expr, err := ScopeString(r.Condition, r.Labels[AppLabel], r.Labels[EnvironmentLabel])
	if err != nil {
		return rulefmt.Rule{}, fmt.Errorf("condition: %w", err)
	}

	out := rulefmt.Rule{
		Alert: r.Name,
		Expr:  expr,
		For:   model.Duration(r.Duration),
	}
	if len(r.Labels) > 0 || r.Severity != "" {
		out.Labels = maps.Clone(r.Labels)
		if out.Labels == nil {
			out.Labels = map[string]string{}
		}
		if r.Severity != "" {
			out.Labels[SeverityLabel] = r.Severity
		}
	}
	extra := map[string]string{
		SummaryAnnotation:     r.Summary,
		DescriptionAnnotation: r.Description,
		RunbookAnnotation:     r.Runbook,
		DashboardAnnotation:   r.Dashboard,
	}
	out.Annotations = maps.Clone(r.Annotations)
	for k, v := range extra {
		if v == "" {
			continue
		}
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[k] = v
	}

	// Rule.Validate reports positions only for the fields checked above, so
	// an empty node is enough for the remaining checks.
	var errs []error
	for _, werr := range out.Validate(rulefmt.RuleNode{}, model.UTF8Validation, promqlparse.Parser) {
		errs = append(errs, &werr)
	}
	if len(errs) > 0 {
		return rulefmt.Rule{}, errors.Join(errs...)
	}
	return out, nil
}
