package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/notifier"
)

// Incidents is what the web layer needs of the notifier.
type Incidents interface {
	Incidents(state notifier.State) ([]notifier.Incident, error)
	Incident(id string) (notifier.Incident, error)
	Acknowledge(id, by, comment string) (notifier.Incident, error)
	Resolve(id, by, comment string) (notifier.Incident, error)
}

// maxBodyBytes bounds every request body vigil reads.
const maxBodyBytes = 64 << 10

// actionRequest is the body of ack and resolve: who, and an optional comment.
type actionRequest struct {
	By      string `json:"by"`
	Comment string `json:"comment"`
}

func apiError(c *gin.Context, code int, errType, msg string) {
	c.JSON(code, gin.H{"status": "error", "errorType": errType, "error": msg})
}

// limitParam reads ?limit=N: def when it is absent, never more than most
// (when most > 0). It answers 400 and returns false when N is not a positive
// number.
func limitParam(c *gin.Context, def, most int) (int, bool) {
	v := c.Query("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		apiError(c, http.StatusBadRequest, "bad_data", fmt.Sprintf("limit %q is not a positive number", v))
		return 0, false
	}
	if most > 0 {
		n = min(n, most)
	}
	return n, true
}

func apiSuccess(c *gin.Context, data any) {
	c.JSON(http.StatusOK, gin.H{"status": "success", "data": data})
}

// readJSON decodes a bounded JSON body into v; an empty body leaves v as is.
func readJSON(c *gin.Context, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body is not the expected JSON: %w", err)
	}
	return nil
}

// listIncidents answers GET /api/v1/incidents?state=triggered|acknowledged|resolved&limit=N.
func (h *Handler) listIncidents(c *gin.Context) {
	if h.opts.Incidents == nil {
		apiSuccess(c, []notifier.Incident{})
		return
	}
	state := notifier.State(c.Query("state"))
	switch state {
	case "", notifier.StateTriggered, notifier.StateAcknowledged, notifier.StateResolved:
	default:
		apiError(c, http.StatusBadRequest, "bad_data", fmt.Sprintf("state %q is not triggered, acknowledged or resolved", state))
		return
	}
	list, err := h.opts.Incidents.Incidents(state)
	if err != nil {
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	list = visibleIncidents(c, list)
	n, ok := limitParam(c, len(list), len(list))
	if !ok {
		return
	}
	list = list[:min(n, len(list))]
	if list == nil {
		list = []notifier.Incident{}
	}
	apiSuccess(c, list)
}

// getIncident answers GET /api/v1/incidents/:id.
func (h *Handler) getIncident(c *gin.Context) {
	if h.opts.Incidents == nil {
		apiError(c, http.StatusNotFound, "not_found", "no incidents")
		return
	}
	inc, err := h.opts.Incidents.Incident(c.Param("id"))
	if err != nil {
		h.incidentError(c, err)
		return
	}
	if !mayOn(c, permMonitor, incidentApp(inc)) {
		// As if it did not exist: incidents of other apps are not told of.
		apiError(c, http.StatusNotFound, "not_found", fmt.Sprintf("incident %q not found", inc.ID))
		return
	}
	apiSuccess(c, inc)
}

// incidentAction answers POST /api/v1/incidents/:id/ack and .../resolve.
func (h *Handler) incidentAction(resolve bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if h.opts.Incidents == nil {
			apiError(c, http.StatusNotFound, "not_found", "no incidents")
			return
		}
		var req actionRequest
		if err := readJSON(c, &req); err != nil {
			apiError(c, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		if u := requestUser(c); u != "" {
			// An authenticated caller acts as itself, whatever the body says.
			req.By = u
		}
		if req.By == "" {
			apiError(c, http.StatusBadRequest, "bad_data", `say who: {"by": "name", "comment": "..."}`)
			return
		}
		if !h.mayActOn(c, c.Param("id")) {
			return
		}
		act := h.opts.Incidents.Acknowledge
		if resolve {
			act = h.opts.Incidents.Resolve
		}
		inc, err := act(c.Param("id"), req.By, req.Comment)
		if err != nil {
			h.incidentError(c, err)
			return
		}
		apiSuccess(c, inc)
	}
}

func (h *Handler) incidentError(c *gin.Context, err error) {
	if errors.Is(err, notifier.ErrNotFound) {
		apiError(c, http.StatusNotFound, "not_found", err.Error())
		return
	}
	if errors.Is(err, notifier.ErrResolved) {
		apiError(c, http.StatusConflict, "conflict", err.Error())
		return
	}
	apiError(c, http.StatusInternalServerError, "internal", err.Error())
}

// requestUser is the authenticated user of the request, once authentication
// sets one (issue 5); empty until then.
func requestUser(c *gin.Context) string {
	if v, ok := c.Get(userKey); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}

// userKey is the gin context key of the authenticated user's name.
const userKey = "vigil.user"
