package notifier

import (
	"context"
	"log/slog"
	"strings"
)

// logReceiver writes each message as one structured line of vigil's log.
type logReceiver struct {
	logger *slog.Logger
	level  slog.Level
}

func newLogReceiver(logger *slog.Logger, level string) *logReceiver {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil || level == "" {
		l = slog.LevelWarn
	}
	return &logReceiver{logger: logger.With("receiver", "log"), level: l}
}

// Notify implements Receiver; a log line cannot fail.
func (r *logReceiver) Notify(ctx context.Context, m *Message) (bool, error) {
	inc := &m.Incident
	attrs := []any{
		"kind", m.Kind,
		"incident", inc.ID,
		"delivery", m.DeliveryID,
		"alertname", inc.Alert.Name,
		"state", inc.State,
		"priority", inc.Priority,
		"level", m.Level + 1,
		"level_name", m.LevelName,
		"severity", inc.Alert.Labels["severity"],
		"value", inc.Alert.Value,
		"environment", m.Environment,
	}
	if d := describeMembers(inc); d != "" {
		attrs = append(attrs, "members", len(inc.Members), "members_firing", FiringMembers(inc), "first_members", d)
	}
	if !inc.NextDeadline.IsZero() {
		attrs = append(attrs, "next_deadline", inc.NextDeadline)
	}
	if s := inc.Alert.Annotations["summary"]; s != "" {
		attrs = append(attrs, "summary", s)
	}
	if inc.AcknowledgedBy != "" {
		attrs = append(attrs, "acknowledged_by", inc.AcknowledgedBy)
	}
	if inc.ResolvedBy != "" {
		attrs = append(attrs, "resolved_by", inc.ResolvedBy)
	}
	r.logger.Log(ctx, r.level, "incident "+string(m.Kind), attrs...)
	return false, nil
}
