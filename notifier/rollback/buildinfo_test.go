package rollback

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// newestBuildVersion is the live version with the newest sample.
func newestBuildVersion(ctx context.Context, q storage.Queryable, app string, now time.Time) (string, error) {
	live, err := liveBuildVersions(ctx, q, app, "version", now)
	if err != nil || len(live) == 0 {
		return "", err
	}
	newest := live[0]
	for _, l := range live[1:] {
		if l.last > newest.last {
			newest = l
		}
	}
	return newest.version, nil
}

func TestNewestBuildVersion(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	defer db.Close()

	now := time.Now()
	app := db.Appender(context.Background())
	add := func(version, appLabel string, at time.Time, v float64) {
		_, err := app.Append(0, labels.FromStrings("__name__", "checkout_build_info", "app", appLabel, "version", version), at.UnixMilli(), v)
		require.NoError(t, err)
	}
	add("1.0.0", "app", now.Add(-2*time.Minute), 1)
	add("1.0.0", "app", now.Add(-time.Minute), 1)
	add("1.1.0", "app", now.Add(-30*time.Second), 1)
	add("9.9.9", "other", now.Add(-time.Second), 1)  // another app
	add("2.0.0", "app", now.Add(-20*time.Second), 1) // a target that went away:
	add("2.0.0", "app", now.Add(-10*time.Second), math.Float64frombits(value.StaleNaN))
	require.NoError(t, app.Commit())

	v, err := newestBuildVersion(context.Background(), db, "app", now)
	require.NoError(t, err)
	require.Equal(t, "1.1.0", v)

	v, err = newestBuildVersion(context.Background(), db, "nobody", now)
	require.NoError(t, err)
	require.Empty(t, v)
}
