package web

import (
	"cmp"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/prometheus/rules"

	vigilrules "github.com/vigil-sh/vigil/rules"
)

// alert is one pending or firing alert as /alerts lists it.
type alert struct {
	Name        string            `json:"name"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Value       alertValue        `json:"value"`
	ActiveAt    time.Time         `json:"activeAt"`
	FiredAt     *time.Time        `json:"firedAt,omitempty"`
	Group       string            `json:"group"`

	labelsKey string
}

// alertValue is a sample value: a JSON number, or a string for NaN and the
// infinities, which JSON numbers cannot hold.
type alertValue float64

// MarshalJSON implements json.Marshaler.
func (v alertValue) MarshalJSON() ([]byte, error) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return json.Marshal(strconv.FormatFloat(f, 'f', -1, 64))
	}
	return json.Marshal(f)
}

// alerts lists every pending and firing alert, firing first, then by name;
// ?state=firing or ?state=pending keeps one state.
func (h *Handler) alerts(c *gin.Context) {
	state := c.Query("state")
	switch state {
	case "", rules.StateFiring.String(), rules.StatePending.String():
	default:
		c.JSON(http.StatusBadRequest, errorBody(`state must be "firing" or "pending", not "`+state+`"`))
		return
	}
	c.JSON(http.StatusOK, visibleAlerts(c, h.activeAlerts(state)))
}

// activeAlerts returns the pending and firing alerts (of one state unless
// state is empty), firing first, then by name.
func (h *Handler) activeAlerts(state string) []alert {
	out := []alert{}
	if h.opts.Rules != nil {
		for _, g := range h.opts.Rules.RuleGroups() {
			for _, r := range g.Rules() {
				ar, ok := r.(*rules.AlertingRule)
				if !ok {
					continue
				}
				for _, a := range ar.ActiveAlerts() {
					if state != "" && a.State.String() != state {
						continue
					}
					out = append(out, newAlert(ar.Name(), g.Name(), a))
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b alert) int {
		if a.State != b.State {
			if a.State == rules.StateFiring.String() {
				return -1
			}
			if b.State == rules.StateFiring.String() {
				return 1
			}
		}
		return cmp.Or(
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Group, b.Group),
			cmp.Compare(a.labelsKey, b.labelsKey),
		)
	})
	return out
}

func newAlert(name, group string, a *rules.Alert) alert {
	out := alert{
		Name:        name,
		State:       a.State.String(),
		Severity:    a.Labels.Get("severity"),
		Labels:      a.Labels.Map(),
		Annotations: a.Annotations.Map(),
		Value:       alertValue(a.Value),
		ActiveAt:    a.ActiveAt,
		Group:       group,
		labelsKey:   a.Labels.String(),
	}
	if a.State == rules.StateFiring && !a.FiredAt.IsZero() {
		firedAt := a.FiredAt
		out.FiredAt = &firedAt
	}
	return out
}

// listDeadRules answers GET /api/v1/rules/dead: the rule inputs that have
// matched no series for alerts.absent_after.
func (h *Handler) listDeadRules(c *gin.Context) {
	list := []vigilrules.DeadRule{}
	if h.opts.DeadRules != nil {
		list = append(list, h.opts.DeadRules()...)
	}
	apiSuccess(c, list)
}
