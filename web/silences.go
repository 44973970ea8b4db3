package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-sh/vigil/notifier"
)

// Silences is what the web layer needs of the notifier's silences.
type Silences interface {
	AddSilence(s notifier.Silence) (notifier.Silence, error)
	Silences(expired bool) ([]notifier.Silence, error)
	// Silence returns one silence, expired or not; an error wrapping
	// notifier.ErrNotFound when there is none.
	Silence(id string) (notifier.Silence, error)
	ExpireSilence(id, by string) (notifier.Silence, error)
}

// silenceRequest is the body of POST /api/v1/silences: the matchers, and
// either endsAt or a duration from startsAt (or now).
type silenceRequest struct {
	Matchers  string    `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	Duration  string    `json:"duration"`
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"createdBy"`
}

// pageSilenceDurations are the lengths the page offers.
var pageSilenceDurations = []string{"1h", "4h", "24h"}

// silences answers 404 and returns nil when silences are not served.
func (h *Handler) silences(c *gin.Context) Silences {
	if h.opts.Silences == nil {
		apiError(c, http.StatusNotFound, "not_found", "silences are not served here")
		return nil
	}
	return h.opts.Silences
}

// silenceError answers an error of the notifier's silences.
func (h *Handler) silenceError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, notifier.ErrInvalidSilence):
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
	case errors.Is(err, notifier.ErrNotFound):
		apiError(c, http.StatusNotFound, "not_found", err.Error())
	default:
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
	}
}

// listSilences answers GET /api/v1/silences?expired=true: active and pending
// silences, and expired ones when asked, newest first.
func (h *Handler) listSilences(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	list, err := s.Silences(c.Query("expired") == "true")
	if err != nil {
		h.silenceError(c, err)
		return
	}
	if list == nil {
		list = []notifier.Silence{}
	}
	apiSuccess(c, list)
}

// addSilence answers POST /api/v1/silences.
func (h *Handler) addSilence(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	var req silenceRequest
	if err := readJSON(c, &req); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if req.EndsAt.IsZero() {
		if req.Duration == "" {
			apiError(c, http.StatusBadRequest, "bad_data", `say how long: "endsAt" (RFC 3339) or "duration" ("2h")`)
			return
		}
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			apiError(c, http.StatusBadRequest, "bad_data", fmt.Sprintf("duration %q is not a positive Go duration like 2h", req.Duration))
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = time.Now()
		}
		req.EndsAt = start.Add(d)
	}
	by := requestUser(c)
	if by == "" {
		// Only while vigil runs open: then the body may say who.
		by = req.CreatedBy
	}
	if by == "" {
		by = pageUser(c)
	}
	out, err := s.AddSilence(notifier.Silence{Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt, Comment: req.Comment, CreatedBy: by})
	if err != nil {
		h.silenceError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"status": "success", "data": out})
}

// expireSilence answers DELETE /api/v1/silences/:id: it ends the silence now.
func (h *Handler) expireSilence(c *gin.Context) {
	s := h.silences(c)
	if s == nil {
		return
	}
	out, err := s.ExpireSilence(c.Param("id"), pageUser(c))
	if err != nil {
		h.silenceError(c, err)
		return
	}
	apiSuccess(c, out)
}

// alertMatchers is a selector for exactly the alert with these labels.
func alertMatchers(lbls map[string]string) string {
	return labels.FromMap(lbls).String()
}

// uiSilence answers the page's Silence form on an incident: the incident's
// alert (the labels its members share, for a group), for one of
// pageSilenceDurations.
func (h *Handler) uiSilence(c *gin.Context) {
	if !parseForm(c) {
		return
	}
	s := h.silences(c)
	if s == nil {
		return
	}
	if h.opts.Incidents == nil {
		apiError(c, http.StatusNotFound, "not_found", "no incidents")
		return
	}
	id := c.Request.PostForm.Get("incident")
	inc, err := h.opts.Incidents.Incident(id)
	if err != nil {
		h.incidentError(c, err)
		return
	}
	dur := c.Request.PostForm.Get("duration")
	if !slices.Contains(pageSilenceDurations, dur) {
		apiError(c, http.StatusBadRequest, "bad_data", fmt.Sprintf("duration must be one of %s", strings.Join(pageSilenceDurations, ", ")))
		return
	}
	d, _ := time.ParseDuration(dur)
	comment := strings.TrimSpace(c.Request.PostForm.Get("comment"))
	if comment == "" {
		comment = "silenced from the operator page for incident " + inc.ID
	}
	if _, err := s.AddSilence(notifier.Silence{
		Matchers:  alertMatchers(notifier.CommonLabels(&inc)), // the group's, for a group
		EndsAt:    time.Now().Add(d),
		Comment:   comment,
		CreatedBy: pageUser(c),
	}); err != nil {
		h.silenceError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/?"+url.Values{"silenced": {inc.ID}}.Encode()+"#silences")
}

// uiExpireSilence answers the page's Expire button on a silence.
func (h *Handler) uiExpireSilence(c *gin.Context) {
	if !parseForm(c) {
		return
	}
	s := h.silences(c)
	if s == nil {
		return
	}
	if _, err := s.ExpireSilence(c.Param("id"), pageUser(c)); err != nil {
		h.silenceError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/?expired=1#silences")
}
