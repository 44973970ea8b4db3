//go:build !slicelabels

package config

// vigil links github.com/grafana/loki-client-go, which needs labels.Labels to be
// a slice; Prometheus makes it one only under the slicelabels build tag. Without
// the tag the build stops here, with the fix in the error.
var _ = vigil_must_be_built_with_tags_slicelabels__run_make_build_or_export_GOFLAGS_eq_tags_eq_slicelabels
