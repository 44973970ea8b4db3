package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-sh/vigil/notifier/backup"
)

// Backups is what the web layer needs of the backup records.
type Backups interface {
	Record(b backup.Backup) (backup.Backup, error)
	Backups(limit int) ([]backup.Backup, error)
}

// listBackups answers GET /api/v1/backups?limit=N, newest first.
func (h *Handler) listBackups(c *gin.Context) {
	if h.opts.Backups == nil {
		apiSuccess(c, []backup.Backup{})
		return
	}
	limit, ok := limitParam(c, defaultListLimit, 0)
	if !ok {
		return
	}
	list, err := h.opts.Backups.Backups(limit)
	if err != nil {
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	apiSuccess(c, list)
}

// recordBackup answers POST /api/v1/backups {time, size, ok, location,
// error}: the backup job reports a run.
func (h *Handler) recordBackup(c *gin.Context) {
	if h.opts.Backups == nil {
		apiError(c, http.StatusNotFound, "not_found", "backups are not recorded here")
		return
	}
	var b backup.Backup
	if err := readJSON(c, &b); err != nil {
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if u := requestUser(c); u != "" {
		b.By = u
	}
	out, err := h.opts.Backups.Record(b)
	switch {
	case errors.Is(err, backup.ErrInvalid):
		apiError(c, http.StatusBadRequest, "bad_data", err.Error())
	case err != nil:
		apiError(c, http.StatusInternalServerError, "internal", err.Error())
	default:
		apiSuccess(c, out)
	}
}
