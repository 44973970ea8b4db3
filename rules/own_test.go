package rules

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/config"
)

// TestOwnRulesAreAGroupApart: the built-in default runs the seed's rules in
// the seed group and vigil's own rules in a group of their own.
func TestOwnRulesAreAGroupApart(t *testing.T) {
	cfg := config.Default()
	ids, virtual, err := loadSources(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Contains(t, ids, SeedIdentifier(cfg))
	require.Contains(t, ids, OwnIdentifier(cfg))

	seed := virtual[SeedIdentifier(cfg)].Groups
	require.Len(t, seed, 1)
	require.Equal(t, SeedGroupName, seed[0].Name)
	require.Len(t, seed[0].Rules, 9)

	own := virtual[OwnIdentifier(cfg)].Groups
	require.Len(t, own, 1)
	require.Equal(t, OwnGroupName, own[0].Name)
	var names []string
	for _, r := range own[0].Rules {
		names = append(names, r.Alert)
	}
	require.Equal(t, []string{"app_down", "infra_high_cpu", "infra_high_memory"}, names)
	// Scoped to their app only: no environment matcher is added.
	require.Equal(t, `cpu_usage{app="infrastructure"} > 90`, own[0].Rules[1].Expr)
}
