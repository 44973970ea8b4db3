package web

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/notifier"
	"github.com/vigil-sh/vigil/notifier/rollback"
)

// Deploys is what the web layer needs of the rollback logic.
type Deploys interface {
	RecordDeploy(d rollback.Deploy) (rollback.Deploy, error)
	Deploys(limit int) ([]rollback.Deploy, error)
	// FireNow fires the rollback webhook for the last deploy by hand and
	// returns what happened.
	FireNow(ctx context.Context, reason, by string) (*notifier.RollbackRecord, error)
	// ManualRollbacks returns the rollbacks fired by hand, newest first.
	ManualRollbacks(limit int) ([]rollback.ManualRollback, error)
}

// defaultListLimit is how many deploys or rollbacks a list returns unless
// ?limit says otherwise.
const defaultListLimit = 50

// listDeploys answers GET /api/v1/deploys?limit=N, newest first.
func (h *Handler) listDeploys(c *gin.Context) {
	if h.opts.Deploys == nil {
		apiSuccess(c, []rollback.Deploy{})
		return
	}
	limit, ok := limitParam(c, defaultListLimit, 0)
	if !ok {
		return
	}
	list, err := h.opts.Deploys.Deploys(limit)
	if err != nil {
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if list == nil {
		list = []rollback.Deploy{}
	}
	apiSuccess(c, h.visibleDeploys(c, list))
}

// recordDeploy answers POST /api/v1/deploys {service, version, environment, time}.
func (h *Handler) recordDeploy(c *gin.Context) {
	if h.opts.Deploys == nil {
		apiError(c, http.StatusNotFound, "not_found", "deploys are not recorded here")
		return
	}
	var d rollback.Deploy
	if err := readJSON(c, &d); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if !h.mayTouchWatched(c, permDeploy, "record deploys") {
		return
	}
	if d.Version == "" {
		apiError(c, http.StatusBadRequest, "bad_data", `version is required: {"service": "...", "version": "...", "environment": "...", "time": "RFC 3339"}`)
		return
	}
	if err := rollback.CheckStrategy(d.Strategy); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if d.By == "" {
		d.By = requestUser(c)
	}
	out, err := h.opts.Deploys.RecordDeploy(d)
	if err != nil {
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	apiSuccess(c, out)
}

// rollbackRequest is the body of POST /api/v1/rollback.
type rollbackRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// rollback answers POST /api/v1/rollback: the rollback webhook, fired by hand.
func (h *Handler) rollback(c *gin.Context) {
	if h.opts.Deploys == nil {
		apiError(c, http.StatusNotFound, "not_found", "rollback is not configured")
		return
	}
	var req rollbackRequest
	if err := readJSON(c, &req); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if !h.mayTouchWatched(c, permRollback, "roll back") {
		return
	}
	if u := requestUser(c); u != "" {
		// An authenticated caller rolls back as itself, whatever the body
		// says, as with incidents.
		req.By = u
	}
	out, err := h.opts.Deploys.FireNow(c.Request.Context(), req.Reason, req.By)
	switch {
	case errors.Is(err, rollback.ErrNotConfigured):
		apiError(c, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, rollback.ErrEnvironment), errors.Is(err, rollback.ErrNoDeploy), errors.Is(err, rollback.ErrCooldown):
		apiError(c, http.StatusConflict, "conflict", err.Error())
	case err != nil:
		// The deploy controller did not take it: say so, with the record.
		c.JSON(http.StatusBadGateway, gin.H{"status": "error", "errorType": "unavailable", "error": err.Error(), "data": out})
	default:
		apiSuccess(c, out)
	}
}

// rollbackHistory returns the rollback webhook calls made for incidents
// (from all, the incidents already read) and those fired by hand, newest
// first, at most limit.
func (h *Handler) rollbackHistory(all []notifier.Incident, limit int) ([]rollbackView, error) {
	out := []rollbackView{}
	for _, inc := range all {
		if inc.Rollback != nil {
			out = append(out, rollbackView{RollbackRecord: *inc.Rollback, Incident: inc.ID, Alert: inc.Alert.Name})
		}
	}
	var err error
	if h.opts.Deploys != nil {
		var manual []rollback.ManualRollback
		manual, err = h.opts.Deploys.ManualRollbacks(limit)
		for _, r := range manual {
			out = append(out, rollbackView{RollbackRecord: r.RollbackRecord, By: r.By, Reason: r.Reason})
		}
	}
	slices.SortStableFunc(out, func(a, b rollbackView) int { return b.At.Compare(a.At) })
	return out[:min(len(out), limit)], err
}

// listRollbacks answers GET /api/v1/rollbacks?limit=N (default 50): the
// rollback webhook calls, for incidents and by hand, newest first.
func (h *Handler) listRollbacks(c *gin.Context) {
	limit, ok := limitParam(c, defaultListLimit, 0)
	if !ok {
		return
	}
	var all []notifier.Incident
	if h.opts.Incidents != nil {
		var err error
		if all, err = h.opts.Incidents.Incidents(""); err != nil {
			apiError(c, http.StatusInternalServerError, "internal", err.Error())
			return
		}
	}
	all = visibleIncidents(c, all)
	out, err := h.rollbackHistory(all, limit)
	if err != nil {
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	apiSuccess(c, h.visibleRollbacks(c, out))
}

// slackInteractions hands POST /slack/interactions to the Slack handler.
func (h *Handler) slackInteractions(c *gin.Context) {
	if h.opts.SlackInteractions == nil {
		writeNotFound(c.Writer)
		return
	}
	h.opts.SlackInteractions.ServeHTTP(c.Writer, c.Request)
}
