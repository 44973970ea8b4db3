package slack

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/vigil-sh/vigil/notifier"
)

// Annotations the message links to (the rules package writes a seed rule's
// runbook and dashboard under these keys).
const (
	annotationRunbook      = "runbook_url"
	annotationDashboard    = "dashboard"
	annotationDashboardURL = "dashboard_url"
)

// Slack's limits: header text 150 characters, section text 3000.
const (
	maxHeader  = 150
	maxSection = 3000
)

// Blocks returns the Block Kit message for m: what the alert is, where the
// incident stands, its links and, until it is resolved, its buttons.
func Blocks(m *notifier.Message) []slack.Block {
	inc := &m.Incident
	a := &inc.Alert
	name := a.Name
	if name == "" {
		name = a.Labels["alertname"]
	}

	header := name
	if inc.State == notifier.StateResolved {
		header = "Resolved: " + name
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(header, maxHeader), false, false)),
	}

	level := m.LevelName
	if level == "" {
		level = "level " + strconv.Itoa(m.Level+1)
	}
	fields := []*slack.TextBlockObject{
		mrkdwn("*Severity*\n" + orDash(a.Labels["severity"])),
		mrkdwn("*Priority*\n" + orDash(inc.Priority)),
		mrkdwn("*Level*\n" + escape(level)),
		mrkdwn("*State*\n" + stateText(inc)),
		mrkdwn("*Value*\n" + strconv.FormatFloat(a.Value, 'g', 6, 64)),
	}
	if !inc.NextDeadline.IsZero() && inc.State == notifier.StateTriggered {
		fields = append(fields, mrkdwn(fmt.Sprintf("*Next escalation*\n<!date^%d^{date_short_pretty} {time}|%s>",
			inc.NextDeadline.Unix(), inc.NextDeadline.UTC().Format("2006-01-02 15:04 UTC"))))
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))

	var text []string
	if s := a.Annotations["summary"]; s != "" {
		text = append(text, "*"+escape(s)+"*")
	}
	if d := a.Annotations["description"]; d != "" {
		text = append(text, escape(d))
	}
	if len(text) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(strings.Join(text, "\n"), maxSection)), nil, nil))
	}

	if len(a.Labels) > 0 {
		keys := make([]string, 0, len(a.Labels))
		for k := range a.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		b.WriteString("*Labels*\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "`%s=%s` ", escape(k), escape(a.Labels[k]))
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(strings.TrimSpace(b.String()), maxSection)), nil, nil))
	}

	if ms := notifier.MemberList(inc); len(ms) > 1 {
		var b strings.Builder
		fmt.Fprintf(&b, "*Members* (%d, %d firing)\n", len(ms), notifier.FiringMembers(inc))
		for _, mb := range ms[:min(len(ms), notifier.MemberSample)] {
			fmt.Fprintf(&b, "`%s` %s\n", escape(notifier.MemberLabels(inc, mb)), escape(mb.State))
		}
		if len(ms) > notifier.MemberSample {
			fmt.Fprintf(&b, "and %d more", len(ms)-notifier.MemberSample)
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(strings.TrimSpace(b.String()), maxSection)), nil, nil))
	}

	var links []string
	if u := a.Annotations[annotationRunbook]; isLink(u) {
		links = append(links, "<"+escape(u)+"|Runbook>")
	}
	dashboard := a.Annotations[annotationDashboard]
	if dashboard == "" {
		dashboard = a.Annotations[annotationDashboardURL]
	}
	if isLink(dashboard) {
		links = append(links, "<"+escape(dashboard)+"|Dashboard>")
	}
	if u := IncidentURL(m); u != "" {
		links = append(links, "<"+escape(u)+"|Incident "+escape(inc.ID)+">")
	}
	if len(links) > 0 {
		blocks = append(blocks, slack.NewContextBlock("links", mrkdwn(strings.Join(links, " · "))))
	}

	if who := whoText(inc); who != "" {
		blocks = append(blocks, slack.NewContextBlock("who", mrkdwn(who)))
	}

	if inc.State != notifier.StateResolved {
		var buttons []slack.BlockElement
		if inc.State == notifier.StateTriggered {
			ack := slack.NewButtonBlockElement(ActionAck, inc.ID, slack.NewTextBlockObject(slack.PlainTextType, "Acknowledge", false, false))
			ack.Style = slack.StylePrimary
			buttons = append(buttons, ack)
		}
		resolve := slack.NewButtonBlockElement(ActionResolve, inc.ID, slack.NewTextBlockObject(slack.PlainTextType, "Resolve", false, false))
		resolve.Style = slack.StyleDanger
		buttons = append(buttons, resolve)
		blocks = append(blocks, slack.NewActionBlock("vigil_actions", buttons...))
	}
	return blocks
}

// IncidentURL returns the incident on the operator page, where whoever
// clicks it in Slack can sign in and act, or "" without an external URL.
// (The API's /api/v1/incidents/:id wants a bearer token a browser does not
// send.)
func IncidentURL(m *notifier.Message) string {
	if m.ExternalURL == "" || m.Incident.ID == "" {
		return ""
	}
	return strings.TrimRight(m.ExternalURL, "/") + "/#incident-" + url.PathEscape(m.Incident.ID)
}

// fallbackText is the notification text, shown where blocks are not.
func fallbackText(m *notifier.Message) string {
	inc := &m.Incident
	sev := inc.Alert.Labels["severity"]
	if sev == "" {
		sev = inc.Priority
	}
	text := fmt.Sprintf("[%s] %s: %s (%s)", strings.ToUpper(sev), inc.Alert.Name, inc.State, m.LevelName)
	if n := len(notifier.MemberList(inc)); n > 1 {
		text += fmt.Sprintf(", %d alerts", n)
	}
	return text
}

func stateText(inc *notifier.Incident) string {
	switch inc.State {
	case notifier.StateTriggered:
		return ":rotating_light: triggered"
	case notifier.StateAcknowledged:
		return ":eyes: acknowledged"
	case notifier.StateResolved:
		return ":white_check_mark: resolved"
	}
	return escape(string(inc.State))
}

func whoText(inc *notifier.Incident) string {
	var parts []string
	if inc.AcknowledgedBy != "" {
		parts = append(parts, "Acknowledged by "+escape(inc.AcknowledgedBy))
	}
	if inc.ResolvedBy != "" {
		parts = append(parts, "Resolved by "+escape(inc.ResolvedBy))
	}
	return strings.Join(parts, " · ")
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return escape(s)
}

// escape makes s literal in Slack's mrkdwn, which reads &, < and > as markup.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// isLink reports whether s is an http(s) URL worth linking.
func isLink(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
