package slack

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// An incident of a group shows its member count and its first members by
// the labels that tell them apart.
func TestBlocksShowMembers(t *testing.T) {
	inc := notifier.Incident{ID: "i1", State: notifier.StateTriggered, Alert: notifier.Alert{
		Name: "high_cpu", Labels: map[string]string{"alertname": "high_cpu", "pod": "p0"},
	}}
	for i := range 7 {
		st := notifier.MemberFiring
		if i == 2 {
			st = notifier.MemberResolved
		}
		inc.Members = append(inc.Members, notifier.Member{Fingerprint: fmt.Sprint(i), State: st,
			Labels: map[string]string{"alertname": "high_cpu", "pod": fmt.Sprintf("p%d", i)}})
	}
	body, err := json.Marshal(Blocks(&notifier.Message{Kind: notifier.KindFiring, Incident: inc}))
	require.NoError(t, err)
	require.Contains(t, string(body), "*Members* (7, 6 firing)\\n`{pod=\\\"p0\\\"}` firing\\n`{pod=\\\"p1\\\"}` firing\\n`{pod=\\\"p2\\\"}` resolved\\n`{pod=\\\"p3\\\"}` firing\\n`{pod=\\\"p4\\\"}` firing\\nand 2 more")

	require.Equal(t, "[] high_cpu: triggered (support), 7 alerts",
		fallbackText(&notifier.Message{Kind: notifier.KindFiring, Incident: inc, LevelName: "support"}))

	// One alert: no members section, as before grouping.
	inc.Members = inc.Members[:1]
	body, err = json.Marshal(Blocks(&notifier.Message{Kind: notifier.KindFiring, Incident: inc}))
	require.NoError(t, err)
	require.NotContains(t, string(body), "Members")
}
