package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/model/labels"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/internal/promqlparse"
	"github.com/vigil-sh/vigil/notifier"
)

// The Alertmanager API v2, as much of it as senders (Prometheus, vmalert,
// Grafana) and amtool use: alerts in, alerts and status out, silences mapped
// onto vigil's. docs/alertmanager-api.md says what is served and how.

// amPrefix is the Alertmanager API v2's path prefix.
const amPrefix = "/api/v2"

// permIngest lets a sender post alerts.
const permIngest = config.PermIngest

// maxAlertsBody bounds the body of POST /api/v2/alerts; Prometheus sends at
// most 256 alerts a post by default.
const maxAlertsBody = 8 << 20

// Alertmanager is what the Alertmanager API needs of the notifier.
type Alertmanager interface {
	IngestAlerts(ctx context.Context, alerts []notifier.PostedAlert) error
	PostedAlerts() ([]notifier.IngestedAlert, error)
}

// alertmanager answers 404 and returns nil when the API is not served.
func (h *Handler) alertmanager(c *gin.Context) Alertmanager {
	if h.opts.Alertmanager == nil {
		c.JSON(http.StatusNotFound, "the Alertmanager API is not served here")
		return nil
	}
	return h.opts.Alertmanager
}

// amError answers as Alertmanager does: the message as a JSON string.
func amError(c *gin.Context, code int, msg string) {
	c.JSON(code, msg)
}

// alertName names a posted alert in an error: its index and labels.
func alertName(i int, a notifier.PostedAlert) string {
	return fmt.Sprintf("alert %d %s", i, labels.FromMap(a.Labels).String())
}

// postAlerts answers POST /api/v2/alerts. Every valid alert is taken; when
// some are not, the answer is 400 naming each of them, as Alertmanager's.
// Taken means recorded durably: the incidents follow asynchronously. When
// the records cannot be written the answer is 500 (the sender posts
// again) and none was taken.
func (h *Handler) postAlerts(c *gin.Context) {
	am := h.alertmanager(c)
	if am == nil {
		return
	}
	var posted []notifier.PostedAlert
	if err := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxAlertsBody)).Decode(&posted); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			amError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes: send fewer alerts a post", maxAlertsBody))
			return
		}
		amError(c, http.StatusBadRequest, "the body is not a JSON array of alerts: "+err.Error())
		return
	}
	valid := make([]notifier.PostedAlert, 0, len(posted))
	var problems []string
	for i, a := range posted {
		// The alert is named (its labels sorted and written) only when
		// it is refused.
		if err := notifier.ValidatePostedAlert(&a); err != nil {
			problems = append(problems, alertName(i, a)+": "+strings.TrimPrefix(err.Error(), notifier.ErrInvalidAlert.Error()+": "))
			continue
		}
		if app := a.Labels["app"]; !mayOn(c, permIngest, app) {
			problems = append(problems, fmt.Sprintf("%s: user %q may not post alerts of app %q", alertName(i, a), requestUserOrAnonymous(c), app))
			continue
		}
		valid = append(valid, a)
	}
	if len(valid) > 0 {
		if err := am.IngestAlerts(c.Request.Context(), valid); err != nil {
			h.logger.Error("Failed to take posted alerts", "err", err)
			amError(c, http.StatusInternalServerError, err.Error())
			return
		}
	}
	if len(problems) > 0 {
		h.logger.Info("Posted alerts refused", "invalid", len(problems), "taken", len(valid),
			"client", c.ClientIP(), "first", problems[0])
		amError(c, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	c.Status(http.StatusOK)
}

// amReceiver is Alertmanager's receiver reference.
type amReceiver struct {
	Name string `json:"name"`
}

// amAlertStatus is Alertmanager's alert status.
type amAlertStatus struct {
	State       string   `json:"state"`
	SilencedBy  []string `json:"silencedBy"`
	InhibitedBy []string `json:"inhibitedBy"`
	MutedBy     []string `json:"mutedBy"`
}

// amAlert is Alertmanager's GettableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	Fingerprint  string            `json:"fingerprint"`
	Receivers    []amReceiver      `json:"receivers"`
	Status       amAlertStatus     `json:"status"`
}

// amFilter parses Alertmanager's filter parameters (`alertname="X"`).
func amFilter(c *gin.Context) ([]*amlabels.Matcher, bool) {
	var out []*amlabels.Matcher
	for _, f := range c.QueryArray("filter") {
		ms, err := amlabels.ParseMatchers(f)
		if err != nil {
			amError(c, http.StatusBadRequest, fmt.Sprintf("filter %q: %v", f, err))
			return nil, false
		}
		out = append(out, ms...)
	}
	return out, true
}

// boolParam reads a true/false parameter with its default.
func boolParam(c *gin.Context, name string, def bool) (bool, bool) {
	switch c.Query(name) {
	case "":
		return def, true
	case "true":
		return true, true
	case "false":
		return false, true
	}
	amError(c, http.StatusBadRequest, fmt.Sprintf("%s must be true or false", name))
	return false, false
}

// getAlerts answers GET /api/v2/alerts: the posted alerts that have not
// ended, by filter, active, silenced and receiver. vigil inhibits nothing,
// and every alert is processed at once.
func (h *Handler) getAlerts(c *gin.Context) {
	am := h.alertmanager(c)
	if am == nil {
		return
	}
	filter, ok := amFilter(c)
	if !ok {
		return
	}
	active, ok1 := boolParam(c, "active", true)
	silenced, ok2 := boolParam(c, "silenced", true)
	if !ok1 || !ok2 {
		return
	}
	var receiver *regexp.Regexp
	if r := c.Query("receiver"); r != "" {
		re, err := regexp.Compile("^(?:" + r + ")$")
		if err != nil {
			amError(c, http.StatusBadRequest, fmt.Sprintf("receiver %q: %v", r, err))
			return
		}
		receiver = re
	}
	list, err := am.PostedAlerts()
	if err != nil {
		amError(c, http.StatusInternalServerError, err.Error())
		return
	}
	out := []amAlert{}
	for _, a := range list {
		if !mayOn(c, permMonitor, a.Labels["app"]) || !matchesAll(filter, a.Labels) {
			continue
		}
		muted := len(a.SilencedBy) > 0
		if (muted && !silenced) || (!muted && !active) {
			continue
		}
		if receiver != nil && !slices.ContainsFunc(a.Receivers, receiver.MatchString) {
			continue
		}
		g := amAlert{
			Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, UpdatedAt: a.UpdatedAt,
			GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint,
			Receivers: []amReceiver{},
			Status:    amAlertStatus{State: "active", SilencedBy: []string{}, InhibitedBy: []string{}, MutedBy: []string{}},
		}
		if g.Annotations == nil {
			g.Annotations = map[string]string{}
		}
		for _, r := range a.Receivers {
			g.Receivers = append(g.Receivers, amReceiver{Name: r})
		}
		if muted {
			g.Status.State = "suppressed"
			g.Status.SilencedBy = a.SilencedBy
		}
		out = append(out, g)
	}
	c.JSON(http.StatusOK, out)
}

func matchesAll(ms []*amlabels.Matcher, ls map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(ls[m.Name]) {
			return false
		}
	}
	return true
}

// amMatcher is Alertmanager's silence matcher.
type amMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"`
}

// amSilence is Alertmanager's GettableSilence (and, without status and
// updatedAt, its PostableSilence).
type amSilence struct {
	ID        string      `json:"id,omitempty"`
	Matchers  []amMatcher `json:"matchers"`
	StartsAt  time.Time   `json:"startsAt"`
	EndsAt    time.Time   `json:"endsAt"`
	CreatedBy string      `json:"createdBy"`
	Comment   string      `json:"comment"`
	UpdatedAt *time.Time  `json:"updatedAt,omitempty"`
	Status    *struct {
		State string `json:"state"`
	} `json:"status,omitempty"`
}

// selectorOf writes Alertmanager matchers as a vigil silence's PromQL
// selector.
func selectorOf(ms []amMatcher) (string, error) {
	if len(ms) == 0 {
		return "", errors.New("at least one matcher is required")
	}
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		equal := m.IsEqual == nil || *m.IsEqual
		t := labels.MatchEqual
		switch {
		case m.IsRegex && equal:
			t = labels.MatchRegexp
		case m.IsRegex:
			t = labels.MatchNotRegexp
		case !equal:
			t = labels.MatchNotEqual
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return "", fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		parts = append(parts, lm.String())
	}
	return "{" + strings.Join(parts, ", ") + "}", nil
}

// matchersOf reads a vigil silence's selector as Alertmanager matchers; a
// metric name is the alertname.
func matchersOf(selector string) []amMatcher {
	ms, err := promqlparse.ParseMetricSelector(selector)
	if err != nil {
		return []amMatcher{}
	}
	out := make([]amMatcher, 0, len(ms))
	for _, m := range ms {
		name := m.Name
		if name == labels.MetricName {
			name = labels.AlertName
		}
		equal := m.Type == labels.MatchEqual || m.Type == labels.MatchRegexp
		out = append(out, amMatcher{
			Name: name, Value: m.Value, IsEqual: &equal,
			IsRegex: m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp,
		})
	}
	return out
}

// amSilenceOf is a vigil silence in Alertmanager's shape.
func amSilenceOf(s notifier.Silence, now time.Time) amSilence {
	out := amSilence{
		ID: s.ID, Matchers: matchersOf(s.Matchers), StartsAt: s.StartsAt, EndsAt: s.EndsAt,
		CreatedBy: s.CreatedBy, Comment: s.Comment,
	}
	updated := s.CreatedAt
	if s.ExpiredBy != "" {
		updated = s.EndsAt
	}
	out.UpdatedAt = &updated
	out.Status = &struct {
		State string `json:"state"`
	}{State: "expired"}
	switch {
	case s.Active(now):
		out.Status.State = "active"
	case now.Before(s.StartsAt):
		out.Status.State = "pending"
	}
	return out
}

// amSilenceError answers an error of the notifier's silences.
func amSilenceError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, notifier.ErrInvalidSilence):
		amError(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, notifier.ErrNotFound):
		amError(c, http.StatusNotFound, err.Error())
	default:
		amError(c, http.StatusInternalServerError, err.Error())
	}
}

// getAMSilences answers GET /api/v2/silences: every silence, the expired
// ones too, those whose matchers satisfy the filter.
func (h *Handler) getAMSilences(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	filter, ok := amFilter(c)
	if !ok {
		return
	}
	list, err := s.Silences(true)
	if err != nil {
		amSilenceError(c, err)
		return
	}
	now := time.Now()
	out := []amSilence{}
	for _, sil := range list {
		g := amSilenceOf(sil, now)
		values := map[string]string{}
		for _, m := range g.Matchers {
			values[m.Name] = m.Value
		}
		if !slices.ContainsFunc(filter, func(f *amlabels.Matcher) bool {
			v, ok := values[f.Name]
			return !ok || !f.Matches(v)
		}) {
			out = append(out, g)
		}
	}
	c.JSON(http.StatusOK, out)
}

// getAMSilence answers GET /api/v2/silence/:id.
func (h *Handler) getAMSilence(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	sil, err := s.Silence(c.Param("id"))
	if err != nil {
		amSilenceError(c, err)
		return
	}
	c.JSON(http.StatusOK, amSilenceOf(sil, time.Now()))
}

// postAMSilence answers POST /api/v2/silences. The silence's creator is the
// caller's user (the body's createdBy only while vigil runs open). A body
// with the id of a silence replaces it: a new one is made and the old one
// expired, as Alertmanager does when a silence cannot change in place.
func (h *Handler) postAMSilence(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	var req amSilence
	if err := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)).Decode(&req); err != nil {
		amError(c, http.StatusBadRequest, "the body is not a silence: "+err.Error())
		return
	}
	selector, err := selectorOf(req.Matchers)
	if err != nil {
		amError(c, http.StatusBadRequest, err.Error())
		return
	}
	by := requestUser(c)
	if by == "" {
		by = req.CreatedBy
	}
	if req.ID != "" {
		list, err := s.Silences(true)
		if err != nil {
			amSilenceError(c, err)
			return
		}
		if !slices.ContainsFunc(list, func(o notifier.Silence) bool { return o.ID == req.ID }) {
			amError(c, http.StatusNotFound, fmt.Sprintf("silence %q not found", req.ID))
			return
		}
	}
	// The new silence first: a refused one leaves the old in force.
	out, err := s.AddSilence(notifier.Silence{Matchers: selector, StartsAt: req.StartsAt, EndsAt: req.EndsAt,
		Comment: req.Comment, CreatedBy: by})
	if err != nil {
		amSilenceError(c, err)
		return
	}
	if req.ID != "" {
		if _, err := s.ExpireSilence(req.ID, pageUser(c)); err != nil {
			amSilenceError(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"silenceID": out.ID})
}

// deleteAMSilence answers DELETE /api/v2/silence/:id: it ends the silence.
func (h *Handler) deleteAMSilence(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	if _, err := s.ExpireSilence(c.Param("id"), pageUser(c)); err != nil {
		amSilenceError(c, err)
		return
	}
	c.Status(http.StatusOK)
}

// amReceivers are the configured receivers, the implicit log one when there
// are none.
func (h *Handler) amReceivers() []amReceiver {
	out := []amReceiver{}
	if cfg := h.cfg.Load(); cfg != nil {
		for _, r := range cfg.Receivers {
			out = append(out, amReceiver{Name: r.Name})
		}
	}
	if len(out) == 0 {
		out = append(out, amReceiver{Name: config.ImplicitLogReceiver})
	}
	return out
}

// getAMReceivers answers GET /api/v2/receivers.
func (h *Handler) getAMReceivers(c *gin.Context) {
	c.JSON(http.StatusOK, h.amReceivers())
}

// amConfigYAML is the Alertmanager-shaped summary of vigil's config that
// /api/v2/status gives as config.original: the resolve timeout and the
// receivers' names, nothing else (never a URL, token or secret).
func (h *Handler) amConfigYAML() string {
	type receiver struct {
		Name string `yaml:"name"`
	}
	doc := struct {
		Global struct {
			ResolveTimeout string `yaml:"resolve_timeout"`
		} `yaml:"global"`
		Route struct {
			Receiver string `yaml:"receiver"`
		} `yaml:"route"`
		Receivers []receiver `yaml:"receivers"`
	}{}
	doc.Global.ResolveTimeout = config.Duration(config.DefaultResolveTimeout).String()
	if cfg := h.cfg.Load(); cfg != nil {
		if cfg.Ingest.ResolveTimeout > 0 {
			doc.Global.ResolveTimeout = cfg.Ingest.ResolveTimeout.String()
		}
		if lv := cfg.Escalation.Levels; len(lv) > 0 && len(lv[0].Notify) > 0 {
			doc.Route.Receiver = lv[0].Notify[0]
		}
	}
	for _, r := range h.amReceivers() {
		doc.Receivers = append(doc.Receivers, receiver(r))
	}
	if doc.Route.Receiver == "" {
		doc.Route.Receiver = doc.Receivers[0].Name
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return ""
	}
	return out.String()
}

// getAMStatus answers GET /api/v2/status. vigil runs no Alertmanager
// cluster: its status is "disabled".
func (h *Handler) getAMStatus(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{
		"cluster": gin.H{"status": "disabled", "peers": []any{}},
		"versionInfo": gin.H{
			"version":   h.vigilVersion(),
			"revision":  version.Revision,
			"branch":    version.Branch,
			"buildUser": version.BuildUser,
			"buildDate": version.BuildDate,
			"goVersion": runtime.Version(),
		},
		"config": gin.H{"original": h.amConfigYAML()},
		"uptime": h.startTime.UTC(),
	})
}
