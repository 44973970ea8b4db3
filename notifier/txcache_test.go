package notifier

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// puttingTx counts the incident writes that reach the store.
type puttingTx struct {
	Tx
	puts int
}

func (c *puttingTx) PutIncident(inc *Incident) error {
	c.puts++
	return c.Tx.PutIncident(inc)
}

func TestWriteBackWritesEachIncidentOnce(t *testing.T) {
	s, err := OpenBoltStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	old := Incident{ID: "0001", Fingerprint: "g", State: StateResolved}
	require.NoError(t, s.Update(func(tx Tx) error { return tx.PutIncident(&old) }))

	err = s.Update(func(stx Tx) error {
		ct := &puttingTx{Tx: stx}
		w := newWriteBack(ct)
		inc := Incident{ID: "0002", Fingerprint: "g", State: StateTriggered}
		for i := range 10 {
			inc.Members = append(inc.Members, Member{Fingerprint: string(rune('a' + i)), State: MemberFiring})
			require.NoError(t, w.PutIncident(&inc))
			// Reads see what was written, the newer incident of the
			// fingerprint first, though the store has not got it yet.
			got, found, err := w.LatestIncident("g")
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, "0002", got.ID)
			require.Len(t, got.Members, i+1)
			got.Members[0].State = MemberResolved // a reader's change stays its own
			byID, err := w.Incident("0002")
			require.NoError(t, err)
			require.Equal(t, MemberFiring, byID.Members[0].State)
		}
		_, err := stx.Incident("0002")
		require.ErrorIs(t, err, ErrNotFound, "kept until flush")
		require.Zero(t, ct.puts)
		// A scan writes first.
		all, err := w.Incidents("")
		require.NoError(t, err)
		require.Len(t, all, 2)
		require.Equal(t, 1, ct.puts)
		inc.State = StateAcknowledged
		require.NoError(t, w.PutIncident(&inc))
		// A member's fold names the kept incident before the store has it.
		require.NoError(t, w.FoldAlert("member", "0002"))
		got, found, err := w.LatestIncident("member")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, StateAcknowledged, got.State)
		_, found, err = stx.LatestIncident("member")
		require.NoError(t, err)
		require.False(t, found, "kept until flush")
		require.NoError(t, w.flush())
		require.Equal(t, 2, ct.puts)
		got, found, err = stx.LatestIncident("member")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "0002", got.ID)
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.View(func(tx Tx) error {
		got, found, err := tx.LatestIncident("g")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, StateAcknowledged, got.State)
		require.Len(t, got.Members, 10)
		return nil
	}))
}
